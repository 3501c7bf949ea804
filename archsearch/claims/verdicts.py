"""Claims decided from per-seed PSNR: :func:`evaluate_claims` (per-seed data in, :class:`Verdict` s out) and the
verdict rules in words (:data:`RULES`). Nothing here reads a ledger or a file; the ledger glue is
:mod:`archsearch.report.verdicts`.

**Method** (:mod:`.stats`): paired differences over the seeds both points share, Student's t 95% interval.
Fewer than 2 shared seeds give no interval: the claim is *inconclusive* ("needs ≥ 2 seeds").

**Verdicts** -- *holds*, *contradicted*, or *inconclusive* (at this power: more seeds may decide it), by each
kind's rule (:mod:`.kinds`). Composite claims: *contradicted* when any comparison is contradicted, else
*inconclusive* when any comparison lacks 2 shared seeds or is undecided, else *holds*. Each interval is a 95%
interval with no correction for the number of comparisons ("holds" needs all of them, which needs none; a
"contradicted" among m comparisons has a false-alarm chance up to m x 2.5%). A claim whose point has no complete
trial in the ledger (not run yet, not in this profile's sweep, off the budget) is inconclusive and names the point.

**Scale.** A verdict at any profile but ``paper`` is about a CPU-scale proxy: the published numbers are shown
for reference, never as what was reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .claim import CLAIM_KINDS, Claim, Measured
from .points import PointRef, resolve
from .published_map import load_published_map
from .stats import METHOD, OUTCOMES, Comparison, PerSeed, t_interval

PROXY_NOTE = "CPU-scale proxy; published numbers shown for reference"
PAPER_NOTE = "paper scale: measured numbers compared with the published ones"
VERDICTS = OUTCOMES
INCONCLUSIVE_RULE = ("otherwise, or with fewer than 2 seeds shared by the points compared, or a point missing "
                     "from the ledger")


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
    """A point named by the claim: its measured mean PSNR ± 95% interval over seeds, and any published row."""

    ref: str
    label: str | None
    mean: float
    low: float
    high: float
    n: int
    published: dict[str, Any] | None = None


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


def evaluate_claims(claims: Sequence[Claim], per_seed: PerSeed, sweep_values: Mapping[str, Any], *,
                    published_map: Mapping[str, str] | None = None, scale: str = "", profile: str = "default"
                    ) -> list[Verdict]:
    """Each claim's :class:`Verdict` from per-seed PSNR (label -> seed -> PSNR) and the labels' sweep values.
    ``published_map``: a study's ``published:`` (a :class:`~.published_map.PublishedMap`, or point -> row id)."""
    pub_map = load_published_map(published_map or {})
    points = [(lab, sweep_values.get(lab)) for lab in per_seed]
    pub_by_label = pub_map.by_label(points)
    every_point = tuple(sorted(per_seed))
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
        base = dict(claim_id=claim.id, text=claim.text, source=claim.source, kind=claim.kind, rule=claim.rule,
                    scale=scale, profile=profile, points=stats, published=[r.as_dict() for r in claim.published])
        if missing:
            why = ", ".join(sorted(set(missing)))
            out.append(Verdict(**base, verdict="inconclusive", estimate=math.nan, low=math.nan, high=math.nan,
                               n_seeds=0, method=METHOD, reason=f"no complete trial of point {why} in the ledger "
                                                                "(not run yet, or not in this profile's sweep)"))
            continue
        d = claim.decide(Measured(per_seed, labels, sweep_values, every_point))
        head = d.head
        n = min((c.n for c in d.comparisons), default=0)
        out.append(Verdict(**base, verdict=d.verdict, estimate=head.estimate if head else math.nan,
                           low=head.low if head else math.nan, high=head.high if head else math.nan, n_seeds=n,
                           method=d.method, reason=d.reason, comparisons=list(d.comparisons),
                           unit=head.unit if head else "dB"))
    return out


def _unique(refs: Sequence[PointRef]) -> list[PointRef]:
    seen, out = set(), []
    for r in refs:
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out
