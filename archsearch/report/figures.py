"""Report figures: pure functions from the frames of :mod:`.data` to :class:`FigureData` (titles, axis labels
with units, the plotted numbers), and two renderers of the same data -- :func:`to_plotly` (interactive, for the
HTML page) and :func:`to_png` (matplotlib). PNGs are drawn with matplotlib rather than plotly's kaleido:
kaleido >= 1 drives a Chrome binary (~290 MB installed), too heavy for every CI run and every user. plotly and
matplotlib are imported inside the functions that draw."""

from __future__ import annotations

import html
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import ArchsearchError
from ..families import variant_arguments
from .tables import PUBLISHED, compact_label, is_finite, pareto_front, shown_label

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
    "fidelity": "Ranking fidelity: validation PSNR at each step vs final test PSNR (Spearman)",
}

AXES = {
    "activation_param_pct": "parameters in activations [% of all parameters]",
    "n_params": "parameters [count]",
    "macs_per_pixel": "MACs per output pixel [multiply-accumulates]",
    "latency_ms_per_mp": "latency [ms per output megapixel]",
}
PSNR_AXIS = "test PSNR [dB] (mean ± std over seeds)"

#: Arguments that make variants of a design at equal depth/size; lines of the size figures split by them.


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
    published: bool = False  # published numbers (open diamonds, no line), not measured ones


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
    hlines: list[tuple[float, str]] = field(default_factory=list)  # reference PSNRs: (value, label)
    claims: list[str] = field(default_factory=list)  # verdict lines drawn under the title


def _err(values) -> list[float]:
    return [float(v) if is_finite(v) else 0.0 for v in values]


def _hover(row) -> str:
    seeds = int(row["n_seeds"])
    std = f" ± {row['psnr_std']:.3f}" if is_finite(row["psnr_std"]) else ""
    trials = ", ".join(str(n) for n in row["trials"]) if isinstance(row.get("trials"), list) else ""
    label = f"{row['label']} ({PUBLISHED})" if row.get("weights") == "published" else row["label"]
    return (f"{label}<br>PSNR {row['psnr_mean']:.3f}{std} dB ({seeds} seed{'s' if seeds != 1 else ''})"
            f"<br>{int(row['n_params']):,} params, {row['macs_per_pixel']:,.0f} MACs/pixel, "
            f"{row['activation_param_pct']:.2f}% in activations<br>trials {trials}")


def _log_scale(values) -> bool:
    v = [float(x) for x in values if is_finite(x) and float(x) > 0]
    return len(v) > 1 and max(v) / min(v) > 20


def fig_activation_share(points, note: str = "", verdicts=(), published=None) -> FigureData | None:
    """PSNR (mean ± std over seeds) vs the activation-parameter share, one line per design (xUnit Fig. 4).
    ``verdicts`` (:class:`~archsearch.claims.Verdict`) are written under the title; ``published``
    (label -> published row dict) adds the rows in dB as a separate series at the measured point's share."""
    pts = points[[is_finite(v) for v in points["activation_param_pct"]]] if len(points) else points
    if pts.empty or not (pts["activation_param_pct"].astype(float) > 0).any():
        return None  # no design puts parameters in its activations: nothing to compare
    fig = FigureData("psnr_vs_activation", TITLES["activation"], AXES["activation_param_pct"], PSNR_AXIS, note=note)
    for design, part in pts.groupby("design", sort=True):
        part = part.sort_values("activation_param_pct")
        fig.series.append(Series(str(design), part["activation_param_pct"].astype(float).tolist(),
                                 part["psnr_mean"].astype(float).tolist(), _err(part["psnr_std"]),
                                 [_hover(r) for _, r in part.iterrows()], part["short"].tolist(),
                                 lines=len(part) > 1))
    fig.claims = [v.short() for v in verdicts]
    pub = [(float(r["activation_param_pct"]), row) for _, r in pts.iterrows()
           for row in [(published or {}).get(r["label"])] if row and row["unit"] == "dB"]
    if pub:
        pub.sort(key=lambda t: t[0])
        fig.series.append(Series("published (paper; for reference)", [x for x, _ in pub],
                                 [float(row["value"]) for _, row in pub], None,
                                 [f"{row['id']}: {'~' if row['approximate'] else ''}{row['value']:g} dB "
                                  f"({row['paper']} {row['table']})" for _, row in pub], None, lines=False,
                                 published=True))
    return fig


def _natural(text: str) -> list[Any]:
    """Sort key that orders ``r=9`` before ``r=11``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text)]


def _tokens(label: Any) -> dict[str, str]:
    """The ``key=value`` words of a label (``xnet depth=4 xunit_kernel_size=9``)."""
    return dict(w.split("=", 1) for w in str(label).split()[1:] if "=" in w)


def _lines(pts, x: str) -> list[tuple[str, Any, list[str]]]:
    """How to join points into lines: one line per design, or -- when that would zig-zag because a second
    argument varies at equal size (NSR's k at each number of blocks, xUnit's r at each depth) -- one line per
    design and value of that argument (the families' ``variants``, :func:`~archsearch.families.variant_arguments`).
    Returns (name, rows, point annotations)."""
    variants = variant_arguments()
    rows = [(r["design"], tuple((k, v) for k, v in _tokens(r["label"]).items() if k in variants))
            for _, r in pts.iterrows()]
    variant = [f"{d}" + "".join(f" {k}={v}" for k, v in var) for d, var in rows]
    use_variant = any(len(set(pts[x][[v == name for v in variant]])) > 1 for name in set(variant)) and \
        len(set(variant)) > len(set(pts["design"]))
    out = []
    keys = variant if use_variant else [str(d) for d in pts["design"]]
    for name in sorted(set(keys), key=_natural):
        part = pts[[k == name for k in keys]].sort_values(x)
        if use_variant:
            notes = [compact_label(" ".join(f"{k}={v}" for k, v in _tokens(lab).items() if k not in variants)
                              or design) for lab, design in zip(part["label"], part["design"])]
        else:
            notes = part["short"].tolist()
        out.append((compact_label(name), part, notes))
    return out


def fig_vs_size(points, x: str = "n_params", note: str = "") -> FigureData | None:
    """PSNR (mean ± std) vs ``x`` (``n_params`` or ``macs_per_pixel``), one line per design (or per design and
    variant, see :func:`_lines`)."""
    if x not in ("n_params", "macs_per_pixel"):
        raise ArchsearchError(f"fig_vs_size: x must be n_params or macs_per_pixel, got {x!r}")
    pts = points[[is_finite(v) for v in points[x]]] if len(points) else points
    if pts.empty:
        return None
    key, title = ("psnr_vs_params", TITLES["params"]) if x == "n_params" else ("psnr_vs_macs", TITLES["macs"])
    fig = FigureData(key, title, AXES[x], PSNR_AXIS, note=note, xlog=_log_scale(pts[x]))
    for name, part, notes in _lines(pts, x):
        fig.series.append(Series(name, part[x].astype(float).tolist(), part["psnr_mean"].astype(float).tolist(),
                                 _err(part["psnr_std"]), [_hover(r) for _, r in part.iterrows()], notes,
                                 lines=len(part) > 1))
    return fig


def fig_pareto(points, x: str = "n_params", note: str = "", references=()) -> FigureData | None:
    """PSNR vs ``x`` (parameters, MACs per pixel or latency) with the non-dominated design points highlighted,
    joined by a staircase and labelled with their family; dominated points are coloured by family. ``references``
    (:class:`~archsearch.study.config.ReferenceLine`, or ``(psnr, label)`` pairs: a published model's PSNR on the
    same test set) are drawn as reference points where they give their size on this axis, else as dashed
    lines."""
    keys = {"n_params": "pareto_params", "macs_per_pixel": "pareto_macs", "latency_ms_per_mp": "pareto_latency"}
    if x not in keys:
        raise ArchsearchError(f"fig_pareto: x must be one of {', '.join(keys)}, got {x!r}")
    if x not in points:
        return None
    pts = pareto_front(points, x)
    if pts.empty:
        return None
    refs = [r if not isinstance(r, tuple) else SimpleNamespace(psnr=r[0], label=r[1]) for r in references]
    at = [r for r in refs if getattr(r, x, None) is not None]  # a size on this axis: a reference point
    xs = [*pts[x].tolist(), *(getattr(r, x) for r in at)]
    fig = FigureData(keys[x], TITLES[keys[x]], AXES[x] + " (lower is better)", "test PSNR [dB] (mean over seeds)",
                     note=note, xlog=_log_scale(xs),
                     hlines=[(float(r.psnr), str(r.label)) for r in refs if getattr(r, x, None) is None])
    family = pts["family"] if "family" in pts else pts["design"]
    pts = pts.assign(family=[str(f) for f in family])
    rest, front = pts[~pts["on_front"]], pts[pts["on_front"]].sort_values(x)
    for fam in sorted(set(rest["family"])):
        part = rest[rest["family"] == fam]
        fig.series.append(Series(f"{fam} ({len(part)})", part[x].astype(float).tolist(),
                                 part["psnr_mean"].astype(float).tolist(), None,
                                 [_hover(r) for _, r in part.iterrows()],
                                 [shown_label(r) for _, r in part.iterrows()] if len(rest) <= 12 else None,
                                 lines=False))
    fig.series.append(Series(f"non-dominated ({len(front)})", front[x].astype(float).tolist(),
                             front["psnr_mean"].astype(float).tolist(), None,
                             [_hover(r) for _, r in front.iterrows()],
                             [_front_label(f, r) for f, (_, r) in zip(front["family"], front.iterrows())],
                             lines=True, step=True, emphasis=True))
    if at:  # published checkpoints: reference points, not trials of this search
        fig.series.append(Series(f"published weights (reference, {len(at)})", [float(getattr(r, x)) for r in at],
                                 [float(r.psnr) for r in at], None,
                                 [f"{r.label}: {r.psnr:.3f} dB, {getattr(r, x):,.0f}"
                                  + (f" ({r.source})" if getattr(r, "source", "") else "") for r in at],
                                 [str(r.label) for r in at], lines=False, published=True))
    return fig


def fig_fidelity(fid, note: str = "") -> FigureData:
    """Spearman's rho between the validation PSNR at each step and the final test PSNR, across design points:
    pooled over seeds (emphasised, its 95% interval in the hover text) and per seed (muted), with the
    reliability threshold as a dashed line and the reliable step stated under the title
    (:mod:`archsearch.report.fidelity`)."""
    from .fidelity import RELIABLE_RHO

    fig = FigureData("fidelity_ranks", TITLES["fidelity"], "training step", "Spearman rho across design points",
                     note=note, hlines=[(RELIABLE_RHO, f"reliable: rho >= {RELIABLE_RHO}")])
    seeds = sorted({s for r in fid.steps for s in r.per_seed}, key=str)
    for seed in seeds:
        pts = [(r.step, r.per_seed[seed]) for r in fid.steps if is_finite(r.per_seed.get(seed))]
        if pts:
            fig.series.append(Series(f"seed {seed}", [float(s) for s, _ in pts], [float(v) for _, v in pts],
                                     lines=True, muted=True))
    pooled = [r for r in fid.steps if is_finite(r.rho)]
    fig.series.append(Series("pooled over seeds", [float(r.step) for r in pooled], [float(r.rho) for r in pooled],
                             None, [f"step {r.step}: rho {r.rho:+.3f}, 95% CI [{r.low:+.2f}, {r.high:+.2f}], "
                                    f"Kendall tau {r.tau:+.3f}, {r.n} design points" for r in pooled],
                             lines=True, emphasis=True))
    fig.claims = [fid.text()]
    return fig


def _front_label(family: str, row) -> str:
    """A non-dominated point's annotation: its family, then its label (once, where the label starts with it)."""
    base = family.removesuffix(f" ({PUBLISHED})")
    return shown_label(row) if str(row["label"]).startswith(base) else f"{base}: {shown_label(row)}"


def fig_grid(table, key: str, title: str, row_label: str, col_label: str, note: str = "",
             value_label: str = "mean test PSNR [dB]") -> FigureData:
    """A heatmap of a pivot table (NaN cells stay empty)."""
    z = [[float(v) if is_finite(v) else float("nan") for v in row] for row in table.to_numpy().tolist()]
    return FigureData(key, title, col_label, row_label, kind="grid", note=note, z=z,
                      x_labels=[str(c) for c in table.columns], y_labels=[str(i) for i in table.index],
                      value_label=value_label)


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
    import plotly.graph_objects as go  # only the HTML report needs it

    out = go.Figure()
    if fig.kind == "grid":
        text = [[f"{v:.2f}" if is_finite(v) else "" for v in row] for row in fig.z or []]
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
                marker={"color": c, "size": 11 if s.emphasis or s.published else 8,
                        "symbol": "star" if s.emphasis else "diamond-open" if s.published else "circle"}))
        for y, label in fig.hlines:
            out.add_hline(y=y, line_dash="dash", line_color="#444", annotation_text=html.escape(label),
                          annotation_position="bottom right")
        out.update_xaxes(title_text=fig.xlabel, type="log" if fig.xlog else "linear")
        out.update_yaxes(title_text=fig.ylabel)
    lines = [line for c in fig.claims for line in textwrap.wrap(c, 170)]  # a long claim never runs off the page
    title = fig.title + "".join(f"<br><sup>{html.escape(line)}</sup>" for line in lines)
    out.update_layout(title={"text": title}, template="plotly_white", height=480 + 18 * len(lines),
                      margin={"l": 70, "r": 30, "t": 60 + 18 * len(lines), "b": 90 if fig.note else 60})
    if fig.note:
        out.add_annotation(text=html.escape(fig.note), xref="paper", yref="paper", x=0, y=-0.22, showarrow=False,
                           font={"size": 10, "color": "#666"}, xanchor="left")
    return out


def to_png(fig: FigureData, path: str | Path, dpi: int = 130) -> Path:
    """A static PNG of ``fig`` drawn with matplotlib (the same numbers as :func:`to_plotly`)."""
    import matplotlib  # ~0.4 s: only PNG drawing pays it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # ~0.4 s: only PNG drawing pays it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.kind == "grid":
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
            marker = "*" if s.emphasis else "D" if s.published else "o"
            size = 11 if s.emphasis else 6
            if s.published:
                ax.plot(s.x, s.y, linestyle="none", marker="D", markersize=7, markerfacecolor="none", color=c,
                        label=s.name)
            elif s.step and len(s.x) > 1:
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
        elif max((abs(x) for s in fig.series for x in s.x if is_finite(x)), default=0) >= 1e4:
            from matplotlib.ticker import FuncFormatter  # ~0.4 s: only PNG drawing pays it

            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        for y, label in fig.hlines:
            ax.axhline(y, linestyle="--", color="0.25", linewidth=1, label=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.margins(x=0.08, y=0.12)
    ax.set_xlabel(fig.xlabel, fontsize=9)
    ax.set_ylabel(fig.ylabel, fontsize=9)
    claims = [line for c in fig.claims for line in textwrap.wrap(c, 115)]  # never cut at the figure's edge
    ax.set_title("\n".join([fig.title, *claims]), fontsize=10 if not fig.claims else 8)
    note = "\n".join(textwrap.wrap(fig.note, 125)) if fig.note else ""  # never cut at the figure's edge
    if note:
        mfig.text(0.01, 0.01, note, fontsize=6.5, color="0.35")
    mfig.tight_layout(rect=(0, 0.025 + 0.02 * note.count("\n") + 0.015 if note else 0, 1, 1))
    if fig.kind == "lines":
        _annotate(ax, fig, mfig)  # after the layout: placement is in final display coordinates
    try:
        with atomic_path(path) as tmp:  # a full disk or a kill leaves the previous PNG, never half of one
            mfig.savefig(tmp, format="png")
    finally:
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
               if is_finite(x) and is_finite(y)]
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
