"""``archsearch run`` and ``archsearch status``."""

from __future__ import annotations

import argparse
import sys


def cmd_run(args: argparse.Namespace) -> int:
    from .study.runner import run_study
    from .study.schema import load_study

    study = load_study(args.study, args.profile, args.output_dir)
    summary = run_study(study, executor=args.executor, workers=args.workers, fresh=args.fresh)
    print(f"done in {summary.wall_time_s:.0f} s: {summary.complete} complete, {summary.failed} failed, "
          f"{summary.pruned} pruned, {summary.infeasible} grid points off the budget")
    for name in ("results.csv", "summary.csv", "psnr_vs_activation.png", "psnr_vs_params.png"):
        path = summary.output_dir / name
        if path.exists():
            print(f"  {path}")
    if (summary.output_dir / "summary.csv").exists():
        import pandas as pd

        s = pd.read_csv(summary.output_dir / "summary.csv")
        if not s.empty:
            cols = ["label", "n_seeds", "n_params", "activation_param_pct", "psnr_mean", "psnr_std"]
            view = s[cols].rename(columns={"activation_param_pct": "act %", "psnr_mean": "PSNR mean",
                                           "psnr_std": "PSNR std"})
            print(view.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .study.runner import results_frame
    from .study.schema import load_study

    study = load_study(args.study, args.profile, args.output_dir)
    df = results_frame(study)
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
        return 0
    counts = df["state"].value_counts().to_dict()
    print(f"study {study.name} ({study.storage_url}): " + ", ".join(f"{v} {k.lower()}" for k, v in counts.items()))
    if df.empty:
        print("no trials yet")
        return 0
    cols = ["number", "state", "label", "seed", "n_params", "activation_param_pct", "psnr", "wall_time_s",
            "fail_reason"]
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
    p.add_argument("study", help="a study file, e.g. studies/xunit_budget.yaml")
    p.add_argument("--executor", choices=("local", "ray"), help="override the study's executor")
    p.add_argument("--workers", type=int, help="worker processes (local) or concurrent trials (ray)")
    p.add_argument("--fresh", action="store_true", help="delete this study's ledger and outputs first")
    p.add_argument("--profile", help="a profile of the study file (e.g. paper)")
    p.add_argument("--output-dir", help="override the output folder (default runs/<study>)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="table of a study's trials and their state")
    p.add_argument("study")
    p.add_argument("--profile")
    p.add_argument("--output-dir")
    p.add_argument("--format", choices=("table", "csv"), default="table")
    p.set_defaults(func=cmd_status)
