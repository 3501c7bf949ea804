"""Study reports: the ledger as a table, the papers' figures from it, and an offline HTML page.

Layers, each reusable on its own (``analysis/`` scripts call the same functions as ``archsearch report``):

1. **Frames** -- :func:`ledger_frame` (one row per trial, plus the infeasible grid points; the ``results_frame``
   of the runner with the trials' ``arguments``, ``params``, host and measured latency added) and
   :func:`design_points` (one row per design point: mean and std of PSNR over seeds).
2. **Series** -- pure functions from those frames to :class:`FigureData` (titles, axis labels with units, the
   plotted numbers): :func:`fig_activation_share` (xUnit Fig. 4), :func:`fig_vs_size` (Fig. 3 / Fig. 6 style),
   :func:`fig_pareto` (with :func:`pareto_mask`), :func:`nsr_table` / :func:`memnet_grid` with
   :func:`fig_grid` (NSR Tables 2-3, MemNet Table 6), :func:`fig_importances`.
3. **Renderers** -- :func:`to_plotly` (interactive, for the HTML page) and :func:`to_png` (matplotlib). Both draw
   the same :class:`FigureData`, so the PNG copy shows exactly the numbers of the interactive figure. PNGs are
   drawn with matplotlib rather than plotly's kaleido: kaleido >= 1 drives a Chrome binary (the Debian package
   is ~80 MB to download, ~290 MB and 130 packages installed), too heavy for every CI run and every user.
4. **Page** -- :func:`write_report` writes ``report.html`` (plotly.js embedded once, so it works offline) and a
   PNG per figure under ``report_png/``.

plotly and matplotlib are imported inside the functions that draw.
"""

from __future__ import annotations

import html
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArchsearchError

#: Titles of the figures (the HTML page and the PNGs use them; tests look for them).
TITLES = {
    "activation": "PSNR vs share of parameters in activations (xUnit Fig. 4)",
    "params": "PSNR vs parameters (xUnit Fig. 3 style)",
    "macs": "PSNR vs MACs per pixel (xUnit Fig. 3 / Fig. 6 style)",
    "pareto_params": "Pareto front: PSNR vs parameters",
    "pareto_macs": "Pareto front: PSNR vs MACs per pixel",
    "pareto_latency": "Pareto front: PSNR vs measured latency",
    "nsr": "Mean PSNR by sparsity groups k x residual blocks (NSR Tables 2-3)",
    "memnet": "Mean PSNR by memory blocks M x recursions R (MemNet Table 6)",
    "importances": "Parameter importances for PSNR (Optuna, PED-ANOVA)",
}

AXES = {
    "activation_param_pct": "parameters in activations [% of all parameters]",
    "n_params": "parameters [count]",
    "macs_per_pixel": "MACs per output pixel [multiply-accumulates]",
    "latency_ms_per_mp": "latency [ms per output megapixel]",
}
PSNR_AXIS = "test PSNR [dB] (mean ± std over seeds)"

#: Arguments that make variants of a design at equal depth/size; lines of the size figures split by them.
VARIANT_KEYS = ("xunit_kernel_size", "sparsity_groups", "recursions", "cardinality", "xunit_design", "regime",
                "activation")

# Short names of swept arguments for point labels (the papers' letters).
_SHORT = {"xunit_kernel_size": "r", "sparsity_groups": "k", "recursions": "R", "n_blocks": "n", "cardinality": "d"}


# ---------------------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------------------
def open_ledger(study_file: str | Path, profile: str | None = None, output_dir: str | Path | None = None):
    """The study (validated) and its ledger (the Optuna study), as ``archsearch report`` reads them.

    ``output_dir`` overrides the study's output folder (and its default SQLite ledger there), as for
    ``archsearch run --output-dir``. Raises :class:`ArchsearchError` for an unknown study file or a missing ledger.
    """
    from .study import ledger as L
    from .study.schema import load_study

    study = load_study(study_file, profile, output_dir or None)
    return study, L.open_study(study, create=False)


def ledger_frame(study, ostudy=None):
    """One row per trial (and per infeasible grid point), as ``results_frame`` plus ``arguments`` (dict of the
    family arguments incl. the solved knob), ``params`` (Optuna's trial params), ``host``,
    ``latency_ms_per_mp``, ``latency_device`` and ``latency_input``. Search trials without a grid label get one
    from their design and searched params."""
    from .study import ledger as L
    from .study.runner import results_frame

    ostudy = ostudy or L.open_study(study, create=False)
    df = results_frame(study, ostudy)
    from .latency import stored_latency

    latency = stored_latency(ostudy)
    extra = {}
    for t in ostudy.get_trials(deepcopy=False):
        ua = t.user_attrs
        lat = latency.get(str(ua.get("spec_hash")), {})
        extra[t.number] = {"arguments": ua.get("arguments") or {}, "params": dict(t.params), "host": ua.get("host"),
                           "latency_ms_per_mp": lat.get("latency_ms_per_mp"),
                           "latency_device": lat.get("latency_device"), "latency_input": lat.get("latency_input")}
    for col in ("arguments", "params", "host", "latency_ms_per_mp", "latency_device", "latency_input"):
        df[col] = [extra.get(n, {}).get(col) if n is not None and not _isnan(n) else None for n in df["number"]]
    df["latency_ms_per_mp"] = df["latency_ms_per_mp"].astype(float)
    df["label"] = [lab if isinstance(lab, str) and lab else _label_from_params(d, p)
                   for lab, d, p in zip(df["label"], df["design"], df["params"])]
    return df


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _label_from_params(design: Any, params: Any) -> str | None:
    if not isinstance(params, dict):
        return design if isinstance(design, str) else None
    name = design if isinstance(design, str) else params.get("design")
    args = [f"{k.split('.', 1)[-1]}={v}" for k, v in sorted(params.items()) if k not in ("design", "seed")]
    return " ".join([str(name), *args]) if name is not None else None


def export_frame(df):
    """The frame with dict columns (``arguments``, ``params``) as JSON text, ready for CSV or parquet."""
    out = df.copy()
    for col in ("arguments", "params"):
        if col in out:
            out[col] = [json.dumps(v, sort_keys=True, default=str) if isinstance(v, dict) else None
                        for v in out[col]]
    return out


def write_table(df, path: str | Path) -> Path:
    """Write the ledger frame to ``.csv`` or ``.parquet`` (parquet needs pyarrow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = export_frame(df)
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ArchsearchError("parquet export needs pyarrow: pip install pyarrow") from None
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False)
    return path


def design_points(df):
    """One row per design point (label, design) of the COMPLETE trials: ``n_seeds``, ``psnr_mean``,
    ``psnr_std`` (sample std, NaN for one seed), sizes, ``latency_ms_per_mp`` (median over the point's trials),
    ``trials`` (their numbers) and ``short`` (a short label for annotations)."""
    import pandas as pd

    from .study.runner import summary_frame

    done = df[df["state"] == "COMPLETE"]
    points = summary_frame(df)
    if points.empty:
        return pd.DataFrame(columns=["label", "design", "n_seeds", "psnr_mean", "psnr_std", "n_params",
                                     "macs_per_pixel", "activation_param_pct", "sweep_value",
                                     "latency_ms_per_mp", "trials", "short"])
    g = done.groupby(["label", "design"], dropna=False)
    lat = g["latency_ms_per_mp"].median() if "latency_ms_per_mp" in done else None
    nums = g["number"].agg(lambda s: [int(v) for v in s])
    points = points.set_index(["label", "design"])
    points["latency_ms_per_mp"] = lat if lat is not None else float("nan")
    points["trials"] = nums
    points = points.reset_index()
    points["short"] = [_short_label(lab, des) for lab, des in zip(points["label"], points["design"])]
    return points.sort_values(["design", "activation_param_pct", "n_params"]).reset_index(drop=True)


def _compact(label: Any) -> str:
    text = str(label)
    for long, short in _SHORT.items():
        text = text.replace(f"{long}=", f"{short}=")
    return text


def _short_label(label: Any, design: Any) -> str:
    text = str(label)
    if isinstance(design, str) and text.startswith(design):
        text = text[len(design):].strip() or design
    return _compact(text)


# ---------------------------------------------------------------------------------------------------------
# figure data
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Series:
    """One trace: points (``x``, ``y``), optional error bars, hover text and annotations."""

    name: str
    x: list[float]
    y: list[float]
    err: list[float] | None = None
    hover: list[str] | None = None
    annotations: list[str] | None = None  # drawn next to the points
    lines: bool = True
    step: bool = False  # a staircase (Pareto front)
    emphasis: bool = False  # highlighted (the front); False and ``muted``: grey background points
    muted: bool = False


@dataclass
class FigureData:
    """What a figure shows, independent of the plotting library. ``kind``: ``lines``, ``grid`` (a heatmap of
    ``z`` with rows ``y_labels`` and columns ``x_labels``) or ``bars`` (horizontal, ``series[0]``)."""

    key: str
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    kind: str = "lines"
    xlog: bool = False
    note: str = ""  # the fidelity line, printed under the axes
    z: list[list[float]] | None = None
    x_labels: list[str] | None = None
    y_labels: list[str] | None = None
    value_label: str = ""


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _err(values) -> list[float]:
    return [float(v) if _finite(v) else 0.0 for v in values]


def _hover(row) -> str:
    seeds = int(row["n_seeds"])
    std = f" ± {row['psnr_std']:.3f}" if _finite(row["psnr_std"]) else ""
    trials = ", ".join(str(n) for n in row["trials"]) if isinstance(row.get("trials"), list) else ""
    return (f"{row['label']}<br>PSNR {row['psnr_mean']:.3f}{std} dB ({seeds} seed{'s' if seeds != 1 else ''})"
            f"<br>{int(row['n_params']):,} params, {row['macs_per_pixel']:,.0f} MACs/pixel, "
            f"{row['activation_param_pct']:.2f}% in activations<br>trials {trials}")


def _log_scale(values) -> bool:
    v = [float(x) for x in values if _finite(x) and float(x) > 0]
    return len(v) > 1 and max(v) / min(v) > 20


def fig_activation_share(points, note: str = "") -> FigureData | None:
    """PSNR (mean ± std over seeds) vs the activation-parameter share, one line per design (xUnit Fig. 4)."""
    pts = points[[_finite(v) for v in points["activation_param_pct"]]] if len(points) else points
    if pts.empty or not (pts["activation_param_pct"].astype(float) > 0).any():
        return None  # no design puts parameters in its activations: nothing to compare
    fig = FigureData("psnr_vs_activation", TITLES["activation"], AXES["activation_param_pct"], PSNR_AXIS, note=note)
    for design, part in pts.groupby("design", sort=True):
        part = part.sort_values("activation_param_pct")
        fig.series.append(Series(str(design), part["activation_param_pct"].astype(float).tolist(),
                                 part["psnr_mean"].astype(float).tolist(), _err(part["psnr_std"]),
                                 [_hover(r) for _, r in part.iterrows()], part["short"].tolist(),
                                 lines=len(part) > 1))
    return fig


def _natural(text: str) -> list[Any]:
    """Sort key that orders ``r=9`` before ``r=11``."""
    import re

    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text)]


def _tokens(label: Any) -> dict[str, str]:
    """The ``key=value`` words of a label (``xnet depth=4 xunit_kernel_size=9``)."""
    return dict(w.split("=", 1) for w in str(label).split()[1:] if "=" in w)


def _lines(pts, x: str) -> list[tuple[str, Any, list[str]]]:
    """How to join points into lines: one line per design, or -- when that would zig-zag because a second
    argument varies at equal size (NSR's k at each number of blocks, xUnit's r at each depth) -- one line per
    design and value of that argument (:data:`VARIANT_KEYS`). Returns (name, rows, point annotations)."""
    rows = [(r["design"], tuple((k, v) for k, v in _tokens(r["label"]).items() if k in VARIANT_KEYS))
            for _, r in pts.iterrows()]
    variant = [f"{d}" + "".join(f" {k}={v}" for k, v in var) for d, var in rows]
    use_variant = any(len(set(pts[x][[v == name for v in variant]])) > 1 for name in set(variant)) and \
        len(set(variant)) > len(set(pts["design"]))
    out = []
    keys = variant if use_variant else [str(d) for d in pts["design"]]
    for name in sorted(set(keys), key=_natural):
        part = pts[[k == name for k in keys]].sort_values(x)
        if use_variant:
            notes = [_compact(" ".join(f"{k}={v}" for k, v in _tokens(lab).items() if k not in VARIANT_KEYS)
                              or design) for lab, design in zip(part["label"], part["design"])]
        else:
            notes = part["short"].tolist()
        out.append((_compact(name), part, notes))
    return out


def fig_vs_size(points, x: str = "n_params", note: str = "") -> FigureData | None:
    """PSNR (mean ± std) vs ``x`` (``n_params`` or ``macs_per_pixel``), one line per design (or per design and
    variant, see :func:`_lines`)."""
    if x not in ("n_params", "macs_per_pixel"):
        raise ArchsearchError(f"fig_vs_size: x must be n_params or macs_per_pixel, got {x!r}")
    pts = points[[_finite(v) for v in points[x]]] if len(points) else points
    if pts.empty:
        return None
    key, title = ("psnr_vs_params", TITLES["params"]) if x == "n_params" else ("psnr_vs_macs", TITLES["macs"])
    fig = FigureData(key, title, AXES[x], PSNR_AXIS, note=note, xlog=_log_scale(pts[x]))
    for name, part, notes in _lines(pts, x):
        fig.series.append(Series(name, part[x].astype(float).tolist(), part["psnr_mean"].astype(float).tolist(),
                                 _err(part["psnr_std"]), [_hover(r) for _, r in part.iterrows()], notes,
                                 lines=len(part) > 1))
    return fig


def pareto_mask(cost: Sequence[float], quality: Sequence[float]) -> list[bool]:
    """Non-dominated points for *cost* to minimise and *quality* to maximise.

    A point is dominated when another has cost <= and quality >= with at least one strict; equal points are
    all kept. Points with a missing (NaN/None) value are never on the front.
    """
    n = len(cost)
    if len(quality) != n:
        raise ArchsearchError(f"pareto_mask: cost and quality must have equal lengths, got {n} and {len(quality)}")
    ok = [_finite(cost[i]) and _finite(quality[i]) for i in range(n)]
    c = [float(v) if ok[i] else 0.0 for i, v in enumerate(cost)]
    q = [float(v) if ok[i] else 0.0 for i, v in enumerate(quality)]
    mask = []
    for i in range(n):
        if not ok[i]:
            mask.append(False)
            continue
        dominated = any(ok[j] and c[j] <= c[i] and q[j] >= q[i] and (c[j] < c[i] or q[j] > q[i]) for j in range(n))
        mask.append(not dominated)
    return mask


def pareto_front(points, x: str):
    """The design points with a value of ``x``, with a boolean column ``on_front`` (PSNR up, ``x`` down)."""
    pts = points[[_finite(v) for v in points[x]]].copy() if len(points) else points.copy()
    pts["on_front"] = pareto_mask(pts[x].tolist(), pts["psnr_mean"].tolist()) if len(pts) else []
    return pts


def fig_pareto(points, x: str = "n_params", note: str = "") -> FigureData | None:
    """PSNR vs ``x`` (parameters, MACs per pixel or latency) with the non-dominated design points highlighted,
    joined by a staircase and labelled."""
    keys = {"n_params": "pareto_params", "macs_per_pixel": "pareto_macs", "latency_ms_per_mp": "pareto_latency"}
    if x not in keys:
        raise ArchsearchError(f"fig_pareto: x must be one of {', '.join(keys)}, got {x!r}")
    if x not in points:
        return None
    pts = pareto_front(points, x)
    if pts.empty:
        return None
    fig = FigureData(keys[x], TITLES[keys[x]], AXES[x] + " (lower is better)", "test PSNR [dB] (mean over seeds)",
                     note=note, xlog=_log_scale(pts[x]))
    rest, front = pts[~pts["on_front"]], pts[pts["on_front"]].sort_values(x)
    if not rest.empty:
        fig.series.append(Series(f"dominated ({len(rest)})", rest[x].astype(float).tolist(),
                                 rest["psnr_mean"].astype(float).tolist(), None,
                                 [_hover(r) for _, r in rest.iterrows()],
                                 [_compact(v) for v in rest["label"]] if len(rest) <= 12 else None,
                                 lines=False, muted=True))
    fig.series.append(Series(f"non-dominated ({len(front)})", front[x].astype(float).tolist(),
                             front["psnr_mean"].astype(float).tolist(), None,
                             [_hover(r) for _, r in front.iterrows()], [_compact(v) for v in front["label"]],
                             lines=True, step=True, emphasis=True))
    return fig


# ---------------------------------------------------------------------------------------------------------
# tables (NSR Tables 2-3, MemNet Table 6)
# ---------------------------------------------------------------------------------------------------------
def _argument_frame(df, keys: Sequence[str]):
    import pandas as pd

    done = df[df["state"] == "COMPLETE"]
    rows = []
    for _, r in done.iterrows():
        args = r.get("arguments") if isinstance(r.get("arguments"), dict) else {}
        rows.append({"design": r["design"], "psnr": r["psnr"], "n_params": r["n_params"],
                     **{k: args.get(k) for k in keys}})
    return pd.DataFrame(rows, columns=["design", "psnr", "n_params", *keys])


def nsr_table(df, value: str = "psnr"):
    """NSR Tables 2-3: rows = sparsity groups k, columns = residual blocks, cells = mean ``value`` over the
    COMPLETE trials (seeds). Designs with ``n_blocks`` but no ``sparsity_groups`` (the dense baseline) form the
    row ``N/A``; with several sparse designs (e.g. both regimes) the rows are ``<design> k=<k>``. None when no
    trial's arguments hold both keys."""
    a = _argument_frame(df, ("sparsity_groups", "n_blocks"))
    a = a[a["n_blocks"].notna()]
    sparse = a[a["sparsity_groups"].notna()]
    if sparse.empty:
        return None
    sparse_designs = sorted(sparse["design"].unique())
    dense_designs = sorted(set(a[a["sparsity_groups"].isna()]["design"]))

    def row(design: str, k: Any) -> tuple[tuple[int, str, int], str]:
        if k is None or _isnan(k):  # the dense baseline
            return (0, design, 0), "N/A" if len(dense_designs) <= 1 else f"{design} N/A"
        multi = len(sparse_designs) > 1
        return (1, design if multi else "", int(k)), f"{design} k={int(k)}" if multi else str(int(k))

    a = a.copy()
    keyed = [row(d, k) for d, k in zip(a["design"], a["sparsity_groups"])]
    a["row"] = [name for _, name in keyed]
    a["n_blocks"] = a["n_blocks"].astype(int)
    table = a.pivot_table(index="row", columns="n_blocks", values=value, aggfunc="mean")
    table = table.reindex([name for _, name in sorted(set(keyed))])
    table.index.name = "sparsity_groups"
    table.columns.name = "n_blocks"
    return table


def memnet_grid(df, value: str = "psnr"):
    """MemNet Table 6 as a grid: rows = memory blocks M (``n_blocks``), columns = recursions R, cells = mean
    ``value`` over the COMPLETE trials. None when no trial's arguments hold both keys."""
    a = _argument_frame(df, ("n_blocks", "recursions"))
    a = a[a["n_blocks"].notna() & a["recursions"].notna()]
    if a.empty:
        return None
    a = a.astype({"n_blocks": int, "recursions": int})
    table = a.pivot_table(index="n_blocks", columns="recursions", values=value, aggfunc="mean")
    return table.sort_index().sort_index(axis=1)


def fig_grid(table, key: str, title: str, row_label: str, col_label: str, note: str = "",
             value_label: str = "mean test PSNR [dB]") -> FigureData:
    """A heatmap of a pivot table (NaN cells stay empty)."""
    z = [[float(v) if _finite(v) else float("nan") for v in row] for row in table.to_numpy().tolist()]
    return FigureData(key, title, col_label, row_label, kind="grid", note=note, z=z,
                      x_labels=[str(c) for c in table.columns], y_labels=[str(i) for i in table.index],
                      value_label=value_label)


# ---------------------------------------------------------------------------------------------------------
# importances
# ---------------------------------------------------------------------------------------------------------
def param_importances(study, ostudy) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances for PSNR when the study was a search with >= 2 COMPLETE trials whose
    params vary; otherwise ``(None, reason)``. Multi-objective searches are assessed on PSNR (objective 0)."""
    import optuna
    from optuna.trial import TrialState

    if study.config.search is None:
        return None, "not a search (a sweep's grid is shown in the figures above)"
    done = ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return None, f"needs at least 2 complete trials, the ledger has {len(done)}"
    varying = {k for t in done for k in t.params if len({str(u.params.get(k)) for u in done}) > 1}
    if not varying:
        return None, "the complete trials all have the same parameters"
    target = None if len(ostudy.directions) == 1 else (lambda t: t.values[0])
    try:
        imp = optuna.importance.get_param_importances(ostudy, target=target)
    except (ValueError, RuntimeError) as err:
        return None, f"Optuna could not assess them: {err}"
    if not imp:
        return None, "Optuna returned no importances"
    return dict(imp), ""


def fig_importances(importances: dict[str, float], note: str = "") -> FigureData:
    names = list(importances)[::-1]  # largest on top
    return FigureData("param_importances", TITLES["importances"], "importance (normalised: the values sum to 1)",
                      "parameter", [Series("importance", [float(importances[n]) for n in names],
                                           list(range(len(names))), annotations=names)], kind="bars", note=note,
                      y_labels=names)


# ---------------------------------------------------------------------------------------------------------
# renderers
# ---------------------------------------------------------------------------------------------------------
_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def to_plotly(fig: FigureData):
    """An interactive plotly figure of ``fig``."""
    import plotly.graph_objects as go

    out = go.Figure()
    if fig.kind == "grid":
        text = [[f"{v:.2f}" if _finite(v) else "" for v in row] for row in fig.z or []]
        out.add_trace(go.Heatmap(z=fig.z, x=fig.x_labels, y=fig.y_labels, text=text, texttemplate="%{text}",
                                 colorscale="Viridis", colorbar={"title": {"text": fig.value_label}},
                                 hovertemplate=f"{fig.ylabel} %{{y}}, {fig.xlabel} %{{x}}: %{{z:.3f}} dB"
                                               "<extra></extra>"))
        out.update_xaxes(type="category", title_text=fig.xlabel)
        out.update_yaxes(type="category", title_text=fig.ylabel, autorange="reversed")
    elif fig.kind == "bars":
        s = fig.series[0]
        out.add_trace(go.Bar(x=s.x, y=fig.y_labels, orientation="h", marker_color=_PALETTE[0],
                             text=[f"{v:.2f}" for v in s.x], textposition="auto"))
        out.update_xaxes(title_text=fig.xlabel)
        out.update_yaxes(title_text=fig.ylabel)
    else:
        color = 0
        for s in fig.series:
            c = "#9a9a9a" if s.muted else _PALETTE[color % len(_PALETTE)]
            color += 0 if s.muted else 1
            mode = ("lines+" if s.lines else "") + "markers" + ("+text" if s.annotations else "")
            out.add_trace(go.Scatter(
                x=s.x, y=s.y, name=s.name, mode=mode, text=s.annotations, textposition="top center",
                textfont={"size": 10}, hovertext=s.hover, hoverinfo="text" if s.hover else None,
                error_y={"type": "data", "array": s.err, "visible": True} if s.err else None,
                line={"color": c, "shape": "hv" if s.step else "linear"},
                marker={"color": c, "size": 11 if s.emphasis else 8,
                        "symbol": "star" if s.emphasis else "circle"}))
        out.update_xaxes(title_text=fig.xlabel, type="log" if fig.xlog else "linear")
        out.update_yaxes(title_text=fig.ylabel)
    out.update_layout(title={"text": fig.title}, template="plotly_white", height=480,
                      margin={"l": 70, "r": 30, "t": 60, "b": 90 if fig.note else 60})
    if fig.note:
        out.add_annotation(text=html.escape(fig.note), xref="paper", yref="paper", x=0, y=-0.22, showarrow=False,
                           font={"size": 10, "color": "#666"}, xanchor="left")
    return out


def to_png(fig: FigureData, path: str | Path, dpi: int = 130) -> Path:
    """A static PNG of ``fig`` drawn with matplotlib (the same numbers as :func:`to_plotly`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.kind == "grid":
        import numpy as np

        z = np.array(fig.z, dtype=float)
        w = max(5.0, 1.1 * z.shape[1] + 3.0)
        h = max(3.2, 0.55 * z.shape[0] + 1.8)
        mfig, ax = plt.subplots(figsize=(w, h), dpi=dpi)
        im = ax.imshow(np.ma.masked_invalid(z), cmap="viridis", aspect="auto")
        cb = mfig.colorbar(im, ax=ax)
        cb.set_label(fig.value_label, fontsize=8)
        ax.set_xticks(range(len(fig.x_labels or [])), fig.x_labels)
        ax.set_yticks(range(len(fig.y_labels or [])), fig.y_labels)
        finite = z[np.isfinite(z)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                if np.isfinite(z[i, j]):
                    ax.text(j, i, f"{z[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if z[i, j] < mid else "black")
    elif fig.kind == "bars":
        s = fig.series[0]
        mfig, ax = plt.subplots(figsize=(6.4, max(2.6, 0.45 * len(s.x) + 1.6)), dpi=dpi)
        ax.barh(range(len(s.x)), s.x, color=_PALETTE[0])
        ax.set_yticks(range(len(s.x)), fig.y_labels)
        for i, v in enumerate(s.x):
            ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, max(s.x + [1e-9]) * 1.18)
    else:
        mfig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=dpi)
        color = 0
        for s in fig.series:
            c = "#9a9a9a" if s.muted else _PALETTE[color % len(_PALETTE)]
            color += 0 if s.muted else 1
            marker = "*" if s.emphasis else "o"
            size = 11 if s.emphasis else 6
            if s.step and len(s.x) > 1:
                ax.step(s.x, s.y, where="post", color=c, alpha=0.7)
                ax.plot(s.x, s.y, linestyle="none", marker=marker, markersize=size, color=c, label=s.name)
            elif s.err and any(s.err):
                ax.errorbar(s.x, s.y, yerr=s.err, marker=marker, markersize=size, capsize=3, color=c,
                            linestyle="-" if s.lines else "none", label=s.name)
            else:
                ax.plot(s.x, s.y, marker=marker, markersize=size, color=c, linestyle="-" if s.lines else "none",
                        label=s.name, alpha=0.8 if s.muted else 1.0)
        if fig.xlog:
            ax.set_xscale("log")
        elif max((abs(x) for s in fig.series for x in s.x if _finite(x)), default=0) >= 1e4:
            from matplotlib.ticker import FuncFormatter

            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.margins(x=0.08, y=0.12)
    ax.set_xlabel(fig.xlabel, fontsize=9)
    ax.set_ylabel(fig.ylabel, fontsize=9)
    ax.set_title(fig.title, fontsize=10)
    note = "\n".join(textwrap.wrap(fig.note, 125)) if fig.note else ""  # never cut at the figure's edge
    if note:
        mfig.text(0.01, 0.01, note, fontsize=6.5, color="0.35")
    mfig.tight_layout(rect=(0, 0.025 + 0.02 * note.count("\n") + 0.015 if note else 0, 1, 1))
    if fig.kind == "lines":
        _annotate(ax, fig, mfig)  # after the layout: placement is in final display coordinates
    mfig.savefig(path)
    plt.close(mfig)
    return path


_OFFSETS = [(6, 5, "left", "bottom"), (6, -5, "left", "top"), (-6, 5, "right", "bottom"), (-6, -5, "right", "top"),
            (6, 15, "left", "bottom"), (6, -15, "left", "top"), (-6, 15, "right", "bottom"),
            (-6, -15, "right", "top"), (0, 25, "center", "bottom"), (0, -25, "center", "top")]


def _annotate(ax, fig: FigureData, mfig) -> None:
    """Point labels placed greedily: the highlighted series first, each label at the first of a few offsets
    around its point where it overlaps no label or marker placed before and stays inside the axes."""
    renderer = mfig.canvas.get_renderer()
    axbox = ax.get_window_extent(renderer)
    markers = [ax.transData.transform((x, y)) for s in fig.series for x, y in zip(s.x, s.y)
               if _finite(x) and _finite(y)]
    placed: list[Any] = []
    colors, color = {}, 0
    for s in fig.series:
        colors[id(s)] = "#9a9a9a" if s.muted else _PALETTE[color % len(_PALETTE)]
        color += 0 if s.muted else 1
    for s in sorted(fig.series, key=lambda s: not s.emphasis):
        for i, text in enumerate(s.annotations or []):
            def put(offset, s=s, i=i, text=text):
                dx, dy, ha, va = offset
                return ax.annotate(text, (s.x[i], s.y[i]), textcoords="offset points", xytext=(dx, dy), ha=ha,
                                   va=va, fontsize=7, color="black" if s.emphasis else colors[id(s)])

            chosen, fallback = None, None
            for offset in _OFFSETS:
                ann = put(offset)
                box = ann.get_window_extent(renderer).expanded(1.05, 1.15)
                inside = axbox.contains(box.x0, box.y0) and axbox.contains(box.x1, box.y1)
                free = not any(box.overlaps(b) for b in placed) and not any(
                    box.x0 - 3 < mx < box.x1 + 3 and box.y0 - 3 < my < box.y1 + 3 for mx, my in markers)
                if inside and free:
                    chosen = box
                    break
                fallback = fallback or (offset if inside else None)
                ann.remove()
            if chosen is None:  # crowded: the first offset inside the axes
                chosen = put(fallback or _OFFSETS[0]).get_window_extent(renderer)
            placed.append(chosen)


# ---------------------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Report:
    html: Path
    pngs: list[Path]
    frame: Any
    figures: list[FigureData]
    n_complete: int
    skipped: list[str]  # figures not drawn, with the reason


def _cli_args(study) -> str:
    """The ``--profile`` / ``--output-dir`` options that name this study's ledger on the command line."""
    c = study.config
    default = Path(c.output_dir) if c.output_dir else Path("runs") / (
        c.name if study.profile == "default" else f"{c.name}-{study.profile}")
    args = f" --profile {study.profile}" if study.profile != "default" else ""
    if Path(study.output_dir) != default:
        args += f" --output-dir {study.output_dir}"
    return args


def _fidelity_note(study, ostudy) -> str:
    return str(ostudy.user_attrs.get("fidelity") or study.config.fidelity or "fidelity not stated in the study file")


def build_figures(study, df, ostudy) -> tuple[list[FigureData], list[str], dict[str, Any]]:
    """Every figure the ledger supports, the reasons for those left out, and the tables (NSR, MemNet)."""
    note = _fidelity_note(study, ostudy)
    points = design_points(df)
    figs: list[FigureData] = []
    skipped: list[str] = []
    tables: dict[str, Any] = {}
    if points.empty:
        return figs, ["no complete trials: nothing to plot"], tables
    for make, what in ((lambda: fig_activation_share(points, note), "activation share"),
                       (lambda: fig_vs_size(points, "n_params", note), "parameters"),
                       (lambda: fig_vs_size(points, "macs_per_pixel", note), "MACs")):
        f = make()
        figs.append(f) if f else skipped.append(f"PSNR vs {what}: no values in the ledger" if what != "activation share"
                                                else "PSNR vs activation share: no design has parameters in "
                                                     "its activations")
    for x in ("n_params", "macs_per_pixel", "latency_ms_per_mp"):
        sub = points
        if x == "latency_ms_per_mp":
            lat = df[(df["state"] == "COMPLETE") & df["latency_ms_per_mp"].notna()]
            if lat.empty:
                skipped.append(f"{TITLES['pareto_latency']}: no latency measured yet "
                               f"(run `archsearch latency {study.path}{_cli_args(study)}`)")
                continue
            devices = lat["latency_device"].value_counts()
            if len(devices) > 1:  # never mix devices on one time axis
                keep = devices.index[0]
                skipped.append(f"{TITLES['pareto_latency']}: latency measured on {len(devices)} devices; "
                               f"showing {keep} only")
                sub = design_points(df[(df["latency_device"] == keep) | df["latency_device"].isna()])
            f = fig_pareto(sub, x, note + f" | latency: {lat['latency_device'].iloc[0]}, input "
                                          f"{lat['latency_input'].iloc[0]}")
        else:
            f = fig_pareto(sub, x, note)
        if f:
            figs.append(f)
    nsr = nsr_table(df)
    if nsr is not None:
        tables["nsr"] = nsr
        figs.append(fig_grid(nsr, "nsr_table", TITLES["nsr"], "sparsity groups k", "residual blocks", note))
    mem = memnet_grid(df)
    if mem is not None:
        tables["memnet"] = mem
        figs.append(fig_grid(mem, "memnet_grid", TITLES["memnet"], "memory blocks M", "recursions R", note))
    imp, why = param_importances(study, ostudy)
    if imp:
        tables["importances"] = imp
        figs.append(fig_importances(imp, note))
    else:
        skipped.append(f"parameter importances: {why}")
    return figs, skipped, tables


def _esc(v: Any) -> str:
    if v is None or _isnan(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # trial numbers and seeds read back from a frame with NaNs
    return html.escape(str(v))


def _html_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _header(study, ostudy, df) -> str:
    c = study.config
    counts = df["state"].value_counts().to_dict()
    training = dict(c.training)
    facts = [
        ("task", ", ".join(f"{k}={v}" for k, v in dict(c.task).items())),
        ("data", f"train {c.data.train}, validation {c.data.val}, test {c.data.test}"
                 + (f" (root {c.data.data_root})" if c.data.data_root else "")),
        ("training", f"{training.get('steps', '?')} steps, batch {training.get('batch_size', '?')}, "
                     f"patch {training.get('patch_size', '?')}, "
                     + ", ".join(f"{k} {v}" for k, v in training.items()
                                 if k not in ("steps", "batch_size", "patch_size"))),
        ("training device", f"{training.get('device', 'auto')} (auto: CUDA when available, else CPU); hosts: "
                            + (", ".join(sorted({str(h) for h in df["host"].dropna()})) or "none yet")),
        ("seeds", ", ".join(str(s) for s in c.seeds)),
        ("budget", f"{c.budget.value:,.0f} {c.budget.metric} (tolerance {c.budget.tolerance})" if c.budget
         else "none"),
        ("design", f"sweep over {c.sweep.over}: {list(c.sweep.values)}" if c.sweep else
         f"search: {c.search.sampler}, {c.search.n_trials} trials, objectives {list(c.search.objectives)}"),
        ("search space", f"{study.space.name} ({', '.join(d.name for d in study.space.designs)})"),
        ("ledger", f"{study.storage_url} (study {study.name})"),
        ("trials", ", ".join(f"{v} {k.lower()}" for k, v in counts.items()) or "none"),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    return (f"<h1>Study {html.escape(study.name)}</h1><p>{html.escape(c.description)}</p>"
            f"<p class='fidelity'><b>Fidelity:</b> {html.escape(_fidelity_note(study, ostudy))}</p>"
            f"<table class='facts'>{rows}</table>")


_CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}table.facts th{background:#f3f3f3;width:150px}
.fidelity{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px;font-size:15px}
.empty{background:#eef3ff;border:1px solid #88a;padding:12px;font-size:15px}.muted{color:#666}"""


def write_report(study, ostudy=None, out_dir: str | Path | None = None, *, png: bool = True) -> Report:
    """Write ``report.html`` (and ``report_png/<figure>.png`` per figure) for a study; see the module docstring.

    Only finished trials are plotted; RUNNING and WAITING trials are listed, FAIL/PRUNED trials and infeasible
    grid points are listed with their reasons. Without a COMPLETE trial the page says so instead of drawing
    empty axes.
    """
    from .study import ledger as L

    ostudy = ostudy or L.open_study(study, create=False)
    df = ledger_frame(study, ostudy)
    out = Path(out_dir) if out_dir else Path(study.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs, skipped, tables = build_figures(study, df, ostudy)
    n_complete = int((df["state"] == "COMPLETE").sum())
    parts = [_header(study, ostudy, df)]
    pngs: list[Path] = []
    if n_complete == 0:
        parts.append("<p class='empty'><b>No complete trials yet</b> — nothing to plot. "
                     "The trials in the ledger are listed below; re-run <code>archsearch report</code> when some "
                     "have finished.</p>")
    first = True
    for f in figs:
        parts.append(f"<h2>{html.escape(f.title)}</h2>")
        parts.append(to_plotly(f).to_html(full_html=False, include_plotlyjs=first, default_width="100%"))
        first = False
        if f.key == "nsr_table":
            parts.append(tables["nsr"].round(3).to_html(na_rep="", border=0))
        if f.key == "memnet_grid":
            parts.append(tables["memnet"].round(3).to_html(na_rep="", border=0))
        if png:
            p = to_png(f, out / "report_png" / f"{f.key}.png")
            pngs.append(p)
            parts.append(f"<p class='muted'>PNG copy (matplotlib): <a href='{html.escape(str(p.relative_to(out)))}'>"
                         f"{html.escape(p.name)}</a></p>")
    if figs:
        points = design_points(df)
        parts.append("<h2>Design points (mean over seeds)</h2>")
        cols = ["label", "design", "n_seeds", "psnr_mean", "psnr_std", "n_params", "macs_per_pixel",
                "activation_param_pct", "latency_ms_per_mp"]
        view = points[cols].copy()
        for col in ("psnr_mean", "psnr_std", "macs_per_pixel", "activation_param_pct", "latency_ms_per_mp"):
            view[col] = view[col].astype(float).round(3)
        parts.append(view.to_html(index=False, na_rep="", border=0))
    if skipped:
        parts.append("<h2>Not shown</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>")
    parts.append(_status_tables(df))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>archsearch report: {html.escape(study.name)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return Report(path, pngs, df, figs, n_complete, skipped)


def _status_tables(df) -> str:
    parts = []
    active = df[df["state"].isin(["RUNNING", "WAITING"])]
    parts.append(f"<h2>Running and queued trials ({len(active)})</h2>")
    parts.append(_html_table(active.to_dict("records"), ["number", "state", "label", "seed"]) if len(active)
                 else "<p class='muted'>none</p>")
    bad = df[df["state"].isin(["FAIL", "PRUNED"])]
    parts.append(f"<h2>Failed and pruned trials ({len(bad)})</h2>")
    parts.append(_html_table(bad.to_dict("records"), ["number", "state", "label", "seed", "fail_reason"]) if len(bad)
                 else "<p class='muted'>none</p>")
    inf = df[df["state"] == "INFEASIBLE"]
    parts.append(f"<h2>Infeasible grid points ({len(inf)})</h2>")
    parts.append(_html_table(inf.to_dict("records"), ["design", "sweep_value", "label", "fail_reason"]) if len(inf)
                 else "<p class='muted'>none</p>")
    return "\n".join(parts)
