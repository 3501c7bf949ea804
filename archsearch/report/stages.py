"""A run, in stages when the study asks for sequential seeding (``sequential: {stages: [3, 5, 10]}``): stage k
trains the first ``stages[k]`` seeds of every grid point, the claims are decided at that look's error-spending
level (:func:`~archsearch.report.verdicts.staged_verdicts`), and the next stage runs only while some claim is
undecided that more seeds could decide (not one that is under-trained, missing a point, or untestable at CPU
scale). Re-running the command resumes: finished stages are read from the ledger, not trained again.

Both ``archsearch run`` and :func:`archsearch.run_study` run a study through :func:`run_in_stages`; a study
without ``sequential:`` is one stage of all its seeds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from ..claims.verdicts import more_seeds_help
from ..study.config import Study
from ..study.runner import RunSummary, run_study
from .outputs import write_outputs

#: Training MACs of one step ~ 3x the forward MACs (forward, and the backward's two products per layer).
TRAIN_MAC_FACTOR = 3


def training_macs(macs_per_pixel: float, train) -> float:
    """The training compute of one seed of a design (MACs): its forward MACs per pixel x the patch pixels x the
    batch x the steps of ``train`` (a :class:`~archsearch.training.TrainConfig`) x :data:`TRAIN_MAC_FACTOR`."""
    return float(macs_per_pixel) * train.steps * train.batch_size * train.patch_size ** 2 * TRAIN_MAC_FACTOR


def stage_study(study: Study, n_seeds: int) -> Study:
    """The study restricted to its first ``n_seeds`` seeds (its plan's points of those seeds; the configuration,
    and so the ledger's fingerprint, unchanged)."""
    seeds = set(study.config.seeds[:n_seeds])
    plan = replace(study.plan, points=tuple(p for p in study.plan.points if p.seed in seeds))
    return replace(study, plan=plan)


def run_in_stages(study: Study, *, echo=print, fresh: bool = False, **kwargs: Any) -> RunSummary:
    """Run (or resume) ``study`` and write its outputs; with ``sequential:``, stage by stage until every claim that
    more seeds can decide is decided or the last stage has run. Returns the last stage's summary (its outputs
    hold the verdicts; ``stages`` on it lists what each stage cost)."""
    seq = study.config.sequential
    if seq is None:
        return run_study(study, outputs=write_outputs, echo=echo, fresh=fresh, **kwargs)
    summary = None
    for k, n in enumerate(seq.stages):
        echo(f"stage {k + 1} of {len(seq.stages)}: seeds {', '.join(str(s) for s in study.config.seeds[:n])}")
        summary = run_study(stage_study(study, n), outputs=write_outputs, echo=echo, fresh=fresh and k == 0,
                            **kwargs)
        if summary.status not in ("complete", "partial"):  # incomplete or every trial failed: resume later
            break
        verdicts = summary.verdicts
        open_ = [v for v in verdicts if more_seeds_help(v)]
        decided = sum(v.verdict != "inconclusive" for v in verdicts)
        echo(f"stage {k + 1}: {decided} of {len(verdicts)} claims decided"
             + (f"; {len(open_)} more seeds may decide ({', '.join(v.claim_id for v in open_)})" if open_ else ""))
        if not open_:
            break
    return summary


def stage_costs(study: Study, df) -> list[dict[str, Any]]:
    """What each stage of a sequential study cost, from the ledger: its new seeds, the trials that trained them
    (complete or failed), their summed wall and training time, and the training compute (MACs of one forward x
    :data:`TRAIN_MAC_FACTOR` x steps x batch x patch pixels, from the counted sizes). [] without ``sequential:``."""
    seq = study.config.sequential
    if seq is None or df is None or df.empty:
        return []
    t = study.train
    out, before = [], 0
    for k, n in enumerate(seq.stages):
        new = set(study.config.seeds[before:n])
        rows = df[df["state"].isin(["COMPLETE", "DEGENERATE", "FAIL"]) & df["seed"].isin(new)]
        macs = sum(training_macs(m, t) for m in rows["macs_per_pixel"]
                   if isinstance(m, (int, float)) and math.isfinite(m))
        out.append({"stage": k + 1, "seeds": sorted(new), "trials": len(rows),
                    "wall_s": float(rows["wall_time_s"].astype(float).fillna(0).sum()),
                    "train_s": float(rows["train_time_s"].astype(float).fillna(0).sum()), "train_macs": macs})
        before = n
    return out


def stage_text(costs: list[dict[str, Any]]) -> str:
    """``stage 1 (seeds 0-2): 18 trials, 11.2 min, 1.2 PMACs; stage 2 ...`` (only stages that trained)."""
    parts = []
    for c in costs:
        if not c["trials"]:
            continue
        seeds = c["seeds"]
        span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
        parts.append(f"stage {c['stage']} (seeds {span}): {c['trials']} trials, {c['wall_s'] / 60:.1f} min of trial "
                     f"time, {c['train_macs'] / 1e12:,.1f} TMACs of training")
    return "; ".join(parts)
