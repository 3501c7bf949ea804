"""The statistics a verdict rests on: paired differences over shared seeds, one-sided tests with their p-values,
equivalence by two one-sided tests, the study's pooled paired sd as a floor, Holm's correction, exact tests on
failure counts, and the seeds an 80%-power design needs.

**Paired differences.** Every comparison of two points uses the differences PSNR(A, seed) - PSNR(B, seed) over the
seeds both points share (same seed = same initial weights, data order, patches and noise), which removes what the
seeds have in common. Over the n shared seeds the interval of the mean difference is Student's t interval
``mean ± t(0.975, n-1) · sd / √n``.

**Rules** (each stated on the reproduction page through :data:`METHOD`):

* *Seed floor*: fewer than :data:`MIN_SEEDS` shared seeds decide nothing. With 2 seeds the t interval has one
  degree of freedom, and two points that start from the same weights and see the same batches can move together
  so closely that a 0.001 dB-wide interval "decides" a 0.05 dB question (issue 19: ``nsr_selection``).
* *sd floor*: a comparison's sd is at least the study's *pooled paired sd* (:func:`pooled_paired_sd`: every pair
  of points' paired-difference variance, pooled by degrees of freedom) -- one pair's seeds can agree by chance.
* *One-sided tests at* :data:`ALPHA` = 2.5%, so that "holds" and "contradicted" read off the printed 95%
  interval: A > B holds when the interval lies above 0 (p < 2.5%), contradicted when it lies entirely below 0.
* *Equivalence* (``within``, ``plateau``, ties) by two one-sided tests (TOST, Schuirmann 1987): holds when both
  "d > -w" and "d < w" are shown at 2.5% each, i.e. the 95% interval lies inside [-w, w].
* *Composite claims* (several comparisons): *holds* needs every comparison to hold (an intersection-union test:
  no correction is needed); *contradicted* needs one comparison to contradict it after Holm's correction over
  the claim's comparisons (the smallest p times their number).
* Across a study, the claims' p-values are corrected by Holm's step-down procedure (:func:`holm`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

LEVEL = 0.95
ALPHA = (1 - LEVEL) / 2  # one-sided: the printed 95% interval decides every one-sided test
MIN_SEEDS = 3  # fewer shared seeds decide nothing (see the module docstring)
POWER = 0.8  # the power the "seeds needed" advice is for
MAX_ADVISED_SEEDS = 100  # beyond this, a difference is "untestable at CPU scale"
METHOD = (f"paired differences over the seeds both points share (same seed = same initial weights, data and "
          f"noise); Student-t 95% interval mean ± t(0.975, n-1)·sd/√n with sd at least the study's pooled paired "
          f"sd; one-sided tests at {ALPHA:.1%} (read off the 95% interval); equivalence (within, plateau) by two "
          f"one-sided tests; ≥ {MIN_SEEDS} shared seeds to decide anything; Holm's correction over a claim's "
          f"comparisons and over the study's claims")
#: ``replicates: images`` (published checkpoints, one seed): the test images are the replicates.
IMAGE_METHOD = (f"paired differences over the test images both points were scored on (one fixed noise draw per "
                f"image: the same noisy input for every model); Student-t 95% interval mean ± t(0.975, n-1)·sd/√n "
                f"with each pair's own sd (no pooled floor: every image pair is its own replicate); one-sided tests "
                f"at {ALPHA:.1%} (read off the 95% interval); equivalence by two one-sided tests; ≥ {MIN_SEEDS} "
                f"shared images to decide anything; Holm's correction over a claim's comparisons and over the "
                f"study's claims. The verdict is about these images, not about the population of natural images "
                f"beyond them")
OUTCOMES = ("holds", "contradicted", "inconclusive")

PerSeed = Mapping[str, Mapping[Any, float]]  # label -> seed -> PSNR


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t distribution with ``df`` degrees of freedom (scipy)."""
    from scipy.stats import t  # scipy only where an interval is computed: loading a study stays light

    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    return float(t.ppf(p, df))


def _t_sf(z: float, df: int) -> float:
    """P(T > z) for Student's t with ``df`` degrees of freedom; an infinite z (a zero sd) gives 0 or 1."""
    from scipy.stats import t

    if math.isnan(z):
        return 0.5
    if math.isinf(z):
        return 0.0 if z > 0 else 1.0
    return float(t.sf(z, df))


def sample_sd(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def t_interval(values: Sequence[float], sd: float | None = None) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the 95% Student-t interval of the mean (``sd``: the sd to use, default the sample
    sd); low = high = NaN for n < 2."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan, n
    sd = sample_sd(values) if sd is None else sd
    half = t_quantile(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


@dataclass(frozen=True)
class Comparison:
    """One interval a verdict rests on: ``name`` (``A - B`` or ``slope``), its estimate and 95% interval over
    ``n`` seeds, and -- once a test has set them -- the one-sided p-values for the claim (``p_holds``) and
    against it (``p_contra``). ``values``: the per-seed values; ``sd``: the sd the interval uses (``sd_own``
    floored at the study's pooled paired sd); ``test``/``bound``: the test, for the seeds-needed advice."""

    name: str
    estimate: float
    low: float
    high: float
    n: int
    unit: str = "dB"
    outcome: str = "inconclusive"  # holds | contradicted | inconclusive, for this comparison alone
    values: tuple[float, ...] = ()
    sd: float = math.nan
    sd_own: float = math.nan
    p_holds: float = math.nan
    p_contra: float = math.nan
    test: str = ""  # above | below | inside
    bound: tuple[float, ...] = ()  # above/below: (x,); inside: (low, high)

    @property
    def decided(self) -> bool:
        """Enough shared seeds to decide anything (:data:`MIN_SEEDS`)."""
        return self.n >= MIN_SEEDS

    @property
    def floored(self) -> bool:
        return math.isfinite(self.sd) and math.isfinite(self.sd_own) and self.sd > self.sd_own

    @property
    def se(self) -> float:
        """The standard error: sd/√n, or (for a comparison built from an interval alone) half its width over t."""
        if self.n < 2:
            return math.nan
        if math.isfinite(self.sd):
            return self.sd / math.sqrt(self.n)
        return (self.high - self.low) / 2 / t_quantile(0.5 + LEVEL / 2, self.n - 1)

    def with_outcome(self, outcome: str) -> Comparison:
        return replace(self, outcome=outcome)


def comparison(name: str, values: Sequence[float], *, sd_floor: float = 0.0, unit: str = "dB") -> Comparison:
    """The interval of the mean of ``values`` (per-seed differences or slopes), its sd floored at ``sd_floor``."""
    values = tuple(float(v) for v in values)
    own = sample_sd(values)
    sd = max(own, sd_floor) if math.isfinite(own) else own
    mean, lo, hi, n = t_interval(values, sd if math.isfinite(sd) else None)
    return Comparison(name, mean, lo, hi, n, unit, values=values, sd=sd, sd_own=own)


def paired(per_seed: PerSeed, a: str, b: str, name: str, sd_floor: float = 0.0) -> Comparison:
    """A - B over the seeds both share, the sd floored at ``sd_floor``."""
    shared = sorted(set(per_seed.get(a, {})) & set(per_seed.get(b, {})), key=str)
    return comparison(name, [float(per_seed[a][s]) - float(per_seed[b][s]) for s in shared], sd_floor=sd_floor)


def _p_above(c: Comparison, x: float, inclusive: bool) -> float:
    """One-sided p-value for "mean > x" (``inclusive``: ">= x", which a zero-sd estimate equal to x shows)."""
    se = c.se
    if se == 0 and c.estimate == x:
        return 0.0 if inclusive else 0.5
    return _t_sf((c.estimate - x) / se if se > 0 else math.copysign(math.inf, c.estimate - x), c.n - 1)


def _p_below(c: Comparison, x: float, inclusive: bool) -> float:
    se = c.se
    if se == 0 and c.estimate == x:
        return 0.0 if inclusive else 0.5
    return _t_sf((x - c.estimate) / se if se > 0 else math.copysign(math.inf, x - c.estimate), c.n - 1)


def _outcome(p_holds: float, p_contra: float) -> str:
    return "holds" if p_holds < ALPHA else "contradicted" if p_contra < ALPHA else "inconclusive"


def _tested(c: Comparison, test: str, bound: tuple[float, ...], p_holds: float, p_contra: float) -> Comparison:
    if not c.decided:
        return replace(c, test=test, bound=bound, outcome="inconclusive")
    return replace(c, test=test, bound=bound, p_holds=p_holds, p_contra=p_contra, outcome=_outcome(p_holds, p_contra))


def above(c: Comparison, x: float = 0.0, *, inclusive: bool = False) -> Comparison:
    """The claim "mean > x" (``inclusive``: ">= x"): holds when the 95% interval lies above x, contradicted when
    it lies entirely below x."""
    return _tested(c, "above", (x,), _p_above(c, x, inclusive), _p_below(c, x, not inclusive))


def below(c: Comparison, x: float = 0.0, *, inclusive: bool = False) -> Comparison:
    """The claim "mean < x" (mirror of :func:`above`)."""
    return _tested(c, "below", (x,), _p_below(c, x, inclusive), _p_above(c, x, not inclusive))


def inside(c: Comparison, low: float, high: float) -> Comparison:
    """Equivalence, "low <= mean <= high", by two one-sided tests: holds when both "mean > low" and "mean < high"
    are shown (the 95% interval inside [low, high]); contradicted when the interval lies entirely outside (above
    high or below low: the two cannot both be true, so neither side needs a correction)."""
    p_holds = max(_p_above(c, low, True), _p_below(c, high, True))
    p_contra = min(_p_above(c, high, False), _p_below(c, low, False))
    return _tested(c, "inside", (low, high), p_holds, p_contra)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest p times (m - i + 1), made
    monotone and capped at 1. NaN p-values (nothing tested) stay NaN and do not count in m."""
    idx = [i for i, p in enumerate(p_values) if isinstance(p, (int, float)) and math.isfinite(p)]
    m = len(idx)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def paired_differences(per_seed: PerSeed) -> list[list[float]]:
    """Every pair of points sharing ≥ 2 seeds: their per-seed differences (what :func:`pooled_paired_sd` pools)."""
    out = []
    for a, b in combinations(sorted(per_seed), 2):
        shared = set(per_seed[a]) & set(per_seed[b])
        if len(shared) >= 2:
            out.append([float(per_seed[a][s]) - float(per_seed[b][s]) for s in shared])
    return out


def pooled_paired_sd(per_seed: PerSeed) -> tuple[float, int]:
    """The study's pooled paired sd and its degrees of freedom: for every pair of points sharing ≥ 2 seeds, the
    variance of their per-seed differences, pooled by degrees of freedom (Σ (n-1)·s² / Σ (n-1)). (0, 0) when no
    pair shares 2 seeds."""
    return pooled_sd(paired_differences(per_seed))


def pooled_sd(samples: Sequence[Sequence[float]]) -> tuple[float, int]:
    """The pooled sd of several samples (each of ≥ 2 values), pooled by degrees of freedom, and those degrees of
    freedom; (0, 0) for none."""
    num, df = 0.0, 0
    for d in samples:
        num += (len(d) - 1) * sample_sd(d) ** 2
        df += len(d) - 1
    return (math.sqrt(num / df), df) if df else (0.0, 0)


def seeds_for_power(sd: float, distance: float) -> int | None:
    """The smallest number of shared seeds at which a one-sided t test at :data:`ALPHA` has :data:`POWER` to
    show a mean that lies ``distance`` from the bound (the estimate's distance, or for equivalence the room between
    the estimate and the nearer margin; TOST's power at that point is bounded by its nearer side):
    ``(t(1-α, n-1) + t(power, n-1)) · sd / √n <= distance``. None beyond :data:`MAX_ADVISED_SEEDS`, or when
    ``distance`` is not positive."""
    if not (math.isfinite(sd) and math.isfinite(distance)) or distance <= 0:
        return None
    if sd <= 0:
        return MIN_SEEDS
    for n in range(MIN_SEEDS, MAX_ADVISED_SEEDS + 1):
        if (t_quantile(1 - ALPHA, n - 1) + t_quantile(POWER, n - 1)) * sd / math.sqrt(n) <= distance:
            return n
    return None


def needed_seeds(c: Comparison) -> tuple[int | None, bool]:
    """(seeds for 80% power to decide ``c`` at the sd it shows, whether the test can decide at all at its current
    n): for above/below, the power to show the estimate's side of the bound; for equivalence, to show the
    interval inside the margins (assuming the estimate is the true difference, or 0 room when it lies outside
    them, in which case the advice is for showing it outside). ``feasible`` is False when, at the current n, even
    an estimate exactly between the margins could not hold."""
    sd = c.sd if math.isfinite(c.sd) else (c.se * math.sqrt(c.n) if c.n >= 2 else math.nan)
    if c.test == "inside" and len(c.bound) == 2:
        lo, hi = c.bound
        half, centre = (hi - lo) / 2, (hi + lo) / 2
        feasible = c.n >= 2 and t_quantile(1 - ALPHA, c.n - 1) * sd / math.sqrt(c.n) < half
        room = half - abs(c.estimate - centre)
        if room > 0:
            return seeds_for_power(sd, room), feasible
        return seeds_for_power(sd, -room), feasible
    if c.test == "fisher" and len(c.values) == 4:
        return fisher_seeds(*c.values), True
    if c.bound:
        return seeds_for_power(sd, abs(c.estimate - c.bound[0])), True
    return None, True


def fisher_seeds(fail_a: int, n_a: int, fail_b: int, n_b: int, *, cap: int = 40) -> int | None:
    """The seeds per point at which a one-sided Fisher exact test at :data:`ALPHA` has :data:`POWER` to show the
    observed difference in failure rates (taken as the true rates), by exact enumeration of the two binomial
    outcomes; None beyond ``cap`` seeds or when the rates are equal. (All of 4 seeds failing against none of 4
    gives p = 1/70: four seeds per point is the least that can decide it.)"""
    from scipy.stats import binom

    if n_a <= 0 or n_b <= 0:
        return None
    ra, rb = fail_a / n_a, fail_b / n_b
    if ra == rb:
        return None
    if ra < rb:
        ra, rb = rb, ra
    for n in range(max(MIN_SEEDS, n_a, n_b), cap + 1):
        pa, pb = binom.pmf(range(n + 1), n, ra), binom.pmf(range(n + 1), n, rb)
        power = sum(pa[x] * pb[y] for x in range(n + 1) for y in range(n + 1)
                    if pa[x] * pb[y] > 1e-9 and fisher_greater(x, n, y, n) < ALPHA)
        if power >= POWER:
            return n
    return None


def fisher_greater(fail_a: int, n_a: int, fail_b: int, n_b: int) -> float:
    """One-sided Fisher exact p-value that A's failure rate exceeds B's (2 x 2 table of failures and successes)."""
    from scipy.stats import fisher_exact

    if n_a <= 0 or n_b <= 0:
        return math.nan
    return float(fisher_exact([[fail_a, n_a - fail_a], [fail_b, n_b - fail_b]], alternative="greater")[1])


#: Error-spending functions for sequential seeding: the share of :data:`ALPHA` spent by information fraction t.
SPENDING = ("pocock", "obrien_fleming")


def spent(t: float, kind: str) -> float:
    """The one-sided error spent by information fraction ``t`` (0..1) under Lan & DeMets' (1983) spending
    functions: ``pocock`` α·ln(1 + (e - 1)·t); ``obrien_fleming`` 2·(1 - Φ(Φ⁻¹(1 - α/2) / √t)) (spends almost
    nothing early, nearly α at the end)."""
    from scipy.stats import norm

    if kind not in SPENDING:
        raise ValueError(f"spending must be one of {', '.join(SPENDING)}, got {kind!r}")
    t = min(max(float(t), 0.0), 1.0)
    if t == 0:
        return 0.0
    if kind == "pocock":
        return ALPHA * math.log(1 + (math.e - 1) * t)
    return float(2 * (1 - norm.cdf(norm.ppf(1 - ALPHA / 2) / math.sqrt(t))))


def stage_levels(stages: Sequence[int], kind: str) -> list[float]:
    """Each look's one-sided level: the error the spending function adds between the previous stage's seeds and
    this one's (information fraction = seeds / the last stage's seeds). By the union bound the levels sum to
    :data:`ALPHA`, whatever the looks' correlation: conservative, and valid for t tests whose degrees of freedom
    grow with the stage."""
    last = stages[-1]
    out, before = [], 0.0
    for n in stages:
        now = spent(n / last, kind)
        out.append(now - before)
        before = now
    return out
