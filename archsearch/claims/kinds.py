"""The claim kinds: one class each, holding its fields, how it parses them from the study file, its rule in
words, how it is decided from per-seed PSNR, and that decision rule in one line.

Each decision rests on the 95% intervals of :mod:`.stats`; a kind's verdict is *holds*, *contradicted*, or
*inconclusive* (at this power: more seeds may decide it). A new kind: a frozen dataclass subclass of
:class:`~.claim.Claim` here, decorated with :func:`~.claim.register_kind`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import SpecError
from .claim import Claim, Decision, Measured, parse_choice, parse_number, parse_points, register_kind
from .points import PointRef, parse_ref
from .stats import Comparison, above, inside, t_interval

DIRECTIONS = ("increasing", "decreasing")
EXTREMES = ("worst", "best")
TREND_METHOD = ("per-seed least-squares slope of PSNR vs {x} over the seeds all points share; Student-t 95% "
                "interval mean ± t(0.975, n-1)·sd/√n")


@register_kind
@dataclass(frozen=True)
class Ordering(Claim):
    """``order: [A, B, C]`` -- mean PSNR A > B > C. Decided on each adjacent difference A-B, B-C: holds when
    every interval lies above 0; contradicted when some interval lies entirely below 0."""

    kind = "ordering"
    required = ("order",)
    description = ("A > B > C: holds when every adjacent difference's 95% CI lies above 0; contradicted when one "
                   "lies entirely below 0")

    order: tuple[PointRef, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        return {"order": parse_points(data, "order", path, 2)}

    @property
    def rule(self) -> str:
        return "mean PSNR " + " > ".join(r.text for r in self.order)

    def decide(self, measured: Measured) -> Decision:
        comps = [measured.paired(p.text, q.text) for p, q in zip(self.order, self.order[1:])]
        return Decision.of([c.with_outcome(above(c)) for c in comps])


@register_kind
@dataclass(frozen=True)
class Gap(Claim):
    """``a: A``, ``b: B`` and exactly one of ``within: w`` (|A - B| <= w dB), ``at_least: x`` (A - B >= x dB)
    or ``at_most: x`` (A - B <= x dB). On d = A - B: ``within`` holds when the interval lies inside [-w, w],
    contradicted when it lies entirely outside it (above w or below -w); ``at_least`` holds when the interval's
    lower end is >= x, contradicted when its upper end is < x; ``at_most`` holds when the upper end is <= x,
    contradicted when the lower end is > x."""

    kind = "gap"
    required = ("a", "b")
    one_of = ("within", "at_least", "at_most")
    description = ("d = A - B: within w holds when the CI lies inside [-w, w], contradicted when entirely outside; "
                   "at_least x holds when CI low >= x, contradicted when CI high < x; at_most x holds when CI high "
                   "<= x, contradicted when CI low > x")

    a: PointRef
    b: PointRef
    within: float | None = None
    at_least: float | None = None
    at_most: float | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        a, b = parse_ref(data["a"], f"{path}.a"), parse_ref(data["b"], f"{path}.b")
        if a.text == b.text:
            raise SpecError(f"{path}.b", f"must be another point than a ({a.text!r})")
        key = next(k for k in cls.one_of if k in data)
        return {"a": a, "b": b, key: parse_number(data, key, path, positive=key == "within")}

    @property
    def rule(self) -> str:
        a, b = self.a.text, self.b.text
        if self.within is not None:
            return f"|{a} - {b}| <= {self.within:g} dB"
        if self.at_least is not None:
            return f"{a} - {b} >= {self.at_least:g} dB"
        return f"{a} - {b} <= {self.at_most:g} dB"

    def decide(self, measured: Measured) -> Decision:
        c = measured.paired(self.a.text, self.b.text)
        if c.decided:
            if self.within is not None:
                c = c.with_outcome(inside(c, self.within))
            elif self.at_least is not None:
                x = self.at_least
                c = c.with_outcome("holds" if c.low >= x else "contradicted" if c.high < x else "inconclusive")
            else:
                x = self.at_most
                c = c.with_outcome("holds" if c.high <= x else "contradicted" if c.low > x else "inconclusive")
        return Decision.of([c])


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


@register_kind
@dataclass(frozen=True)
class Trend(Claim):
    """``points: [P1, P2, ...]`` in x order, ``direction: increasing | decreasing``. Per seed, the least-squares
    slope of PSNR against the points' sweep values (when all are distinct numbers; else against their position
    0, 1, 2, ... in the claim), over the seeds all points share; the t interval of the slopes. Increasing holds
    when the interval lies above 0, contradicted when it lies entirely below 0 (mirrored for decreasing). A
    slope is the overall direction, not monotonicity."""

    kind = "trend"
    required = ("points", "direction")
    description = ("per-seed least-squares slope of PSNR vs sweep value (else position): increasing holds when the "
                   "CI lies above 0, contradicted when entirely below 0 (mirrored for decreasing)")

    points: tuple[PointRef, ...]
    direction: str

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        return {"points": parse_points(data, "points", path, 2),
                "direction": parse_choice(data, "direction", path, DIRECTIONS)}

    @property
    def rule(self) -> str:
        return f"PSNR {self.direction} over " + ", ".join(r.text for r in self.points)

    def decide(self, measured: Measured) -> Decision:
        per_seed = measured.per_seed
        names = [measured.label(r.text) for r in self.points]
        xv = [measured.sweep_values.get(n) for n in names]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in xv) \
            and len({float(v) for v in xv}) == len(xv)
        xs = [float(v) for v in xv] if numeric else [float(i) for i in range(len(names))]
        method = TREND_METHOD.format(x="the sweep value" if numeric else "the point's position in the claim")
        shared = set.intersection(*[set(per_seed.get(n, {})) for n in names]) if names else set()
        slopes = [_slope(xs, [float(per_seed[n][s]) for n in names]) for s in sorted(shared, key=str)]
        mean, lo, hi, n = t_interval(slopes)
        unit = "dB per unit of sweep value" if numeric else "dB per point"
        c = Comparison("slope", mean, lo, hi, n, unit)
        if c.decided:
            sign = 1 if self.direction == "increasing" else -1
            c = c.with_outcome(above(Comparison("", sign * mean, min(sign * lo, sign * hi), max(sign * lo, sign * hi),
                                                n)))
        decision = Decision.of([c], method)
        if not c.decided:
            decision = replace(decision,
                               reason=f"needs ≥ 2 seeds shared by all {len(self.points)} points (has {c.n})")
        return decision


@register_kind
@dataclass(frozen=True)
class Plateau(Claim):
    """``points: [P1, ...]``, ``tolerance: t`` -- every pair within t dB. Holds when every pair's interval lies
    inside [-t, t]; contradicted when some interval lies entirely outside it."""

    kind = "plateau"
    required = ("points", "tolerance")
    description = ("every pair's difference: holds when every CI lies inside [-t, t], contradicted when one lies "
                   "entirely outside")

    points: tuple[PointRef, ...]
    tolerance: float

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        return {"points": parse_points(data, "points", path, 2),
                "tolerance": parse_number(data, "tolerance", path, positive=True)}

    @property
    def rule(self) -> str:
        return f"every pair within {self.tolerance:g} dB among " + ", ".join(r.text for r in self.points)

    def decide(self, measured: Measured) -> Decision:
        comps = [measured.paired(p.text, q.text) for i, p in enumerate(self.points) for q in self.points[i + 1:]]
        decision = Decision.of([c.with_outcome(inside(c, self.tolerance)) for c in comps])
        if decision.verdict == "holds":  # headline the widest pair: the one closest to breaking the plateau
            decision = replace(decision, head=max(decision.comparisons, key=lambda c: abs(c.estimate)))
        return decision


@register_kind
@dataclass(frozen=True)
class Extreme(Claim):
    """``point: A``, ``is: worst | best``, optional ``among: [...]`` (default: every point of the study). The
    differences B - A (worst) or A - B (best) for every other B: holds when every interval lies above 0;
    contradicted when some interval lies entirely below 0 (some B is surely worse / better than A)."""

    kind = "extreme"
    required = ("point", "is")
    optional = ("among",)
    description = ("worst (best): every other point minus A (A minus every other point): holds when every CI lies "
                   "above 0, contradicted when one lies entirely below 0")

    point: PointRef
    extreme: str  # the file's `is:` (a Python keyword)
    among: tuple[PointRef, ...] = ()

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"point": parse_ref(data["point"], f"{path}.point"),
                              "extreme": parse_choice(data, "is", path, EXTREMES)}
        if "among" in data:
            kw["among"] = parse_points(data, "among", path, 1)
            if [r.text for r in kw["among"]] == [kw["point"].text]:
                raise SpecError(f"{path}.among", "must name at least one point besides `point`")
        return kw

    @property
    def rule(self) -> str:
        among = ", ".join(r.text for r in self.among) if self.among else "every point of the study"
        return f"{self.point.text} is the {self.extreme} among {among}"

    def decide(self, measured: Measured) -> Decision:
        a, lab = self.point.text, measured.label
        among = [r.text for r in self.among] or list(measured.every_point)
        comps = []
        for b in [x for x in among if x != a and (lab(x) or x) != lab(a)]:
            c = measured.paired(b, a) if self.extreme == "worst" else measured.paired(a, b)
            comps.append(c.with_outcome(above(c)))
        return Decision.of(comps)
