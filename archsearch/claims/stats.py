"""The statistics a verdict rests on: Student's t interval of a mean, and paired differences over shared seeds.

Every comparison of two points uses *paired differences over the seeds both points share*: the same seed means
the same training data order, patches and noise, so the difference PSNR(A, seed) - PSNR(B, seed) removes what
the seeds have in common. Over the n shared seeds, the 95% confidence interval of the mean difference is
Student's t interval ``mean ± t(0.975, n-1) · sd / √n`` (sd: the sample standard deviation of the differences).
Fewer than 2 shared seeds give no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

LEVEL = 0.95
METHOD = ("paired differences over the seeds both points share (same seed = same data and noise); Student-t "
          "95% interval mean ± t(0.975, n-1)·sd/√n")
OUTCOMES = ("holds", "contradicted", "inconclusive")

PerSeed = Mapping[str, Mapping[Any, float]]  # label -> seed -> PSNR


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t distribution with ``df`` degrees of freedom (scipy)."""
    from scipy.stats import t  # scipy only where an interval is computed: loading a study stays light

    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    return float(t.ppf(p, df))


def t_interval(values: Sequence[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the 95% Student-t interval of the mean; low = high = NaN for n < 2."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan, n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


@dataclass(frozen=True)
class Comparison:
    """One interval a verdict rests on: ``name`` (``A - B`` or ``slope``), its estimate and 95% interval."""

    name: str
    estimate: float
    low: float
    high: float
    n: int
    unit: str = "dB"
    outcome: str = "inconclusive"  # holds | contradicted | inconclusive, for this comparison alone

    @property
    def decided(self) -> bool:
        return self.n >= 2

    def with_outcome(self, outcome: str) -> Comparison:
        return replace(self, outcome=outcome)


def paired(per_seed: PerSeed, a: str, b: str, name: str) -> Comparison:
    """A - B over the seeds both share."""
    shared = sorted(set(per_seed.get(a, {})) & set(per_seed.get(b, {})), key=str)
    diffs = [float(per_seed[a][s]) - float(per_seed[b][s]) for s in shared]
    mean, lo, hi, n = t_interval(diffs)
    return Comparison(name, mean, lo, hi, n)


def above(c: Comparison, x: float = 0.0) -> str:
    """holds: interval above x; contradicted: entirely below x."""
    if not c.decided:
        return "inconclusive"
    return "holds" if c.low > x else "contradicted" if c.high < x else "inconclusive"


def inside(c: Comparison, w: float) -> str:
    """holds: interval inside [-w, w]; contradicted: entirely outside it (above w or below -w)."""
    if not c.decided:
        return "inconclusive"
    return "holds" if -w <= c.low and c.high <= w else "contradicted" if c.low > w or c.high < -w else "inconclusive"
