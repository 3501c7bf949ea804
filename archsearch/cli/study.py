"""``archsearch run`` and ``archsearch status``.

``run`` exits 0 when every planned trial is complete, 5 when it finished with some trials failed (diverged or
raised), 4 when every trial failed, 3 when trials are left (queued, interrupted or failed for an infrastructure
reason: re-run to resume), 2 on bad input (one line, nothing written; a corrupt ledger included), 1 when the
environment failed (a read-only folder, a full disk: one line; a trial cut short by it is recorded as failed with
a reason starting ``infrastructure:``, run again on resume) and 130 on Ctrl-C.

``--fresh`` on a study whose own ledger (the default ``ledger.db``) is not a readable database moves it aside as
``ledger.db.corrupt-<UTC time>`` and says so; a ledger at a ``storage:`` URL is never moved or deleted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..claims.verdicts import UNDERTRAINED_DB
from ..report.stages import run_in_stages, stage_costs, stage_text
from ..report.verdicts import earlier_run_advice
from ..study.ledger import open_study
from ..study.plan import plan_study
from ..study.results import is_finite, ledger_frame
from ..study.runner import MARKER
from ..study.storage import set_aside, sqlite_path, unreadable
from ..study.validity import DEGENERATE_MARGIN_DB
from .args import add_study_args, load_study_args, non_negative_int, workers_arg


def cmd_run(args: argparse.Namespace) -> int:
    study = load_study_args(args)
    if args.plan:  # what would run, how big, how long -- nothing trained, nothing written
        print(plan_study(study, timed_steps=args.plan_steps, workers=args.workers).text())
        advice = earlier_run_advice(study)  # the seeds each claim needs, from an earlier run's ledger (read only)
        if advice:
            print(advice)
        return 0
    if args.fresh:
        _set_aside_corrupt(study)
    summary = run_in_stages(study, executor=args.executor, workers=args.workers, fresh=args.fresh)
    dups = f", {summary.duplicates} proposals answered from earlier trials" if summary.duplicates else ""
    counts = (f"{summary.complete} complete, {summary.failed} failed, {summary.pruned} pruned, "
              f"{summary.infeasible} grid points off the budget{dups}")
    if summary.status == "complete":
        print(f"done in {summary.wall_time_s:.0f} s: {counts}")
    elif summary.status == "partial":
        print(f"finished in {summary.wall_time_s:.0f} s with failed trials ({counts}); see "
              f"`archsearch status {args.study}` for their reasons")
    elif summary.status == "failed":
        print(f"failed in {summary.wall_time_s:.0f} s: every trial failed ({counts}); see "
              f"`archsearch status {args.study}`")
    else:
        print(f"incomplete after {summary.wall_time_s:.0f} s: {summary.left} planned trials not finished "
              f"({counts}); re-run the same command to resume")
    written = summary.outputs
    for key in ("results", "summary", "claims_csv", "plot"):
        if key in written.paths:
            print(f"  {written.paths[key]}")
    s = written.summary  # the table summary.csv holds, as the outputs step computed it (not read back)
    if not s.empty:
        cols = ["label", "n_seeds", "n_params", "activation_param_pct", "psnr_mean", "psnr_std",
                "val_gain_last_third"]
        degenerate = s["n_degenerate"] if "n_degenerate" in s else None
        if degenerate is not None and (degenerate > 0).any():  # shown only where a seed failed the gate
            cols.insert(2, "n_degenerate")
        if "weights" in s and (s["weights"] == "published").any():  # published checkpoints, not trained
            cols.insert(1, "weights")
        view = s[[c for c in cols if c in s]].copy()
        for col in ("n_seeds", "n_params", "n_degenerate"):  # integers, even where a failed trial's NaN made a float
            if col in view:
                view[col] = view[col].astype("Int64")
        view = view.rename(columns={
            "activation_param_pct": "act %", "psnr_mean": "PSNR mean", "psnr_std": "PSNR std",
            "val_gain_last_third": "last-third gain", "n_degenerate": "degenerate"})
        print(view.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3f}"))
        if degenerate is not None and (degenerate > 0).any():
            print(f"note: {int(degenerate.sum())} seed(s) scored within {DEGENERATE_MARGIN_DB} dB of the trivial "
                  f"baseline ({_baseline_text(written.results)}) or below it: degenerate, not in the means")
        gains = s.get("val_gain_last_third")
        if gains is not None and (gains > UNDERTRAINED_DB).any():
            worst = s.loc[gains.idxmax()]
            print(f"note: validation PSNR still rose by up to {worst['val_gain_last_third']:.3f} dB over the last "
                  f"third of training ({worst['label']}); those models are under-trained at this schedule")
    if summary.complete:
        for v in summary.verdicts:
            print(v.line())
        staged = stage_text(stage_costs(study, written.results))
        if staged:
            print(f"sequential seeding: {staged}")
    return summary.exit_code


def _set_aside_corrupt(study) -> None:
    """``--fresh`` starts over, so a study's own ledger that is not a readable database is moved aside (kept, in
    case it can be salvaged) instead of failing the run. Only the default ledger of a folder archsearch made."""
    path = sqlite_path(study.storage_url)
    if study.config.storage is not None or path is None or not (Path(study.output_dir) / MARKER).exists():
        return
    reason = unreadable(path)
    if reason:
        moved = set_aside(path)
        print(f"--fresh: {path} was not a readable ledger ({reason}); moved it aside as {moved.name}")


def _baseline_text(df) -> str:
    """``noisy input 20.168 dB`` from the trials' stored baseline (the same for every trial of a ledger)."""
    if df is None or "baseline_psnr" not in df:
        return "not recorded"
    rows = df[df["baseline_psnr"].notna()]
    if rows.empty:
        return "not recorded"
    r = rows.iloc[0]
    name = r.get("baseline") if isinstance(r.get("baseline"), str) else "baseline"
    draws = r.get("test_draws")
    per = f", {int(draws)} noise draws per image" if is_finite(draws) and draws > 1 else ""
    return f"{name} {float(r['baseline_psnr']):.3f} dB{per}"


def cmd_status(args: argparse.Namespace) -> int:
    study = load_study_args(args)
    ostudy = open_study(study, create=False, any_config=args.any_config)
    df = ledger_frame(study, ostudy)
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
        return 0
    counts = df["state"].value_counts().to_dict()
    print(f"study {study.name} ({study.storage_display}): " + ", ".join(f"{v} {k.lower()}" for k, v in counts.items()))
    if df.empty:
        print("no trials yet")
        return 0
    if df["baseline_psnr"].notna().any():
        print(f"trivial baseline on the test images: {_baseline_text(df)}; a trial within {DEGENERATE_MARGIN_DB} dB "
              "of it or below is DEGENERATE (never averaged in)")
    cols = ["number", "state", "label", "seed", "n_params", "activation_param_pct", "psnr", "wall_time_s",
            "fail_reason"]
    if df["validity"].isin(["partly degenerate"]).any():  # a multi-seed trial with some degenerate seeds
        cols.insert(2, "validity")
    if df["published_weights"].notna().any():  # published checkpoints: evaluated, never trained
        df = df.assign(weights=["published" if isinstance(w, str) else "trained" for w in df["published_weights"]])
        cols.insert(3, "weights")
    view = df[cols].copy()
    for col in ("number", "seed", "n_params"):  # integers, even where a missing value made the column float
        view[col] = view[col].astype("Int64")
    view["fail_reason"] = view["fail_reason"].fillna("").astype(str).str.slice(0, 60)
    view = view.rename(columns={"activation_param_pct": "act %", "wall_time_s": "wall s"})
    print(view.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    return 0


def add_subcommands(sub) -> None:
    p = sub.add_parser("run", help="run or resume a study (sweep or search)",
                       description="Run a study file; re-running the same command resumes it.")
    add_study_args(p)
    p.add_argument("--executor", choices=("local", "ray"), help="override the study's executor")
    p.add_argument("--workers", type=workers_arg,
                   help="worker processes (local) or concurrent trials (ray): auto (the machine decides; default "
                        "unless the study sets executor.workers) or an integer >= 1")
    p.add_argument("--fresh", action="store_true", help="delete this study's ledger and outputs first")
    p.add_argument("--plan", action="store_true",
                   help="print the planned trials, their sizes and an estimated wall time on this machine (from a few "
                        "timed steps per design on random tensors); train and write nothing")
    p.add_argument("--plan-steps", type=non_negative_int, default=3, metavar="N",
                   help="with --plan: timed steps per design (default 3; 0: sizes only, no estimate)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="table of a study's trials and their state")
    add_study_args(p, reader=True)
    p.add_argument("--format", choices=("table", "csv"), default="table")
    p.set_defaults(func=cmd_status)
