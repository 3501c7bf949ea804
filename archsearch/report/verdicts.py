"""A study's claims (``claims:``) decided from its ledger: the ledger's trials as per-seed PSNR of the valid seeds,
failed seeds and last-third validation gains (:func:`ledger_points`), handed to
:func:`archsearch.claims.evaluate_claims` (the method, the gates and the rules are documented there), and the
verdicts written as ``claims.csv`` and ``claims.json``."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..atomic import atomic_open, write_text
from ..claims import METHOD, RULES, Verdict, evaluate_claims
from ..claims.stats import paired_differences, pooled_sd, stage_levels
from ..claims.verdicts import power_advice
from ..errors import ArchsearchError
from ..evaluate import rows_by_image
from ..study.ledger import open_study
from ..study.results import ledger_frame, seed_frame
from ..text import json_text


@dataclass(frozen=True)
class LedgerPoints:
    """What the claims are decided from, read from the ledger once: per-seed PSNR of the valid seeds (label ->
    seed -> PSNR), each label's sweep value, its failed seeds (label -> seed -> ``degenerate`` | ``diverged``) and
    its per-seed last-third validation gain (label -> seed -> dB)."""

    per_seed: dict[str, dict[Any, float]] = field(default_factory=dict)
    sweep_values: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, dict[Any, str]] = field(default_factory=dict)
    gains: dict[str, dict[Any, float]] = field(default_factory=dict)
    sizes: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> n_params, macs_per_pixel


def _seed(v: Any) -> Any:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() else v


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _image_means(rows) -> dict[str, float]:
    """A seed's per-image rows ``[image, draw, psnr, ssim]`` as image -> PSNR averaged over the (finite) draws."""
    out = {}
    for name, pairs in rows_by_image(rows).items():
        psnrs = [p for p in (_number(p) for p, _ in pairs) if p is not None]
        if psnrs:
            out[name] = sum(psnrs) / len(psnrs)
    return out


def ledger_points(df, replicates: str = "seeds") -> LedgerPoints:
    """The claims' data from the ledger frame: the COMPLETE trials' seeds (a seed whose ``validity`` is
    ``degenerate`` counts as a failure, never as a PSNR) and the FAIL trials whose model diverged (a failure of the
    design; errors of the code or the machine are not). With ``replicates="images"`` (a study's ``replicates:
    images``) the replicates are the test images of the study's one seed: label -> image -> PSNR (mean over the
    draws), each image carrying its seed's last-third gain."""
    out = LedgerPoints()
    if df is None or df.empty:
        return out
    seeds = seed_frame(df)
    for _, r in seeds.iterrows():
        label = r["label"]
        if not isinstance(label, str):
            continue
        seed = _seed(r["seed"])
        v = r.get("sweep_value")
        out.sweep_values[label] = None if isinstance(v, float) and math.isnan(v) else v
        sizes = {k: _number(r.get(k)) for k in ("n_params", "macs_per_pixel")}
        out.sizes.setdefault(label, {k: x for k, x in sizes.items() if x is not None})
        if r.get("validity") == "degenerate":
            out.failures.setdefault(label, {})[seed] = "degenerate"
            continue
        p = _number(r["psnr"])
        if p is None:
            continue
        gain = _number(r.get("val_gain_last_third"))
        images = _image_means(r.get("per_image")) if replicates == "images" else {seed: p}
        for key, value in images.items():
            out.per_seed.setdefault(label, {})[key] = value
            if gain is not None:
                out.gains.setdefault(label, {})[key] = gain
    failed = df[(df["state"] == "FAIL") & df["fail_reason"].astype(str).str.startswith("diverged")]
    for _, r in failed.iterrows():
        if isinstance(r["label"], str) and r["seed"] is not None:
            out.failures.setdefault(r["label"], {})[_seed(r["seed"])] = "diverged"
            v = r.get("sweep_value")
            out.sweep_values.setdefault(r["label"], None if isinstance(v, float) and math.isnan(v) else v)
    return out


def study_verdicts(study, ostudy=None, df=None) -> list[Verdict]:
    """The verdicts of ``study``'s claims from its ledger (``df``: :func:`~archsearch.study.results.ledger_frame`,
    read when not given). A sequential study (``sequential:``) is decided look by look (:func:`staged_verdicts`)."""
    if not study.config.claims:
        return []

    if df is None:
        ostudy = ostudy or open_study(study, create=False)
        df = ledger_frame(study, ostudy)
    scale = str((ostudy.user_attrs.get("fidelity") if ostudy is not None else None) or study.config.fidelity
                or "fidelity not stated in the study file")
    pts = ledger_points(df, study.config.replicates)
    if study.config.sequential is not None:
        return staged_verdicts(study, pts, scale)
    return _evaluate(study, pts, scale)


@dataclass(frozen=True)
class SeedNoise:
    """A study's seed noise as its verdicts use it: the pooled paired sd over every pair of design points sharing
    at least 2 seeds (the floor of every comparison's sd), its degrees of freedom and the number of pairs."""

    sd: float
    dof: int
    pairs: int

    def sentence(self) -> str:
        """The reproduction page's form."""
        return (f"Pooled paired sd: {self.sd:.3f} dB ({self.dof} df over {self.pairs} pairs of points; every "
                "comparison's sd floor).")

    def text(self) -> str:
        return (f"seed noise: pooled paired sd {self.sd:.4f} dB ({self.dof} df over {self.pairs} pairs of design "
                "points sharing >= 2 seeds; a claim's sd is floored at it; benchmarks/bench_seed_noise.py measures "
                "what lowers it)")


def seed_noise(df, replicates: str = "seeds") -> SeedNoise | None:
    """The study's :class:`SeedNoise` from its ledger frame; None where the replicates are images or no two design
    points share 2 seeds."""
    if replicates != "seeds":
        return None
    diffs = paired_differences(ledger_points(df).per_seed)
    sd, dof = pooled_sd(diffs)
    return SeedNoise(sd, dof, len(diffs)) if dof else None


def _evaluate(study, pts: LedgerPoints, scale: str, **kw) -> list[Verdict]:
    return evaluate_claims(study.config.claims, pts.per_seed, pts.sweep_values, published_map=study.config.published,
                           scale=scale, profile=study.profile, failures=pts.failures, gains=pts.gains,
                           sizes=pts.sizes, replicate=study.config.replicates.removesuffix("s"),
                           published_weights=study.space.all_published, **kw)


def _only_seeds(pts: LedgerPoints, seeds: set) -> LedgerPoints:
    def keep(m):
        out = {lab: {s: v for s, v in d.items() if s in seeds} for lab, d in m.items()}
        return {lab: d for lab, d in out.items() if d}

    return LedgerPoints(keep(pts.per_seed), dict(pts.sweep_values), keep(pts.failures), keep(pts.gains),
                        dict(pts.sizes))


def stages_reached(study, pts: LedgerPoints) -> int:
    """How many of a sequential study's stages the ledger completes: every point measured (or failed) on each of
    the stage's seeds."""
    seq = study.config.sequential
    labels = set(pts.per_seed) | set(pts.failures)
    have = {lab: set(pts.per_seed.get(lab, {})) | set(pts.failures.get(lab, {})) for lab in labels}
    reached = 0
    for n in seq.stages:
        need = set(study.config.seeds[:n])
        if not labels or not all(need <= h for h in have.values()):
            break
        reached += 1
    return reached


def staged_verdicts(study, pts: LedgerPoints, scale: str) -> list[Verdict]:
    """Sequential seeding: each completed look k decides claims on the first ``stages[k]`` seeds at its spending
    level; a claim keeps the verdict of the first look that decided it (it is not tested again), the others the
    last look's. Before the first look is complete, the seeds there are are read at the first look's level."""
    seq = study.config.sequential
    levels = stage_levels(seq.stages, seq.spending)
    reached = stages_reached(study, pts)
    total = len(seq.stages)
    decided: dict[str, Verdict] = {}
    last: list[Verdict] = []
    for k in range(max(reached, 1)):
        n = seq.stages[k]
        complete = k < reached
        level = (f"stage {k + 1} of {total} ({n} seeds; {seq.spending} spending: level {levels[k]:.3g})"
                 if complete else f"stage 1 of {total} not complete ({seq.spending} spending: level {levels[0]:.3g})")
        sub = _only_seeds(pts, set(study.config.seeds[:n])) if complete else pts
        last = [replace(v, stage=level if v.verdict == "inconclusive" else f"decided at {level}")
                for v in _evaluate(study, sub, scale, alpha=levels[k], level=level)]
        for v in last:
            if v.claim_id not in decided and v.verdict != "inconclusive":
                decided[v.claim_id] = v
    return [decided.get(v.claim_id, v) for v in last]


def earlier_run_advice(study) -> str:
    """For ``archsearch run --plan``: per claim, the seeds an 80%-power design needs at the paired sd the study's
    existing ledger shows (read as it is, whatever settings wrote it: the point is to plan the next run), or ""
    when there is no ledger or no claim. Reads only."""
    if not study.config.claims:
        return ""
    try:
        ostudy = open_study(study, create=False, any_config=True)
    except ArchsearchError:  # no ledger yet (or unreadable): nothing to size from
        return ""
    verdicts = study_verdicts(study, ostudy)
    if not any(v.n_seeds for v in verdicts):
        return ""
    lines = [f"Seeds for 80% power, sized from the earlier run in {study.storage_display} (each claim's paired sd "
             "as measured, floored at the study's pooled paired sd; one-sided 2.5% tests, before Holm across the "
             "study):"]
    for v in verdicts:
        lines.append(f"  {v.claim_id}: {v.verdict} at {v.n_seeds} shared seeds; {power_advice(v)}")
    return "\n".join(lines)


def write_verdicts(verdicts: Sequence[Verdict], out_dir) -> list:
    """``claims.csv`` (one row per claim) and ``claims.json`` (everything, with the comparisons) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [v.row() for v in verdicts]
    csv_path, json_path = out / "claims.csv", out / "claims.json"
    with atomic_open(csv_path, "w", newline="", encoding="utf-8") as fh:
        cols = list(rows[0]) if rows else ["claim", "verdict"]
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    write_text(json_path, json_text({"method": METHOD, "rules": dict(RULES),
                                     "claims": [v.as_dict() for v in verdicts]}, indent=2, ensure_ascii=False))
    return [csv_path, json_path]
