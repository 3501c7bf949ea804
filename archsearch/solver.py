"""Budget solver: put a design on a parameter or MAC budget by solving for one free integer knob.

Given a family, fixed values for its other arguments, the free knob and a budget, :func:`solve` returns the
valid knob value whose count is closest to the budget (relative error), with the spec and the achieved count.
Counts are monotone in every knob of every family (increasing, or decreasing like NSR's MACs in the number of
sparsity groups at the same size), so a binary search over the knob's range needs ~log2(range) spec evaluations; values that give an invalid spec (e.g. a width not divisible by the
sparsity groups) are skipped.

With ``target_activation_pct`` and a second knob ``via`` (e.g. the xUnit kernel size), every value of ``via`` is
tried, the free knob is solved for each, and the pair whose activation-parameter percentage is closest to the
target wins (ties: smaller budget error) -- the xUnit paper's Fig. 4 question, "what share of a fixed budget
should sit in the activations?".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .counting import Counts, count
from .errors import BudgetError, SpecError
from .families import Family, get_family
from .spec import GraphSpec

METRICS = ("params", "macs")


@dataclass(frozen=True)
class Budget:
    """``metric`` is ``params`` (trainable parameters) or ``macs`` (MACs per output pixel).
    ``tolerance`` (relative, e.g. 0.02) makes a solution further than that from ``value`` an error."""

    metric: Literal["params", "macs"]
    value: float
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise SpecError("budget.metric", f"must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not self.value > 0:
            raise SpecError("budget.value", f"must be a positive number, got {self.value!r}")
        if self.tolerance is not None and not (0 <= self.tolerance < 1):
            raise SpecError("budget.tolerance", f"must be in [0, 1), got {self.tolerance!r}")

    def measure(self, counts: Counts) -> float:
        return float(counts.params) if self.metric == "params" else counts.macs_per_pixel


@dataclass(frozen=True)
class Solution:
    family: str
    knob: str
    value: int
    spec: GraphSpec
    counts: Counts
    budget: Budget
    achieved: float
    rel_error: float
    arguments: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family, "knob": self.knob, "value": self.value, "achieved": self.achieved,
            "budget": self.budget.value, "metric": self.budget.metric, "rel_error": self.rel_error,
            "arguments": dict(self.arguments), "spec_hash": self.spec.hash, **self.counts.as_dict(),
        }


def _measure_fn(fam: Family, fixed: dict[str, Any], knob: str, budget: Budget):
    cache: dict[int, tuple[GraphSpec, Counts, float] | None] = {}

    def measure(v: int):
        if v not in cache:
            try:
                spec = fam(**{**fixed, knob: v})
            except SpecError:
                cache[v] = None
            else:
                c = count(spec)
                cache[v] = (spec, c, budget.measure(c))
        return cache[v]

    return measure


def solve(family: str | Family, knob: str, budget: Budget, fixed: dict[str, Any] | None = None, *,
          low: int | None = None, high: int | None = None, target_activation_pct: float | None = None,
          via: str | None = None, via_values: list[int] | None = None) -> Solution:
    """Solve ``knob`` of ``family`` for ``budget`` (see the module docstring).

    Raises :class:`BudgetError` naming the smallest and largest achievable values when the budget (with its
    tolerance) is out of reach.
    """
    fam = family if isinstance(family, Family) else get_family(family)
    fixed = dict(fixed or {})
    fam.knob(knob)
    if knob in fixed:
        raise SpecError("fixed", f"the free knob {knob!r} must not also be fixed (got {knob}={fixed[knob]!r})")
    if target_activation_pct is None:
        return _solve_one(fam, knob, budget, fixed, low, high)
    if via is None:
        raise SpecError("via", "target_activation_pct needs a second knob `via` (e.g. xunit_kernel_size) to move")
    values = via_values if via_values is not None else list(fam.knob(via).values())
    best: Solution | None = None
    reasons = []
    for v in values:
        try:
            sol = _solve_one(fam, knob, budget, {**fixed, via: v}, low, high)
        except BudgetError as err:
            reasons.append(f"{via}={v}: {err}")
            continue
        key = (abs(sol.counts.activation_param_pct - target_activation_pct), sol.rel_error)
        if best is None or key < (abs(best.counts.activation_param_pct - target_activation_pct), best.rel_error):
            best = sol
    if best is None:
        raise BudgetError(f"no value of {via!r} in {values} puts family {fam.name!r} on the budget: "
                          + "; ".join(reasons))
    return best


def _solve_one(fam: Family, knob: str, budget: Budget, fixed: dict[str, Any],
               low: int | None, high: int | None) -> Solution:
    values = fam.knob(knob).values(low, high)
    measure = _measure_fn(fam, fixed, knob, budget)
    n = len(values)
    if n == 0:
        raise BudgetError(f"knob {knob!r} has no values in {low}..{high}")

    def valid_from(i: int, stop: int, step: int) -> int | None:
        while (i <= stop) if step > 0 else (i >= stop):
            if measure(values[i]) is not None:
                return i
            i += step
        return None

    first, last = valid_from(0, n - 1, 1), valid_from(n - 1, 0, -1)
    if first is None or last is None:
        raise BudgetError(f"no value of {knob!r} in {values.start}..{values[-1]} gives a valid "
                          f"{fam.name!r} spec with {fixed}")
    v_first, v_last = measure(values[first])[2], measure(values[last])[2]  # type: ignore[index]
    # Counts are monotone in every knob, but not always increasing: NSR's same-size regime divides the conv
    # MACs by the number of sparsity groups. ``sign`` turns a decreasing count into an increasing one.
    sign = -1.0 if v_last < v_first else 1.0
    (lo_i, lo_val), (hi_i, hi_val) = sorted([(first, v_first), (last, v_last)], key=lambda p: p[1])
    target = float(budget.value)
    tol = budget.tolerance or 0.0
    unit = "parameters" if budget.metric == "params" else "MACs/pixel"
    if target < lo_val * (1 - tol) - 1e-9 or target > hi_val * (1 + tol) + 1e-9:
        raise BudgetError(
            f"budget {target:,.0f} {unit} is out of reach for family {fam.name!r} by {knob!r}: the smallest "
            f"achievable is {lo_val:,.0f} ({knob}={values[lo_i]}), the largest {hi_val:,.0f} "
            f"({knob}={values[hi_i]}), with {fixed}")
    # smallest valid index whose (signed) count reaches the (signed) budget
    lo, hi, ans = first, last, None
    while lo <= hi:
        mid = (lo + hi) // 2
        j = valid_from(mid, hi, 1)
        if j is None:
            hi = mid - 1
            continue
        if sign * measure(values[j])[2] >= sign * target:  # type: ignore[index]
            ans, hi = j, mid - 1
        else:
            lo = j + 1
    candidates = [i for i in (ans, valid_from((ans if ans is not None else n) - 1, 0, -1)) if i is not None]
    best_i = min(candidates, key=lambda i: (abs(measure(values[i])[2] - target) / target, i))  # type: ignore[index]
    spec, counts, achieved = measure(values[best_i])  # type: ignore[misc]
    rel = abs(achieved - target) / target
    if budget.tolerance is not None and rel > budget.tolerance:
        raise BudgetError(
            f"no value of {knob!r} puts family {fam.name!r} within {budget.tolerance:.1%} of {target:,.0f} {unit}: "
            f"closest is {achieved:,.0f} ({knob}={values[best_i]}, {rel:.2%} off)")
    return Solution(fam.name, knob, values[best_i], spec, counts, budget, achieved, rel,
                    {**fixed, knob: values[best_i]})
