"""Claims decided from per-seed PSNR: :func:`evaluate_claims` (per-seed data in, :class:`Verdict` s out) and the
verdict rules in words (:data:`RULES`). Nothing here reads a ledger or a file; the ledger glue is
:mod:`archsearch.report.verdicts`.

**Method** (:mod:`.stats`): paired differences over the seeds both points share, Student's t 95% interval with the
sd floored at the study's pooled paired sd; one-sided tests at 2.5%; equivalence by two one-sided tests; at least
``MIN_SEEDS`` shared seeds; Holm within a claim and across the study's claims.

**Validity gates** (issue 19: no verdict from a degenerate or under-trained trial), applied before any verdict:

* *degenerate and diverged seeds* never enter a mean: a seed whose test PSNR is within 0.1 dB of the task's trivial
  baseline (the noisy input; bicubic for SR; the compressed input for JPEG) or below it is a failure of that design,
  counted with divergences (kind ``failures`` decides claims about them); the claim is decided on the remaining
  seeds and says how many were excluded;
* *under-trained points* do not decide: a point whose validation PSNR still rose by more than max(0.05 dB, a
  quarter of the difference the claim tests) over the last third of training makes the claim *inconclusive:
  under-trained* (more steps, not more seeds, would decide it).

**Verdicts** -- *holds*, *contradicted*, or *inconclusive* (at this power: more seeds may decide it), by each
kind's rule (:mod:`.kinds`), then Holm's correction over the study's tested claims: a verdict whose adjusted p is
2.5% or more becomes inconclusive. An inconclusive claim says what an 80%-power design needs (seeds at the paired
sd it showed, floored), or "untestable at this profile: needs ≥ N seeds" for an equivalence that cannot hold at the
seeds it has, or "untestable at CPU scale" beyond ``MAX_ADVISED_SEEDS``. A claim whose point has no complete trial
in the ledger (not run yet, not in this profile's sweep, off the budget) is inconclusive and names the point.

**Scale.** A verdict at any profile but ``paper`` is about a CPU-scale proxy: the published numbers are shown
for reference, never as what was reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .claim import CLAIM_KINDS, Claim, Decision, Measured
from .points import PointRef, resolve
from .published_map import load_published_map
from .stats import (
    ALPHA,
    IMAGE_METHOD,
    MAX_ADVISED_SEEDS,
    METHOD,
    MIN_SEEDS,
    OUTCOMES,
    Comparison,
    PerSeed,
    holm,
    needed_seeds,
    pooled_paired_sd,
    t_interval,
)

PROXY_NOTE = "CPU-scale proxy; published numbers shown for reference"
PAPER_NOTE = "paper scale: measured numbers compared with the published ones"
PUBLISHED_NOTE = "paper scale: the authors' published weights, evaluated here"
VERDICTS = OUTCOMES
INCONCLUSIVE_RULE = (f"otherwise, or with fewer than {MIN_SEEDS} seeds shared by the points compared, a point "
                     "missing from the ledger, an under-trained point (validation PSNR still rising by more than "
                     "max(0.05 dB, a quarter of the difference tested) over the last third of training), or a "
                     "verdict not significant after Holm's correction over the study's claims")
#: Under-trained gate: a point's last-third validation gain above max(UNDERTRAINED_DB, difference / 4) blocks.
UNDERTRAINED_DB = 0.05
FAILURES = ("degenerate", "diverged")


class _Rules(Mapping[str, str]):
    """Kind -> its verdict rule in one line (:attr:`Claim.description`), then ``inconclusive``. Read from
    :data:`CLAIM_KINDS` on each access, so a kind registered later is listed too."""

    def _all(self) -> dict[str, str]:
        return {**{name: kind.description for name, kind in CLAIM_KINDS.items()}, "inconclusive": INCONCLUSIVE_RULE}

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"RULES({self._all()!r})"


#: The verdict rules in one line each (the report and the reproduction page print them).
RULES: Mapping[str, str] = _Rules()


@dataclass(frozen=True)
class PointStat:
    """A point named by the claim: its measured mean PSNR ± 95% interval over its valid seeds, any published row,
    its failed seeds (seed -> degenerate | diverged) and its mean last-third validation gain."""

    ref: str
    label: str | None
    mean: float
    low: float
    high: float
    n: int
    published: dict[str, Any] | None = None
    failures: dict[str, str] = field(default_factory=dict)
    gain: float | None = None
    unit: str = "dB"  # a `size` claim's points: their count ("parameters", "MACs per pixel")


@dataclass(frozen=True)
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
    p_value: float = math.nan  # the claim's own p-value (for its verdict, or the smaller side when undecided)
    p_adjusted: float = math.nan  # after Holm over the study's tested claims
    gates: list[str] = field(default_factory=list)  # the validity gates that fired, in words
    needs: str = ""  # for an undecided claim: what would decide it
    seeds_needed: int | None = None
    tested: str = "full"
    untested: str = ""
    evidence: str = ""
    per_seed: list[float] = field(default_factory=list)  # the headline interval's per-seed values
    stage: str = ""  # sequential seeding: the look that decided it, or the last one reached
    replicate: str = "seed"  # what the intervals pair over: seed, or image (a study's `replicates: images`)
    published_weights: bool = False  # every point is a published checkpoint: the papers' own models

    def _n(self, n: int) -> str:
        return f"{n} {self.replicate}{'s' if n != 1 else ''}"

    @property
    def reproduction(self) -> bool:
        """Whether the numbers are at paper scale (``--profile paper``); otherwise a proxy."""
        return self.profile == "paper" or self.published_weights

    @property
    def scale_note(self) -> str:
        return PUBLISHED_NOTE if self.published_weights else PAPER_NOTE if self.reproduction else PROXY_NOTE

    def estimate_text(self, values: bool = True) -> str:
        """``Δ=+0.41 dB, 95% CI [+0.20, +0.60], 3 seeds: +0.38, +0.52, +0.33`` (or the reason there is none);
        ``values=False`` leaves the per-seed values out (a figure's title)."""
        if self.unit == "failure rate" and len(self.per_seed) == 4:
            fa, na, fb, nb = (int(x) for x in self.per_seed)
            return (f"failed {fa}/{na} vs {fb}/{nb} seeds, one-sided Fisher p={self.p_value:.3g}"
                    if math.isfinite(self.p_value) else f"failed {fa}/{na} vs {fb}/{nb} seeds")
        if not math.isfinite(self.estimate):
            return self.reason
        name = "slope" if self.kind == "trend" and "per" in self.unit else "Δ"
        seeds = self._n(self.n_seeds)
        values = f": {', '.join(f'{v:+.3f}' for v in self.per_seed)}" if self.per_seed and values else ""
        if not math.isfinite(self.low):
            return f"{name}={self.estimate:+.3f} {self.unit}, no interval, {seeds}{values}"
        return (f"{name}={self.estimate:+.3f} {self.unit}, 95% CI [{self.low:+.3f}, {self.high:+.3f}], "
                f"{seeds}{values}")

    def notes(self) -> str:
        """The reason, the gates that fired, the multiplicity correction and what would decide it, in one text."""
        parts = [self.reason] if self.reason and (math.isfinite(self.estimate) or self.unit == "failure rate") \
            else []
        parts += self.gates
        if self.stage:
            parts.append(self.stage)
        if self.needs:
            parts.append(self.needs)
        if self.tested == "partial":
            parts.append(f"partly tested: not tested: {self.untested}")
        if self.evidence:
            parts.append(f"paper's evidence: {self.evidence}")
        return "; ".join(parts)

    def line(self) -> str:
        """One line: ``claim ID: VERDICT (estimate, CI, seeds; notes) -- text [scale]``."""
        why = f"; {self.notes()}" if self.notes() else ""
        return (f"claim {self.claim_id}: {self.verdict} ({self.estimate_text()}{why}) -- {self.text} "
                f"[{self.scale_note}]")

    def short(self) -> str:
        """For a figure: ``claim ID: VERDICT (estimate, CI, seeds)``."""
        return f"claim {self.claim_id}: {self.verdict} ({self.estimate_text(values=False)})"

    def published_text(self) -> str:
        return "; ".join(f"{r['id']}: {'~' if r['approximate'] else ''}{r['value']:g} {r['unit']}"
                         for r in self.published) or "-"

    def measured_text(self) -> str:
        parts = []
        for p in self.points:
            failed = _failed_text(p.failures)
            if p.n == 0:
                parts.append(f"{p.ref}: " + (f"no valid seed ({failed})" if failed else "not in the ledger"))
                continue
            if p.unit != "dB":  # a `size` claim: counts, not PSNR
                parts.append(f"{p.ref}: {p.mean:,.0f} {p.unit}")
                continue
            ci = f" [{p.low:.3f}, {p.high:.3f}]" if math.isfinite(p.low) else ""
            pub = f" (published {'~' if p.published['approximate'] else ''}{p.published['value']:g} " \
                  f"{p.published['unit']})" if p.published else ""
            extra = f", {failed} excluded" if failed else ""
            parts.append(f"{p.ref}: {p.mean:.3f} dB{ci}, {self._n(p.n)}{extra}{pub}")
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
                "unit": self.unit, "per_seed": " ".join(f"{v:+.4f}" for v in self.per_seed),
                "p_value": self.p_value, "p_adjusted": self.p_adjusted, "gates": "; ".join(self.gates),
                "needs": self.needs, "stage": self.stage, "tested": self.tested, "untested": self.untested, "evidence": self.evidence,
                "measured": self.measured_text(), "published": self.published_text(),
                "text": self.text, "source": self.source, "reason": self.reason, "method": self.method,
                "profile": self.profile, "scale": self.scale, "scale_note": self.scale_note}


def _failed_text(failures: Mapping[Any, str]) -> str:
    counts = {k: sum(1 for v in failures.values() if v == k) for k in FAILURES}
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n)


def _finite(v: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _mean(values: Sequence[float]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def evaluate_claims(claims: Sequence[Claim], per_seed: PerSeed, sweep_values: Mapping[str, Any], *,
                    published_map: Mapping[str, str] | None = None, scale: str = "", profile: str = "default",
                    failures: Mapping[str, Mapping[Any, str]] | None = None,
                    gains: Mapping[str, Mapping[Any, float]] | None = None, alpha: float = ALPHA,
                    level: str = "", sizes: Mapping[str, Mapping[str, float]] | None = None,
                    replicate: str = "seed", published_weights: bool = False) -> list[Verdict]:
    """Each claim's :class:`Verdict` from per-seed PSNR of the valid seeds (label -> seed -> PSNR) and the labels'
    sweep values. ``failures``: each label's failed seeds (label -> seed -> ``degenerate`` | ``diverged``; never in
    ``per_seed``); ``gains``: each label's last-third validation gain per seed (the under-trained gate).
    ``published_map``: a study's ``published:`` (a :class:`~.published_map.PublishedMap`, or point -> row id).
    ``alpha``: the one-sided level a verdict's Holm-adjusted p must stay below (a sequential study's look gets less
    than 2.5%), ``level`` its description. ``sizes``: each label's counts (kind ``size``). ``replicate``:
    ``seed``, or ``image`` when ``per_seed`` is keyed by test image (:data:`~.stats.IMAGE_METHOD`: no pooled
    sd floor). ``published_weights``: every point is a published checkpoint (the verdicts are at paper scale)."""
    failures = {k: dict(v) for k, v in (failures or {}).items() if v}
    gains = gains or {}
    pub_map = load_published_map(published_map or {})
    labels_all = list(dict.fromkeys([*per_seed, *failures]))
    points = [(lab, sweep_values.get(lab)) for lab in labels_all]
    pub_by_label = pub_map.by_label(points)
    every_point = tuple(sorted(per_seed))
    images = replicate == "image"
    sd_floor = 0.0 if images else pooled_paired_sd(per_seed)[0]
    out: list[Verdict] = []
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
            vals = list(per_seed.get(lab, {}).values()) if lab else []
            mean, lo, hi, n = t_interval(vals) if lab else (math.nan,) * 3 + (0,)
            unit = "dB"
            if claim.reads == "sizes" and lab:  # the point's count, not its PSNR
                count = (sizes or {}).get(lab, {}).get(claim.metric_key)
                mean, lo, hi, n = (count, math.nan, math.nan, 1) if count is not None else (math.nan,) * 3 + (0,)
                unit = claim.unit_name
            gain = _mean([gains.get(lab, {}).get(s) for s in per_seed.get(lab, {})]) if lab else None
            stats.append(PointStat(ref.text, lab, mean, lo, hi, n, pub_by_label.get(lab) if lab else None,
                                   {str(k): v for k, v in failures.get(lab, {}).items()} if lab else {}, gain,
                                   unit))
        base = dict(claim_id=claim.id, text=claim.text, source=claim.source, kind=claim.kind, rule=claim.rule,
                    scale=scale, profile=profile, points=stats, published=[r.as_dict() for r in claim.published],
                    tested=claim.tested, untested=claim.untested, evidence=claim.evidence, replicate=replicate,
                    published_weights=published_weights)
        if missing:
            why = ", ".join(sorted(set(missing)))
            out.append(Verdict(**base, verdict="inconclusive", estimate=math.nan, low=math.nan, high=math.nan,
                               n_seeds=0, method=METHOD, reason=f"no complete trial of point {why} in the ledger "
                                                                "(not run yet, or not in this profile's sweep)"))
            continue
        d = claim.decide(Measured(per_seed, labels, sweep_values, every_point, sd_floor, failures, sizes or {}))
        if images:  # the same rules, paired over the test images
            d = replace(d, reason=d.reason.replace(" seeds shared by", " test images shared by"),
                        method=IMAGE_METHOD if d.method == METHOD else d.method)
        gates = _failure_gates(claim, stats)
        d, undertrained = _undertrained_gate(claim, d, stats)
        gates += undertrained
        out.append(_verdict(base, d, gates))
    return _study_correction(out, alpha, level)


def _verdict(base: dict[str, Any], d: Decision, gates: list[str]) -> Verdict:
    head = d.head
    n = min((c.n for c in d.comparisons), default=0)
    return Verdict(**base, verdict=d.verdict, estimate=head.estimate if head else math.nan,
                   low=head.low if head else math.nan, high=head.high if head else math.nan, n_seeds=n,
                   method=d.method, reason=d.reason, comparisons=list(d.comparisons),
                   unit=head.unit if head else d.comparisons[0].unit if d.comparisons else "dB",
                   p_value=d.p_value, gates=gates,
                   per_seed=list(head.values) if head else [])


def _failure_gates(claim: Claim, stats: Sequence[PointStat]) -> list[str]:
    """A line per point with failed seeds (excluded from its mean) -- data, not a gate, for a ``failures`` claim."""
    if claim.kind == "failures":
        return []
    return [f"{p.ref}: {_failed_text(p.failures)} seed{'s' if len(p.failures) != 1 else ''} excluded (failures of "
            "that design)" for p in stats if p.failures]


def _undertrained_gate(claim: Claim, d: Decision, stats: Sequence[PointStat]) -> tuple[Decision, list[str]]:
    """A decided claim with an under-trained point becomes *inconclusive: under-trained*."""
    if claim.kind == "failures" or claim.reads == "sizes":  # counts do not change with training
        return d, []
    diffs = [abs(c.estimate) for c in d.comparisons if c.unit == "dB" and math.isfinite(c.estimate)]
    tested = max([claim.margin, *diffs])
    gate = max(UNDERTRAINED_DB, tested / 4)
    rising = [p for p in stats if p.gain is not None and p.gain > gate]
    if not rising:
        return d, []
    text = ", ".join(f"{p.ref} +{p.gain:.2f} dB" for p in rising)
    note = (f"under-trained: still rising over the last third of training ({text}; gate {gate:.2f} dB = max(0.05, "
            f"a quarter of the {tested:.2f} dB tested)): more steps, not more seeds, would decide it")
    if d.verdict == "inconclusive":
        return d, [note]
    return replace(d, verdict="inconclusive", reason=f"under-trained (it would read {d.verdict} otherwise)"), [note]


def _study_correction(verdicts: list[Verdict], alpha: float = ALPHA, level: str = "") -> list[Verdict]:
    """Holm over the study's tested claims at ``alpha``; a verdict no longer significant becomes inconclusive. Then
    what would decide each undecided claim."""
    adjusted = holm([v.p_value for v in verdicts])
    m = sum(1 for p in adjusted if math.isfinite(p))
    at = f" at {level or f'the level {alpha:.3g}'}" if alpha != ALPHA or level else ""
    out = []
    for v, p_adj in zip(verdicts, adjusted):
        v = replace(v, p_adjusted=p_adj)
        if v.verdict in ("holds", "contradicted") and math.isfinite(p_adj) and p_adj >= alpha:
            v = replace(v, verdict="inconclusive",
                        reason=f"would read {v.verdict} alone (p={v.p_value:.3g}) but not after Holm's correction "
                               f"over the study's {m} tested claims{at} (adjusted p={p_adj:.3g})")
        if v.verdict == "inconclusive" and not any(g.startswith("under-trained") for g in v.gates):
            v = replace(v, **_advice(v))
        out.append(v)
    return out


def more_seeds_help(v: Verdict) -> bool:
    """Whether adding seeds can decide this claim: not when it is decided, under-trained (more steps would),
    missing a point, or untestable at CPU scale."""
    return (v.verdict == "inconclusive" and v.n_seeds > 0 and v.replicate == "seed"
            and not v.needs.startswith("untestable at CPU scale")
            and not any(g.startswith("under-trained") for g in v.gates))


def power_advice(v: Verdict) -> str:
    """What an 80%-power design needs for this claim at the paired sd it showed (floored), decided or not -- for
    ``archsearch run --plan`` after an earlier run: the seeds a replication or a larger study should plan."""
    if v.n_seeds < 2 or not v.comparisons:
        return "no earlier result with 2 shared seeds to size it from"
    advice = _advice(v, every=True)
    return advice.get("needs") or "no number of seeds decides it (no difference to detect)"


def _advice(v: Verdict, every: bool = False) -> dict[str, Any]:
    """An undecided claim's 80%-power seed count over its open comparisons (``every``: all of them), or why none
    helps."""
    open_ = [c for c in v.comparisons if every or c.outcome != "holds"]
    if not open_ or v.n_seeds < 2:
        return {}
    need: list[int] = []
    for c in open_:
        n, feasible = needed_seeds(c)
        if n is None:
            sd = f" at this paired sd ({c.sd:.3f} dB)" if math.isfinite(c.sd) else ""
            where = "on these test images" if v.replicate == "image" else "at CPU scale"
            return {"needs": f"untestable {where}: {c.name} needs more than {MAX_ADVISED_SEEDS} "
                             f"{v.replicate}s{sd}"}
        if not feasible:
            return {"seeds_needed": n, "needs": f"untestable at this profile: needs ≥ {n} {v.replicate}s (an "
                                                f"interval inside the margins cannot come from {c.n})"}
        need.append(n)
    n = max(need)
    return {"seeds_needed": n, "needs": f"an 80%-power design needs about {n} {v.replicate}s"}


def _unique(refs: Sequence[PointRef]) -> list[PointRef]:
    seen, out = set(), []
    for r in refs:
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out
