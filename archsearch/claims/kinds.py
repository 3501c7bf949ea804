"""The claim kinds: one class each, holding its fields, how it parses them from the study file, its rule in
words, how it is decided from per-seed PSNR, and that decision rule in one line.

Each decision rests on the 95% intervals and one-sided tests of :mod:`.stats` (the sd floored at the study's pooled
paired sd, at least ``MIN_SEEDS`` shared seeds); a kind's verdict is *holds*, *contradicted*, or *inconclusive*
(at this power: more seeds may decide it). A new kind: a frozen dataclass subclass of
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
from .stats import ALPHA, MIN_SEEDS, Comparison, above, below, comparison, fisher_greater, inside

DIRECTIONS = ("increasing", "decreasing")
EXTREMES = ("worst", "best")
TREND_METHOD = ("per-seed least-squares slope of PSNR vs {x} over the seeds all points share; Student-t 95% "
                "interval mean ± t(0.975, n-1)·sd/√n (sd floored at the pooled paired sd / √(2·Sxx)); with "
                "monotone, every adjacent step's paired difference too, Holm over the slope and the steps")


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
        return Decision.of([above(measured.paired(p.text, q.text)) for p, q in zip(self.order, self.order[1:])])


@register_kind
@dataclass(frozen=True)
class Gap(Claim):
    """``a: A``, ``b: B`` and exactly one of ``within: w`` (|A - B| <= w dB), ``at_least: x`` (A - B >= x dB),
    ``at_most: x`` (A - B <= x dB), ``not_worse_by: m`` (non-inferiority, "A is at least as good as B": A - B >=
    -m dB) or ``about: x`` with ``tolerance: t`` ("A - B is about x dB": |A - B - x| <= t). On d = A - B:
    ``within`` and ``about`` are equivalence tests (two one-sided tests: holds when the 95% interval lies inside the
    margins, contradicted when entirely outside); ``at_least`` / ``not_worse_by`` hold when the interval's lower end
    is >= the bound, contradicted when its upper end is below it; ``at_most`` mirrored."""

    kind = "gap"
    required = ("a", "b")
    one_of = ("within", "at_least", "at_most", "not_worse_by", "about")
    optional = ("tolerance",)
    description = ("d = A - B: within w / about x ± t (equivalence, two one-sided tests) hold when the CI lies inside "
                   "the margins, contradicted when entirely outside; at_least x and not_worse_by m (non-inferiority, "
                   "x = -m) hold when CI low >= x, contradicted when CI high < x; at_most x holds when CI high <= x, "
                   "contradicted when CI low > x")

    a: PointRef
    b: PointRef
    within: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    not_worse_by: float | None = None
    about: float | None = None
    tolerance: float | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        a, b = parse_ref(data["a"], f"{path}.a"), parse_ref(data["b"], f"{path}.b")
        if a.text == b.text:
            raise SpecError(f"{path}.b", f"must be another point than a ({a.text!r})")
        key = next(k for k in cls.one_of if k in data)
        out = {"a": a, "b": b, key: parse_number(data, key, path, positive=key in ("within", "not_worse_by"))}
        if key == "about":
            if "tolerance" not in data:
                raise SpecError(f"{path}.tolerance", "is required with `about`: the margin (dB) around it, e.g. "
                                                     "about: 0.1, tolerance: 0.05")
            out["tolerance"] = parse_number(data, "tolerance", path, positive=True)
        elif "tolerance" in data:
            raise SpecError(f"{path}.tolerance", "goes with `about` only (`within` is its own margin)")
        return out

    @property
    def rule(self) -> str:
        a, b = self.a.text, self.b.text
        if self.within is not None:
            return f"|{a} - {b}| <= {self.within:g} dB"
        if self.at_least is not None:
            return f"{a} - {b} >= {self.at_least:g} dB"
        if self.not_worse_by is not None:
            return f"{a} - {b} >= -{self.not_worse_by:g} dB (non-inferiority)"
        if self.about is not None:
            return f"{a} - {b} = {self.about:g} ± {self.tolerance:g} dB"
        return f"{a} - {b} <= {self.at_most:g} dB"

    @property
    def margin(self) -> float:
        v = next(x for x in (self.within, self.at_least, self.at_most, self.not_worse_by, self.about)
                 if x is not None)
        return abs(v)

    def decide(self, measured: Measured) -> Decision:
        c = measured.paired(self.a.text, self.b.text)
        if self.within is not None:
            c = inside(c, -self.within, self.within)
        elif self.about is not None:
            c = inside(c, self.about - self.tolerance, self.about + self.tolerance)
        elif self.at_least is not None or self.not_worse_by is not None:
            c = above(c, self.at_least if self.at_least is not None else -self.not_worse_by, inclusive=True)
        else:
            c = below(c, self.at_most, inclusive=True)
        return Decision.of([c])


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


@register_kind
@dataclass(frozen=True)
class Trend(Claim):
    """``points: [P1, P2, ...]`` in x order, ``direction: increasing | decreasing``, optional ``monotone: true``
    (default) or ``false``. Per seed, the least-squares slope of PSNR against the points' sweep values (when all
    are distinct numbers; else against their position 0, 1, 2, ... in the claim), over the seeds all points share;
    the t interval of the slopes (sd floored at the pooled paired sd / √(2·Sxx), what independent per-point noise
    of that size would give). Increasing holds when the interval lies above 0 and -- with ``monotone`` ("rises
    with") -- no adjacent step goes significantly down; contradicted when the slope's interval lies entirely below
    0 or an adjacent step goes down, Holm-corrected over the slope and the steps (mirrored for decreasing)."""

    kind = "trend"
    required = ("points", "direction")
    optional = ("monotone",)
    description = ("per-seed least-squares slope of PSNR vs sweep value (else position): increasing holds when the "
                   "CI lies above 0 and (monotone, the default) no adjacent step's CI lies entirely below 0; "
                   "contradicted when the slope or a step goes the other way after Holm over them (mirrored for "
                   "decreasing)")

    points: tuple[PointRef, ...]
    direction: str
    monotone: bool = True

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        out = {"points": parse_points(data, "points", path, 2),
               "direction": parse_choice(data, "direction", path, DIRECTIONS)}
        if "monotone" in data:
            if not isinstance(data["monotone"], bool):
                raise SpecError(f"{path}.monotone", f"must be true or false, got {data['monotone']!r}")
            out["monotone"] = data["monotone"]
        return out

    @property
    def rule(self) -> str:
        how = "monotonically " if self.monotone and len(self.points) > 2 else ""
        return f"PSNR {how}{self.direction} over " + ", ".join(r.text for r in self.points)

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
        mx = sum(xs) / len(xs)
        sxx = sum((x - mx) ** 2 for x in xs)
        unit = "dB per unit of sweep value" if numeric else "dB per point"
        c = comparison("slope", slopes, sd_floor=measured.sd_floor / math.sqrt(2 * sxx), unit=unit)
        test = above if self.direction == "increasing" else below
        c = test(c)
        steps = []
        if self.monotone and len(self.points) > 2:
            steps = [test(measured.paired(q.text, p.text)) for p, q in zip(self.points, self.points[1:])]
        decision = Decision.of([c], method, blockers=steps)
        if not c.decided:
            decision = replace(decision,
                               reason=f"needs ≥ {MIN_SEEDS} seeds shared by all {len(self.points)} points (has "
                                      f"{c.n})")
        return decision


@register_kind
@dataclass(frozen=True)
class Plateau(Claim):
    """``points: [P1, ...]``, ``tolerance: t`` -- every pair within t dB. Equivalence of every pair (two one-sided
    tests): holds when every pair's interval lies inside [-t, t]; contradicted when some interval lies entirely
    outside it (Holm over the pairs)."""

    kind = "plateau"
    required = ("points", "tolerance")
    description = ("every pair's difference (equivalence, two one-sided tests): holds when every CI lies inside "
                   "[-t, t], contradicted when one lies entirely outside after Holm over the pairs")

    points: tuple[PointRef, ...]
    tolerance: float

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        return {"points": parse_points(data, "points", path, 2),
                "tolerance": parse_number(data, "tolerance", path, positive=True)}

    @property
    def rule(self) -> str:
        return f"every pair within {self.tolerance:g} dB among " + ", ".join(r.text for r in self.points)

    @property
    def margin(self) -> float:
        return self.tolerance

    def decide(self, measured: Measured) -> Decision:
        t = self.tolerance
        comps = [inside(measured.paired(p.text, q.text), -t, t)
                 for i, p in enumerate(self.points) for q in self.points[i + 1:]]
        decision = Decision.of(comps)
        if decision.verdict == "holds":  # headline the widest pair: the one closest to breaking the plateau
            decision = replace(decision, head=max(decision.comparisons, key=lambda c: abs(c.estimate)))
        return decision


@register_kind
@dataclass(frozen=True)
class Extreme(Claim):
    """``point: A``, ``is: worst | best``, optional ``among: [...]`` (default: every point of the study). The
    differences B - A (worst) or A - B (best) for every other B: holds when every interval lies above 0;
    contradicted when some interval lies entirely below 0 (some B is surely worse / better than A; Holm over the
    comparisons)."""

    kind = "extreme"
    required = ("point", "is")
    optional = ("among",)
    description = ("worst (best): every other point minus A (A minus every other point): holds when every CI lies "
                   "above 0, contradicted when one lies entirely below 0 after Holm over them")

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
            comps.append(above(measured.paired(b, a) if self.extreme == "worst" else measured.paired(a, b)))
        return Decision.of(comps)


def _pair(data: Mapping[str, Any], key: str, path: str) -> tuple[PointRef, PointRef]:
    v = data[key]
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise SpecError(f"{path}.{key}", f"must be two points [A, B] (the gain A - B), got {v!r}")
    a, b = (parse_ref(r, f"{path}.{key}[{i}]") for i, r in enumerate(v))
    if a.text == b.text:
        raise SpecError(f"{path}.{key}[1]", f"must be another point than {a.text!r}")
    return a, b


@register_kind
@dataclass(frozen=True)
class Contrast(Claim):
    """``gain: [A, B]``, ``versus: [C, D]``, ``at_most: f`` -- the gain A - B is small next to the gain C - D: at
    most the fraction f of it ("with 1x1 xUnits xNet exceeds the ConvNet by only a minor gap", next to what larger
    supports add). Per seed, d = (A - B) - f·(C - D) over the seeds all four points share (sd floored at the pooled
    paired sd times √(1 + f²)). Holds when d's interval lies below 0 and the gain C - D's lies above 0 (the contrast
    needs a real larger gain); contradicted when d's interval lies entirely above 0."""

    kind = "contrast"
    required = ("gain", "versus", "at_most")
    description = ("d = (A - B) - f·(C - D) per seed: holds when d's CI lies below 0 and C - D's above 0, "
                   "contradicted when d's CI lies entirely above 0")

    gain: tuple[PointRef, PointRef]
    versus: tuple[PointRef, PointRef]
    at_most: float

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        f = parse_number(data, "at_most", path, positive=True)
        if f >= 1:
            raise SpecError(f"{path}.at_most", f"must be a fraction below 1 (the small gain over the large), got {f!r}")
        return {"gain": _pair(data, "gain", path), "versus": _pair(data, "versus", path), "at_most": f}

    @property
    def rule(self) -> str:
        (a, b), (c, d) = self.gain, self.versus
        return f"{a.text} - {b.text} <= {self.at_most:g} x ({c.text} - {d.text})"

    def decide(self, measured: Measured) -> Decision:
        (a, b), (c, d) = ((measured.label(p.text), measured.label(q.text)) for p, q in (self.gain, self.versus))
        ps, f = measured.per_seed, self.at_most
        shared = sorted(set.intersection(*[set(ps.get(x, {})) for x in (a, b, c, d)]), key=str)
        ds = [(ps[a][s] - ps[b][s]) - f * (ps[c][s] - ps[d][s]) for s in shared]
        g, v = self.gain, self.versus
        name = f"({g[0].text} - {g[1].text}) - {f:g} x ({v[0].text} - {v[1].text})"
        contrast = below(comparison(name, ds, sd_floor=measured.sd_floor * math.sqrt(1 + f * f)))
        large = above(measured.paired(v[0].text, v[1].text))
        return Decision.of([contrast, large])


@register_kind
@dataclass(frozen=True)
class Failures(Claim):
    """``point: A``, ``more_than: [B, ...]`` -- A fails (diverges, or returns a degenerate result: within 0.1 dB of
    the task's trivial baseline, or below it) more often than each B. Decided on counts over the seeds each point
    ran, by a one-sided Fisher exact test per B at 2.5%: holds when every test shows A's failure rate above B's;
    contradicted when some B fails significantly more often than A (Holm over the B)."""

    kind = "failures"
    required = ("point", "more_than")
    description = ("A's failures (diverged or degenerate seeds) vs each B's: holds when a one-sided Fisher exact "
                   "test shows A failing more often than every B, contradicted when some B fails more often than A "
                   "(Holm)")

    point: PointRef
    more_than: tuple[PointRef, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        point = parse_ref(data["point"], f"{path}.point")
        others = parse_points(data, "more_than", path, 1)
        if point.text in [r.text for r in others]:
            raise SpecError(f"{path}.more_than", f"must not name the point itself ({point.text!r})")
        return {"point": point, "more_than": others}

    @property
    def rule(self) -> str:
        return f"{self.point.text} fails more often than " + ", ".join(r.text for r in self.more_than)

    def counts(self, measured: Measured, text: str) -> tuple[int, int]:
        """(failed seeds, seeds run) of a point."""
        lab = measured.label(text)
        failed = dict(measured.failures.get(lab, {}))
        ok = [s for s in measured.per_seed.get(lab, {}) if s not in failed]
        return len(failed), len(failed) + len(ok)

    def decide(self, measured: Measured) -> Decision:
        fa, na = self.counts(measured, self.point.text)
        comps = []
        for ref in self.more_than:
            fb, nb = self.counts(measured, ref.text)
            p_holds, p_contra = fisher_greater(fa, na, fb, nb), fisher_greater(fb, nb, fa, na)
            rate = (fa / na if na else math.nan) - (fb / nb if nb else math.nan)
            n = min(na, nb)
            c = Comparison(f"{self.point.text} - {ref.text}", rate, math.nan, math.nan, n, "failure rate",
                           values=(fa, na, fb, nb), p_holds=p_holds, p_contra=p_contra, test="fisher")
            comps.append(c.with_outcome("holds" if p_holds < ALPHA else "contradicted" if p_contra < ALPHA
                                        else "inconclusive"))
        return Decision.of(comps, FAILURE_METHOD)


FAILURE_METHOD = ("failure counts (diverged, or degenerate: within 0.1 dB of the task's trivial baseline or below "
                  "it) over the seeds each point ran; one-sided Fisher exact test at 2.5% per pair, Holm over the "
                  "pairs")


SIZE_METRICS = {"params": ("n_params", "parameters"), "macs": ("macs_per_pixel", "MACs per pixel")}
SIZE_METHOD = ("exact counts from each point's spec (trainable parameters; MACs per output pixel), compared with "
               "the sizes the source states; no statistics: a count has no sampling error, and the claim is not "
               "in the study's Holm correction")


@register_kind
@dataclass(frozen=True)
class Size(Claim):
    """``sizes: {A: n, B: m}`` -- the sizes a source states ("60K parameters instead of 550K"), checked against the
    exact counts of the points' specs (``metric``: ``params``, the default, or ``macs`` per output pixel), each
    within ``tolerance`` (relative, default 0.05: a talk's rounded "60K"). Holds when every count is within it,
    contradicted when one is not. Stated ratios follow from the sizes (printed with the verdict)."""

    kind = "size"
    reads = "sizes"
    required = ("sizes",)
    optional = ("metric", "tolerance")
    description = ("each point's exact count (parameters, or MACs per pixel) against the size the source states: "
                   "holds when every count is within the relative tolerance (default 5%), contradicted when one is "
                   "not (exact counts: no interval, not in Holm's correction)")

    sizes: tuple[tuple[PointRef, float], ...]
    metric: str = "params"
    tolerance: float = 0.05

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        raw = data["sizes"]
        if not isinstance(raw, Mapping) or not raw:
            raise SpecError(f"{path}.sizes", f"must map points to the sizes the source states (e.g. {{lidia: 60000, "
                                             f"dncnn_s: 550000}}), got {raw!r}")
        sizes = []
        for key, value in raw.items():
            ref = parse_ref(key, f"{path}.sizes")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise SpecError(f"{path}.sizes.{key}", f"must be the stated size, a number > 0, got {value!r}")
            sizes.append((ref, float(value)))
        out: dict[str, Any] = {"sizes": tuple(sizes)}
        if "metric" in data:
            out["metric"] = parse_choice(data, "metric", path, tuple(SIZE_METRICS))
        if "tolerance" in data:
            tol = data["tolerance"]
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
                raise SpecError(f"{path}.tolerance", f"must be a relative tolerance in (0, 1), e.g. 0.05, got {tol!r}")
            out["tolerance"] = float(tol)
        return out

    @property
    def metric_key(self) -> str:
        return SIZE_METRICS[self.metric][0]

    @property
    def unit_name(self) -> str:
        return SIZE_METRICS[self.metric][1]

    @property
    def rule(self) -> str:
        return (", ".join(f"{r.text} ~ {v:,.0f}" for r, v in self.sizes)
                + f" {self.unit_name} (each within {self.tolerance:.0%})")

    def refs(self) -> list[tuple[str, PointRef]]:
        return [(f"sizes[{r.text}]", r) for r, _ in self.sizes]

    def count(self, measured: Measured, ref: PointRef) -> float | None:
        """The point's exact count from the ledger (None when the point has none)."""
        return measured.sizes.get(measured.label(ref.text), {}).get(self.metric_key)

    def decide(self, measured: Measured) -> Decision:
        comps, off, parts = [], [], []
        for ref, stated in self.sizes:
            count = self.count(measured, ref)
            if count is None:
                return Decision("inconclusive", (), None, f"no count of {ref.text} in the ledger", SIZE_METHOD)
            rel = count / stated - 1
            parts.append(f"{ref.text} {count:,.0f} vs {stated:,.0f} stated ({rel:+.1%})")
            outcome = "holds" if abs(rel) <= self.tolerance else "contradicted"
            comps.append(Comparison(ref.text, float(count), math.nan, math.nan, 1, self.unit_name, test="count",
                                    outcome=outcome))
            if outcome == "contradicted":
                off.append(ref.text)
        if len(self.sizes) >= 2:
            (a, sa), (b, sb) = self.sizes[0], self.sizes[1]
            parts.append(f"ratio {a.text}/{b.text} {self.count(measured, a) / self.count(measured, b):.3f} "
                         f"(stated {sa / sb:.3f})")
        text = "; ".join(parts)
        if off:
            return Decision("contradicted", tuple(comps), None, f"{', '.join(off)} off by more than "
                                                                 f"{self.tolerance:.0%}: {text}", SIZE_METHOD)
        return Decision("holds", tuple(comps), None, text, SIZE_METHOD)
