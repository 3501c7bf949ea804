"""A study's claims (``claims:``, :mod:`archsearch.study.claim_schema`) decided from its ledger.

**Method.** Every comparison of two points uses *paired differences over the seeds both points share*: the same
seed means the same training data order, patches and noise, so the difference PSNR(A, seed) - PSNR(B, seed)
removes what the seeds have in common. Over the n shared seeds, the 95% confidence interval of the mean
difference is Student's t interval ``mean ± t(0.975, n-1) · sd / √n`` (sd: the sample standard deviation of
the differences). Fewer than 2 shared seeds give no interval: the claim is *inconclusive* ("needs ≥ 2 seeds").

**Verdicts** -- *holds*, *contradicted*, or *inconclusive* (at this power: more seeds may decide it):

* ``ordering`` (A > B > C): each adjacent difference A-B, B-C. Holds when every interval lies above 0;
  contradicted when some interval lies entirely below 0.
* ``gap`` (d = A - B): ``within: w`` holds when the interval lies inside [-w, w], contradicted when it lies
  entirely outside it (above w or below -w); ``at_least: x`` holds when the interval's lower end is >= x,
  contradicted when its upper end is < x; ``at_most: x`` holds when the upper end is <= x, contradicted when
  the lower end is > x.
* ``trend`` (increasing / decreasing): per seed, the least-squares slope of PSNR against the points' sweep
  values (when all are numbers; else against their position 0, 1, 2, ... in the claim), over the seeds all
  points share; the t interval of the slopes. Increasing holds when the interval lies above 0, contradicted
  when it lies entirely below 0 (mirrored for decreasing). A slope is the overall direction, not
  monotonicity.
* ``plateau`` (tolerance t): every pair's difference. Holds when every interval lies inside [-t, t];
  contradicted when some interval lies entirely outside it.
* ``extreme`` (A is worst / best among S, default every point of the study): the differences B - A (worst) or
  A - B (best) for every other B in S. Holds when every interval lies above 0; contradicted when some interval
  lies entirely below 0 (some B is surely worse / better than A).

Composite claims: *contradicted* when any comparison is contradicted, else *inconclusive* when any comparison
lacks 2 shared seeds or is undecided, else *holds*. Each interval is a 95% interval with no correction for the
number of comparisons ("holds" needs all of them, which needs none; a "contradicted" among m comparisons has a
false-alarm chance up to m x 2.5%). A claim whose point has no complete trial in the ledger (not run yet, not
in this profile's sweep, off the budget) is inconclusive and names the point.

**Scale.** A verdict at any profile but ``paper`` is about a CPU-scale proxy: the published numbers are shown
for reference, never as what was reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..study.claim_schema import Claim, PointRef, parse_ref, resolve

LEVEL = 0.95
METHOD = ("paired differences over the seeds both points share (same seed = same data and noise); Student-t "
          "95% interval mean ± t(0.975, n-1)·sd/√n")
TREND_METHOD = ("per-seed least-squares slope of PSNR vs {x} over the seeds all points share; Student-t 95% "
                "interval mean ± t(0.975, n-1)·sd/√n")
PROXY_NOTE = "CPU-scale proxy; published numbers shown for reference"
PAPER_NOTE = "paper scale: measured numbers compared with the published ones"
VERDICTS = ("holds", "contradicted", "inconclusive")


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t distribution with ``df`` degrees of freedom (scipy)."""
    from scipy.stats import t

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


@dataclass
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


@dataclass
class PointStat:
    """A point named by the claim: its measured mean PSNR ± 95% interval over seeds, and any published row."""

    ref: str
    label: str | None
    mean: float
    low: float
    high: float
    n: int
    published: dict[str, Any] | None = None


@dataclass
class Verdict:
    claim_id: str
    text: str
    source: str
    kind: str
    rule: str
    verdict: str
    estimate: float
    low: float
    high: float
    n_seeds: int
    method: str
    reason: str
    scale: str  # the study's fidelity line
    profile: str
    comparisons: list[Comparison] = field(default_factory=list)
    points: list[PointStat] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    unit: str = "dB"

    @property
    def reproduction(self) -> bool:
        """Whether the numbers are at paper scale (``--profile paper``); otherwise a proxy."""
        return self.profile == "paper"

    @property
    def scale_note(self) -> str:
        return PAPER_NOTE if self.reproduction else PROXY_NOTE

    def estimate_text(self) -> str:
        """``Δ=+0.41 dB, 95% CI [+0.20, +0.60], 3 seeds`` (or the reason there is none)."""
        if not math.isfinite(self.estimate):
            return self.reason
        name = "slope" if self.kind == "trend" else "Δ"
        seeds = f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''}"
        if not math.isfinite(self.low):
            return f"{name}={self.estimate:+.3f} {self.unit}, no interval, {seeds}"
        return f"{name}={self.estimate:+.3f} {self.unit}, 95% CI [{self.low:+.3f}, {self.high:+.3f}], {seeds}"

    def line(self) -> str:
        """One line: ``claim ID: VERDICT (estimate, CI, seeds) -- text [scale]``."""
        why = f"; {self.reason}" if self.reason and math.isfinite(self.estimate) else ""
        return (f"claim {self.claim_id}: {self.verdict} ({self.estimate_text()}{why}) -- {self.text} "
                f"[{self.scale_note}]")

    def short(self) -> str:
        """For a figure: ``claim ID: VERDICT (estimate, CI, seeds)``."""
        return f"claim {self.claim_id}: {self.verdict} ({self.estimate_text()})"

    def published_text(self) -> str:
        return "; ".join(f"{r['id']}: {'~' if r['approximate'] else ''}{r['value']:g} {r['unit']}"
                         for r in self.published) or "-"

    def measured_text(self) -> str:
        parts = []
        for p in self.points:
            if p.n == 0:
                parts.append(f"{p.ref}: not in the ledger")
                continue
            ci = f" [{p.low:.3f}, {p.high:.3f}]" if math.isfinite(p.low) else ""
            pub = f" (published {'~' if p.published['approximate'] else ''}{p.published['value']:g} " \
                  f"{p.published['unit']})" if p.published else ""
            parts.append(f"{p.ref}: {p.mean:.3f} dB{ci}, {p.n} seed{'s' if p.n != 1 else ''}{pub}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reproduction"] = self.reproduction
        out["scale_note"] = self.scale_note
        out["line"] = self.line()
        return _finite(out)

    def row(self) -> dict[str, Any]:
        """A flat row for ``claims.csv``."""
        return {"claim": self.claim_id, "verdict": self.verdict, "kind": self.kind, "rule": self.rule,
                "estimate": self.estimate, "ci_low": self.low, "ci_high": self.high, "n_seeds": self.n_seeds,
                "unit": self.unit, "measured": self.measured_text(), "published": self.published_text(),
                "text": self.text, "source": self.source, "reason": self.reason, "method": self.method,
                "profile": self.profile, "scale": self.scale, "scale_note": self.scale_note}


def _finite(v: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------------------------
# the rules
# ---------------------------------------------------------------------------------------------------------
PerSeed = Mapping[str, Mapping[Any, float]]  # label -> seed -> PSNR


def paired(per_seed: PerSeed, a: str, b: str, name: str) -> Comparison:
    """A - B over the seeds both share."""
    shared = sorted(set(per_seed.get(a, {})) & set(per_seed.get(b, {})), key=str)
    diffs = [float(per_seed[a][s]) - float(per_seed[b][s]) for s in shared]
    mean, lo, hi, n = t_interval(diffs)
    return Comparison(name, mean, lo, hi, n)


def _above(c: Comparison, x: float = 0.0) -> str:
    """holds: interval above x; contradicted: entirely below x."""
    if not c.decided:
        return "inconclusive"
    return "holds" if c.low > x else "contradicted" if c.high < x else "inconclusive"


def _combine(comparisons: Sequence[Comparison]) -> tuple[str, Comparison | None, str]:
    """The claim's verdict from its comparisons' outcomes, the comparison to headline, and the reason."""
    bad = [c for c in comparisons if c.outcome == "contradicted"]
    if bad:
        worst = max(bad, key=lambda c: abs(c.estimate))
        return "contradicted", worst, f"{worst.name} contradicts it"
    few = [c for c in comparisons if not c.decided]
    if few:
        c = min(few, key=lambda c: c.n)
        return "inconclusive", c if c.n else None, f"needs ≥ 2 seeds shared by {c.name.replace(' - ', ' and ')} " \
                                                   f"(has {c.n})"
    open_ = [c for c in comparisons if c.outcome != "holds"]
    if open_:
        c = open_[0]
        return "inconclusive", c, f"{c.name}: the 95% interval does not decide it at this power"
    # all hold: headline the comparison with the least margin
    return "holds", min(comparisons, key=lambda c: abs(c.estimate)), ""


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def decide(claim: Claim, per_seed: PerSeed, labels: Mapping[str, str], x_values: Mapping[str, Any] | None = None,
           every_point: Sequence[str] = ()) -> tuple[str, list[Comparison], Comparison | None, str, str]:
    """The rule of ``claim.kind`` on per-seed PSNR. ``labels``: point text -> ledger label (resolved);
    ``x_values``: label -> sweep value (trend); ``every_point``: the labels an ``extreme`` claim without
    ``among`` compares against. Returns (verdict, comparisons, headline comparison, reason, method)."""
    def lab(text: str) -> str:
        return labels.get(text, text)

    method = METHOD
    comps: list[Comparison] = []
    if claim.kind == "ordering":
        for p, q in zip(claim.order, claim.order[1:]):
            c = paired(per_seed, lab(p.text), lab(q.text), f"{p.text} - {q.text}")
            c.outcome = _above(c)
            comps.append(c)
    elif claim.kind == "gap":
        c = paired(per_seed, lab(claim.a.text), lab(claim.b.text), f"{claim.a.text} - {claim.b.text}")
        if c.decided:
            if claim.within is not None:
                w = claim.within
                c.outcome = "holds" if -w <= c.low and c.high <= w else \
                    "contradicted" if c.low > w or c.high < -w else "inconclusive"
            elif claim.at_least is not None:
                x = claim.at_least
                c.outcome = "holds" if c.low >= x else "contradicted" if c.high < x else "inconclusive"
            else:
                x = claim.at_most
                c.outcome = "holds" if c.high <= x else "contradicted" if c.low > x else "inconclusive"
        comps.append(c)
    elif claim.kind == "plateau":
        t = claim.tolerance
        for i, p in enumerate(claim.points):
            for q in claim.points[i + 1:]:
                c = paired(per_seed, lab(p.text), lab(q.text), f"{p.text} - {q.text}")
                if c.decided:
                    c.outcome = "holds" if -t <= c.low and c.high <= t else \
                        "contradicted" if c.low > t or c.high < -t else "inconclusive"
                comps.append(c)
    elif claim.kind == "extreme":
        a = claim.point.text
        among = [r.text for r in claim.among] or list(every_point)
        for b in [x for x in among if x != a and (lab(x) or x) != lab(a)]:
            name = f"{b} - {a}" if claim.extreme == "worst" else f"{a} - {b}"
            c = paired(per_seed, lab(b), lab(a), name) if claim.extreme == "worst" else \
                paired(per_seed, lab(a), lab(b), name)
            c.outcome = _above(c)
            comps.append(c)
    else:  # trend
        names = [lab(r.text) for r in claim.points]
        xv = [(x_values or {}).get(n) for n in names]
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
            sign = 1 if claim.direction == "increasing" else -1
            c.outcome = _above(Comparison("", sign * mean, min(sign * lo, sign * hi), max(sign * lo, sign * hi), n))
        comps.append(c)
    verdict, head, reason = _combine(comps)
    if claim.kind == "plateau" and verdict == "holds":  # the widest pair, not the closest
        head = max(comps, key=lambda c: abs(c.estimate))
    if claim.kind == "trend" and comps and not comps[0].decided:
        reason = f"needs ≥ 2 seeds shared by all {len(claim.points)} points (has {comps[0].n})"
    return verdict, comps, head, reason, method


# ---------------------------------------------------------------------------------------------------------
# from the ledger
# ---------------------------------------------------------------------------------------------------------
def ledger_points(df) -> tuple[dict[str, dict[Any, float]], dict[str, Any]]:
    """Per-seed PSNR (label -> seed -> PSNR) of the COMPLETE trials, and each label's sweep value."""
    from ..study.results import seed_frame

    per_seed: dict[str, dict[Any, float]] = {}
    values: dict[str, Any] = {}
    if df is None or df.empty:
        return per_seed, values
    seeds = seed_frame(df)
    for _, r in seeds.iterrows():
        p = r["psnr"]
        if p is None or (isinstance(p, float) and not math.isfinite(p)) or not isinstance(r["label"], str):
            continue
        seed = int(r["seed"]) if isinstance(r["seed"], (int, float)) and float(r["seed"]).is_integer() else r["seed"]
        per_seed.setdefault(r["label"], {})[seed] = float(p)
        v = r.get("sweep_value")
        values[r["label"]] = None if isinstance(v, float) and math.isnan(v) else v
    return per_seed, values


def evaluate_claims(claims: Sequence[Claim], per_seed: PerSeed, sweep_values: Mapping[str, Any], *,
                    published_map: Mapping[str, str] | None = None, scale: str = "", profile: str = "default"
                    ) -> list[Verdict]:
    """Each claim's :class:`Verdict` from per-seed PSNR (label -> seed -> PSNR) and the labels' sweep values."""
    from ..published import published

    points = [(lab, sweep_values.get(lab)) for lab in per_seed]
    pub_by_label: dict[str, dict[str, Any]] = {}
    for ref_text, row_id in (published_map or {}).items():
        for lab in resolve(parse_ref(ref_text, "published"), points):
            pub_by_label[lab] = published(row_id).as_dict()
    out = []
    for claim in claims:
        labels: dict[str, str] = {}
        missing: list[str] = []
        refs = [r for _, r in claim.refs()]
        for ref in refs:
            found = resolve(ref, points)
            if len(found) == 1:
                labels[ref.text] = found[0]
            else:
                missing.append(ref.text)
        stats = []
        for ref in _unique(refs):
            lab = labels.get(ref.text)
            mean, lo, hi, n = t_interval(list(per_seed.get(lab, {}).values())) if lab else (math.nan,) * 3 + (0,)
            stats.append(PointStat(ref.text, lab, mean, lo, hi, n, pub_by_label.get(lab) if lab else None))
        rows = [published(i).as_dict() for i in claim.published]
        base = dict(claim_id=claim.id, text=claim.text, source=claim.source, kind=claim.kind, rule=claim.rule,
                    scale=scale, profile=profile, points=stats, published=rows)
        if missing:
            why = ", ".join(sorted(set(missing)))
            out.append(Verdict(**base, verdict="inconclusive", estimate=math.nan, low=math.nan, high=math.nan,
                               n_seeds=0, method=METHOD, reason=f"no complete trial of point {why} in the ledger "
                                                                "(not run yet, or not in this profile's sweep)"))
            continue
        verdict, comps, head, reason, method = decide(claim, per_seed, labels, sweep_values, sorted(per_seed))
        n = min((c.n for c in comps), default=0)
        out.append(Verdict(**base, verdict=verdict, estimate=head.estimate if head else math.nan,
                           low=head.low if head else math.nan, high=head.high if head else math.nan, n_seeds=n,
                           method=method, reason=reason, comparisons=comps, unit=head.unit if head else "dB"))
    return out


def _unique(refs: Sequence[PointRef]) -> list[PointRef]:
    seen, out = set(), []
    for r in refs:
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out


def evaluate(study, ostudy=None, df=None) -> list[Verdict]:
    """The verdicts of ``study``'s claims from its ledger (``df``: :func:`~archsearch.study.results.ledger_frame`,
    read when not given)."""
    if not study.config.claims:
        return []
    from ..study.results import ledger_frame

    if df is None:
        from ..study.ledger import open_study

        ostudy = ostudy or open_study(study, create=False)
        df = ledger_frame(study, ostudy)
    scale = str((ostudy.user_attrs.get("fidelity") if ostudy is not None else None) or study.config.fidelity
                or "fidelity not stated in the study file")
    per_seed, values = ledger_points(df)
    return evaluate_claims(study.config.claims, per_seed, values, published_map=study.config.published,
                           scale=scale, profile=study.profile)


def write_verdicts(verdicts: Sequence[Verdict], out_dir) -> list:
    """``claims.csv`` (one row per claim) and ``claims.json`` (everything, with the comparisons) in ``out_dir``."""
    import csv
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [v.row() for v in verdicts]
    csv_path, json_path = out / "claims.csv", out / "claims.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        cols = list(rows[0]) if rows else ["claim", "verdict"]
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    json_path.write_text(json.dumps({"method": METHOD, "rules": RULES, "claims": [v.as_dict() for v in verdicts]},
                                    indent=2, ensure_ascii=False), encoding="utf-8")
    return [csv_path, json_path]


#: The verdict rules in one line each (the report and the reproduction page print them).
RULES = {
    "ordering": "A > B > C: holds when every adjacent difference's 95% CI lies above 0; contradicted when one "
                "lies entirely below 0",
    "gap": "d = A - B: within w holds when the CI lies inside [-w, w], contradicted when entirely outside; "
           "at_least x holds when CI low >= x, contradicted when CI high < x; at_most x holds when CI high <= x, "
           "contradicted when CI low > x",
    "trend": "per-seed least-squares slope of PSNR vs sweep value (else position): increasing holds when the "
             "CI lies above 0, contradicted when entirely below 0 (mirrored for decreasing)",
    "plateau": "every pair's difference: holds when every CI lies inside [-t, t], contradicted when one lies "
               "entirely outside",
    "extreme": "worst (best): every other point minus A (A minus every other point): holds when every CI lies "
               "above 0, contradicted when one lies entirely below 0",
    "inconclusive": "otherwise, or with fewer than 2 seeds shared by the points compared, or a point missing "
                    "from the ledger",
}
