"""The ledger as frames -- the one place that turns trials into rows.

* :func:`results_frame` -- one row per trial (state from the ledger; ``DEGENERATE`` for a COMPLETE trial whose
  every seed failed the validity gate, :mod:`.validity`) plus one per infeasible grid point;
* :func:`ledger_frame` -- the same with each trial's family ``arguments``, Optuna ``params``, host and measured
  latency (the report and the analysis scripts read this one);
* :func:`seed_frame` -- one row per (finished trial, seed) with that seed's own values and validity;
* :func:`summary_frame` -- one row per design point: mean and spread over *distinct* valid seeds, and how many
  seeds were degenerate;
* :func:`export_frame` / :func:`write_table` -- the frame as CSV or parquet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..errors import ArchsearchError
from ..text import json_text
from . import ledger as L
from .config import Study
from .remeasure import stored_latency
from .validity import DEGENERATE

#: The state of a COMPLETE trial whose every seed is degenerate (:mod:`.validity`): still COMPLETE in Optuna
#: (resume does not re-run it, a sampler sees its value), never averaged in.
DEGENERATE_STATE = "DEGENERATE"

#: The columns of ``results.csv``: the trial number and state, then stored attributes (:data:`.record.TRIAL_ATTRS`).
RESULT_COLUMNS = ["number", "state", "design", "label", "sweep_value", "seed", "n_params", "macs_per_pixel",
                  "activation_param_pct", "psnr", "ssim", "val_psnr", "wall_time_s", "train_time_s", "eval_time_s",
                  "spec_hash", "checkpoint", "fail_reason", "duplicate_of", "seeds", "psnr_per_seed",
                  "ssim_per_seed", "latency_ms_per_mp", "val_gain_last_third", "validity", "baseline_psnr",
                  "test_draws", "baseline", "published_weights", "weights_sha256"]

#: Lists the frames carry for :func:`seed_frame` and the report (per-seed values, per-image rows, the validation
#: curve) but ``results.csv`` leaves out (they are long).
PER_SEED_COLUMNS = ["validity_per_seed", "val_gain_last_third_per_seed", "per_image_per_seed", "val_curve",
                    "val_curve_per_seed"]


def results_frame(study: Study, ostudy=None):
    """One row per trial (state from the ledger, ``DEGENERATE`` for a COMPLETE trial whose validity is
    degenerate) plus one per infeasible grid point (state INFEASIBLE); the columns of :data:`RESULT_COLUMNS`,
    then :data:`PER_SEED_COLUMNS`."""
    import pandas as pd  # ~0.3 s: only table paths pay it

    ostudy = ostudy or L.open_study(study, create=False)
    rows = []
    for t in ostudy.get_trials(deepcopy=False):
        ua = t.user_attrs
        state = t.state.name
        if state == "COMPLETE" and ua.get("validity") == DEGENERATE:
            state = DEGENERATE_STATE
        rows.append({"number": t.number, "state": state,
                     **{c: ua.get(c) for c in RESULT_COLUMNS[2:] + PER_SEED_COLUMNS},
                     "seed": ua.get("seed", t.params.get("seed"))})
    for inf in ostudy.user_attrs.get("infeasible", []) or []:
        rows.append({"number": None, "state": "INFEASIBLE", "design": inf.get("design"), "label": inf.get("label"),
                     "sweep_value": inf.get("sweep_value"), "fail_reason": inf.get("reason")})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS + PER_SEED_COLUMNS)


def _per_seed(r, key: str, n: int, fallback: Any) -> list:
    """The trial's stored ``<key>_per_seed`` list, or ``fallback`` for each seed where the ledger has none (an
    older ledger, or a list of another length)."""
    vals = r.get(f"{key}_per_seed")
    return list(vals) if isinstance(vals, list) and len(vals) == n else [fallback] * n


def seed_frame(df):
    """One row per (finished trial, seed) with that seed's own ``psnr``, ``ssim``, ``val_gain_last_third``,
    ``validity`` (``ok``/``degenerate``; None in ledgers written before the gate: treated as ok), ``per_image``
    (its rows ``[image, draw, psnr, ssim]``; None before per-image results) and ``val_curve`` (a multi-seed
    trial written before every seed's curve was stored has its first seed's only: None for the others). Rows of DEGENERATE and partly
    degenerate trials are included, so that readers can count them; proposals answered from an earlier trial
    (``duplicate_of``) add nothing."""
    import pandas as pd  # ~0.3 s: only table paths pay it

    finished = df["state"].isin(["COMPLETE", DEGENERATE_STATE])
    done = df[finished & df["duplicate_of"].isna()] if "duplicate_of" in df else df[finished]
    rows = []
    for _, r in done.iterrows():
        seeds = r.get("seeds") if isinstance(r.get("seeds"), list) else [r.get("seed")]
        n = len(seeds)
        psnr = _per_seed(r, "psnr", n, r.get("psnr"))
        ssim = _per_seed(r, "ssim", n, r.get("ssim"))
        gain = _per_seed(r, "val_gain_last_third", n, r.get("val_gain_last_third"))
        validity = _per_seed(r, "validity", n, None)
        per_image = r.get("per_image_per_seed")
        per_image = list(per_image) if isinstance(per_image, list) and len(per_image) == n else [None] * n
        curves = _per_seed(r, "val_curve", n, None)
        if curves[0] is None:
            curves[0] = r.get("val_curve")
        for i, seed in enumerate(seeds):
            rows.append({**r.to_dict(), "seed": seed, "psnr": psnr[i], "ssim": ssim[i],
                         "val_gain_last_third": gain[i], "validity": validity[i], "per_image": per_image[i],
                         "val_curve": curves[i]})
    columns = list(df.columns) + (["validity"] if "validity" not in df else []) + ["per_image"]
    out = pd.DataFrame(rows, columns=columns)
    return out.drop_duplicates(subset=["label", "design", "seed"], keep="first")


def _first(values):
    """The first value that is not missing (as pandas' ``first`` aggregation), else the first value."""
    present = values.dropna()
    return present.iloc[0] if len(present) else values.iloc[0]


def summary_frame(df):
    """One row per design point: mean and spread (sample std, NaN for one seed) of PSNR/SSIM and the mean
    last-third validation gain over the *distinct* seeds that are not degenerate (:mod:`.validity`); ``n_seeds``
    counts those seeds (never repeated trials), ``n_degenerate`` the degenerate ones. A point whose every seed
    is degenerate keeps its row (``n_seeds`` 0, PSNR NaN), so tables show it."""
    import pandas as pd  # ~0.3 s: only table paths pay it

    done = seed_frame(df)
    if done.empty:
        return done.assign(n_degenerate=pd.Series(dtype=int))
    done = done.astype({"psnr": float, "ssim": float, "val_gain_last_third": float})
    rows = []
    for (label, design), g in done.groupby(["label", "design"], dropna=False, sort=True):
        degenerate = g["validity"] == DEGENERATE
        ok = g[~degenerate]
        row = {"label": label, "design": design, "n_seeds": int(ok["seed"].nunique()),
               "psnr_mean": ok["psnr"].mean(), "psnr_std": ok["psnr"].std(), "ssim_mean": ok["ssim"].mean(),
               **{c: _first(g[c]) for c in ("n_params", "macs_per_pixel", "activation_param_pct", "sweep_value")},
               "val_gain_last_third": ok["val_gain_last_third"].mean(),
               "n_degenerate": int(g.loc[degenerate, "seed"].nunique())}
        if "family" in g:
            row["family"] = _first(g["family"])
        if "published_weights" in g:  # a published checkpoint, evaluated and not trained (marked in every table)
            row["weights"] = "published" if g["published_weights"].notna().any() else "trained"
        rows.append(row)
    return pd.DataFrame(rows).sort_values("activation_param_pct")


def ledger_frame(study, ostudy=None):
    """One row per trial (and per infeasible grid point), as ``results_frame`` plus ``arguments`` (dict of the
    family arguments incl. the solved knob), ``params`` (Optuna's trial params), ``host``,
    ``latency_ms_per_mp``, ``latency_device`` and ``latency_input``. Trials without a label get one from their
    design and searched params."""
    ostudy = ostudy or L.open_study(study, create=False)
    df = results_frame(study, ostudy)

    latency = stored_latency(ostudy)
    extra = {}
    for t in ostudy.get_trials(deepcopy=False):
        ua = t.user_attrs
        # measured in the trial (per-trial attributes) or afterwards by `archsearch latency` (study attributes)
        lat = ua if ua.get("latency_ms_per_mp") is not None else latency.get(str(ua.get("spec_hash")), {})
        extra[t.number] = {"arguments": ua.get("arguments") or {}, "params": dict(t.params), "host": ua.get("host"),
                           "latency_ms_per_mp": lat.get("latency_ms_per_mp"),
                           "latency_device": lat.get("latency_device"), "latency_input": lat.get("latency_input")}
    for col in ("arguments", "params", "host", "latency_ms_per_mp", "latency_device", "latency_input"):
        df[col] = [extra.get(n, {}).get(col) if n is not None and not is_nan(n) else None for n in df["number"]]
    df["latency_ms_per_mp"] = df["latency_ms_per_mp"].astype(float)
    families = {d.name: d.family for d in study.space.designs}
    df["family"] = [families.get(d, d) if isinstance(d, str) else None for d in df["design"]]
    df["label"] = [lab if isinstance(lab, str) and lab else _label_from_params(d, p)
                   for lab, d, p in zip(df["label"], df["design"], df["params"])]
    return df


def is_nan(v: Any) -> bool:
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
            out[col] = [json_text(v, sort_keys=True, default=str) if isinstance(v, dict) else None
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
        with atomic_path(path) as tmp:  # whole or not at all: a kill keeps the previous table
            out.to_parquet(tmp, index=False)
    else:
        with atomic_path(path) as tmp:
            out.to_csv(tmp, index=False)
    return path


def pareto_mask(cost: Sequence[float], quality: Sequence[float]) -> list[bool]:
    """Non-dominated points for *cost* to minimise and *quality* to maximise.

    A point is dominated when another has cost <= and quality >= with at least one strict; equal points are
    all kept. Points with a missing (NaN/None) value are never on the front.
    """
    n = len(cost)
    if len(quality) != n:
        raise ArchsearchError(f"pareto_mask: cost and quality must have equal lengths, got {n} and {len(quality)}")
    ok = [is_finite(cost[i]) and is_finite(quality[i]) for i in range(n)]
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


def is_finite(v: Any) -> bool:
    """A number that is not NaN or infinite (None and text are not)."""
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
