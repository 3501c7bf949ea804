"""A study's claims (``claims:``) decided from its ledger: the ledger's COMPLETE trials as per-seed PSNR
(:func:`ledger_points`), handed to :func:`archsearch.claims.evaluate_claims` (the method and the rules are
documented there), and the verdicts written as ``claims.csv`` and ``claims.json``."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_open, write_text
from ..claims import METHOD, RULES, Verdict, evaluate_claims
from ..study.ledger import open_study
from ..study.results import ledger_frame, seed_frame
from ..text import json_text


def ledger_points(df) -> tuple[dict[str, dict[Any, float]], dict[str, Any]]:
    """Per-seed PSNR (label -> seed -> PSNR) of the COMPLETE trials, and each label's sweep value."""
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


def study_verdicts(study, ostudy=None, df=None) -> list[Verdict]:
    """The verdicts of ``study``'s claims from its ledger (``df``: :func:`~archsearch.study.results.ledger_frame`,
    read when not given)."""
    if not study.config.claims:
        return []

    if df is None:
        ostudy = ostudy or open_study(study, create=False)
        df = ledger_frame(study, ostudy)
    scale = str((ostudy.user_attrs.get("fidelity") if ostudy is not None else None) or study.config.fidelity
                or "fidelity not stated in the study file")
    per_seed, values = ledger_points(df)
    return evaluate_claims(study.config.claims, per_seed, values, published_map=study.config.published,
                           scale=scale, profile=study.profile)


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
