"""Ranking fidelity: does a design's validation PSNR at an intermediate step rank the designs as their final test
PSNR does? This is what tells a user whether any pruner (successive halving, Hyperband, ASHA, the median rule)
can be trusted on their problem: a pruner that stops designs at step s is only as good as the ranking at s.

For every validation step s of the study's trials:

* **per seed** -- Spearman's rank correlation, across the design points trained with that seed, between the
  validation PSNR at s and the final test PSNR;
* **pooled** -- the same across design points, each point's validation PSNR at s and test PSNR averaged over
  its seeds (the ranking a multi-seed search would act on), with Kendall's tau beside it and a 95% interval by
  Fisher's z with the standard error 1.06/sqrt(n - 3) for Spearman's rho (Fieller, Hartley & Pearson 1957;
  n >= 4 points).

The ranking is called **reliable from step s** when the pooled rho is at least :data:`RELIABLE_RHO` at s and at
every later validation step (a stated threshold, not a test: with few design points the interval is wide, and
it is printed beside). Degenerate seeds (:mod:`archsearch.study.validity`) and failed trials are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The pooled Spearman rho from which (at every later step too) the ranking is called reliable.
RELIABLE_RHO = 0.9
METHOD = (f"Spearman's rho across design points between the validation PSNR at each step and the final test PSNR "
          f"(per seed; pooled: means over each point's seeds, 95% CI by Fisher's z with SE 1.06/sqrt(n-3)); "
          f"reliable from the first step whose pooled rho stays >= {RELIABLE_RHO} at every later step")


@dataclass(frozen=True)
class StepRank:
    """The ranking at one validation step: pooled rho with its 95% interval, Kendall's tau, the number of design
    points, and rho per seed (seed -> rho; NaN where fewer than 3 points share the seed at this step)."""

    step: int
    rho: float
    low: float
    high: float
    tau: float
    n: int
    per_seed: Mapping[Any, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Fidelity:
    steps: tuple[StepRank, ...]
    reliable_from: int | None
    last_step: int

    def rungs(self) -> tuple[int, ...]:
        """The validation steps from the reliable one to before the last: rungs for ``pruning:`` (empty when the
        ranking is never reliable)."""
        if self.reliable_from is None:
            return ()
        return tuple(r.step for r in self.steps if self.reliable_from <= r.step < self.last_step)

    def text(self) -> str:
        """One line: from which step the ranking is reliable (and the rungs that follows), the rho at the earliest
        steps."""
        first = ", ".join(f"step {r.step}: rho {r.rho:+.2f} [{r.low:+.2f}, {r.high:+.2f}]" for r in self.steps[:3]
                          if math.isfinite(r.rho))
        n = max((r.n for r in self.steps), default=0)
        if self.reliable_from is None:
            head = (f"ranking fidelity: the validation PSNR never ranks the {n} design points as the final test PSNR "
                    f"does with pooled Spearman rho >= {RELIABLE_RHO} from some step on: no rung of a pruner is "
                    "safe on this problem")
        else:
            frac = self.reliable_from / self.last_step if self.last_step else math.nan
            head = (f"ranking fidelity: reliable from step {self.reliable_from} ({frac:.0%} of the run; pooled "
                    f"Spearman rho >= {RELIABLE_RHO} there and at every later step, {n} design points): a pruner's "
                    f"first rung belongs there or later (e.g. `pruning: {{rungs: {list(self.rungs())}}}`)")
        last = self.steps[-1] if self.steps else None
        ceiling = (f"; at the last step, {last.step}, rho {last.rho:+.2f}: the ceiling (the validation images rank "
                   "the trained designs this way against the test images)"
                   if last is not None and math.isfinite(last.rho) else "")
        return (f"{head}; {first}" if first else head) + ceiling


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr  # scipy only where a correlation is computed

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def _kendall(x, y) -> float:
    from scipy.stats import kendalltau

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(kendalltau(x, y).statistic)


def rho_interval(rho: float, n: int) -> tuple[float, float]:
    """95% interval of Spearman's rho by Fisher's z, SE 1.06/sqrt(n - 3) (NaN for n < 4 or a NaN rho)."""
    if n < 4 or not math.isfinite(rho):
        return math.nan, math.nan
    if abs(rho) >= 1:
        return rho, rho
    z, se = math.atanh(rho), 1.06 / math.sqrt(n - 3)
    return math.tanh(z - 1.959964 * se), math.tanh(z + 1.959964 * se)


def seed_curves(df, *, degenerate: bool = False) -> list[tuple[str, Any, dict[int, float], float]]:
    """(label, seed, {step: validation PSNR}, test PSNR) of every finished seed that has a curve, in the ledger's
    order -- valid seeds only, unless ``degenerate`` (the fidelity diagnostics leave them out;
    ``benchmarks/bench_pruning.py`` replays pruners on every seed the grid trained)."""
    from ..study.results import seed_frame

    out = []
    for _, r in seed_frame(df).iterrows():
        curve, psnr, label = r.get("val_curve"), r.get("psnr"), r.get("label")
        if not isinstance(curve, list) or not isinstance(label, str) or (
                r.get("validity") == "degenerate" and not degenerate):
            continue
        if not isinstance(psnr, (int, float)) or not math.isfinite(psnr):
            continue
        points = {int(s): float(v) for s, v in curve if isinstance(v, (int, float)) and math.isfinite(v)}
        if points:
            out.append((label, r.get("seed"), points, float(psnr)))
    return out


def fidelity_ranks(df) -> Fidelity | None:
    """The ranking fidelity of the study whose ledger frame is ``df``; None when fewer than 3 design points have
    intermediate validation values."""
    runs = seed_curves(df)
    labels = {lab for lab, *_ in runs}
    steps = sorted({s for _, _, curve, _ in runs for s in curve})
    if len(labels) < 3 or len(steps) < 2:
        return None
    rows = []
    for step in steps:
        per_seed: dict[Any, float] = {}
        for seed in sorted({s for _, s, *_ in runs}, key=str):
            pairs = [(curve[step], test) for _, s, curve, test in runs if s == seed and step in curve]
            per_seed[seed] = _spearman([a for a, _ in pairs], [b for _, b in pairs])
        by_label: dict[str, list[tuple[float, float]]] = {}
        for lab, _, curve, test in runs:
            if step in curve:
                by_label.setdefault(lab, []).append((curve[step], test))
        val = [sum(a for a, _ in v) / len(v) for v in by_label.values()]
        test = [sum(b for _, b in v) / len(v) for v in by_label.values()]
        rho = _spearman(val, test)
        low, high = rho_interval(rho, len(val))
        rows.append(StepRank(step, rho, low, high, _kendall(val, test), len(val), per_seed))
    reliable = None
    for i, r in enumerate(rows):
        if all(math.isfinite(x.rho) and x.rho >= RELIABLE_RHO for x in rows[i:]):
            reliable = r.step
            break
    return Fidelity(tuple(rows), reliable, steps[-1])
