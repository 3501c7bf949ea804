"""Report data: the study's ledger opened for reading, design points (mean over seeds), Pareto masks, the NSR and
MemNet tables and parameter importances -- numbers only, no drawing (:mod:`.figures` draws them)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from ..families import argument_labels
from ..study.results import DEGENERATE_STATE, is_finite, is_nan, pareto_mask, summary_frame

# Which arguments split a design into legend variants, and the short names of swept arguments in point labels (the
# papers' letters), are given by each family at registration: families.variant_arguments() / argument_labels().


def design_points(df):
    """One row per design point (label, design) of the finished trials: ``n_seeds``, ``psnr_mean``,
    ``psnr_std`` (sample std, NaN for one seed; over the valid seeds, NaN when every seed is degenerate),
    ``n_degenerate``, sizes, ``latency_ms_per_mp`` (median over the point's trials), ``trials`` (their numbers)
    and ``short`` (a short label for annotations)."""
    import pandas as pd  # ~0.3 s: only table paths pay it

    # a DEGENERATE trial (archsearch.study.validity) is finished: its point keeps its row, trials and latency
    done = df[df["state"].isin(["COMPLETE", DEGENERATE_STATE])]
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
    if "weights" in points:  # published checkpoints: marked in every annotation and legend entry
        pub = points["weights"] == "published"
        points.loc[pub, "short"] = points.loc[pub, "short"] + f" ({PUBLISHED})"
        if "family" in points:
            points.loc[pub, "family"] = points.loc[pub, "family"].astype(str) + f" ({PUBLISHED})"
    return points.sort_values(["design", "activation_param_pct", "n_params"]).reset_index(drop=True)


#: How a published checkpoint (evaluated, not trained) is marked beside its label in tables and plots.
PUBLISHED = "published weights"


def shown_label(row) -> str:
    """A design point's label for display: compact, and marked when the point is a published checkpoint."""
    text = compact_label(row["label"])
    return f"{text} ({PUBLISHED})" if row.get("weights") == "published" else text


def compact_label(label: Any) -> str:
    """``label`` with swept arguments by their short letters (``xunit_kernel_size=9`` -> ``r=9``)."""
    text = str(label)
    for long, short in argument_labels().items():
        text = text.replace(f"{long}=", f"{short}=")
    return text


def _short_label(label: Any, design: Any) -> str:
    text = str(label)
    if isinstance(design, str) and text.startswith(design):
        text = text[len(design):].strip() or design
    return compact_label(text)


def pareto_front(points, x: str):
    """The design points with a value of ``x``, with a boolean column ``on_front`` (PSNR up, ``x`` down)."""
    pts = points[[is_finite(v) for v in points[x]]].copy() if len(points) else points.copy()
    pts["on_front"] = pareto_mask(pts[x].tolist(), pts["psnr_mean"].tolist()) if len(pts) else []
    return pts


# ---------------------------------------------------------------------------------------------------------
# tables (NSR Tables 2-3, MemNet Table 6)
# ---------------------------------------------------------------------------------------------------------
def _argument_frame(df, keys: Sequence[str]):
    import pandas as pd  # ~0.3 s: only table paths pay it

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
        if k is None or is_nan(k):  # the dense baseline
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


# ---------------------------------------------------------------------------------------------------------
# importances
# ---------------------------------------------------------------------------------------------------------
def param_importances(study, ostudy) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances for PSNR when the study was a search with >= 2 COMPLETE trials whose
    params vary; otherwise ``(None, reason)``. Multi-objective searches are assessed on PSNR (objective 0)."""
    import optuna  # ~0.7 s: only ledger paths pay it
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it

    if study.config.search is None:
        return None, "not a search (a sweep's grid is shown in the figures above)"
    done = ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return None, f"needs at least 2 complete trials, the ledger has {len(done)}"
    varying = {k for t in done for k in t.params if len({str(u.params.get(k)) for u in done}) > 1}
    if not varying:
        return None, "the complete trials all have the same parameters"
    # Importance *for higher PSNR*: Optuna's PED-ANOVA treats a given target as "lower is better", so it gets
    # -PSNR (objective 0), for single- and multi-objective searches alike.
    def target(t):
        return -t.values[0]

    try:
        with warnings.catch_warnings():  # PED-ANOVA warns that it ranks for low targets: -PSNR is meant
            warnings.simplefilter("ignore", UserWarning)
            imp = optuna.importance.get_param_importances(ostudy, target=target)
    except (ValueError, RuntimeError) as err:
        return None, f"Optuna could not assess them: {err}"
    if not imp:
        return None, "Optuna returned no importances"
    return dict(imp), ""
