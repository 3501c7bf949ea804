"""Run a study and report its wall time and the framework's overhead per trial.

Overhead = everything in a trial outside the training and evaluation steps: solving the budget, writing the
spec, building the model, the ledger writes, saving the checkpoint. It is measured from the ledger: the trial's
Optuna wall time (start to completion) minus its training and evaluation time.

    python benchmarks/bench_study.py studies/xunit_budget.yaml [--profile NAME] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from archsearch.study import ledger as L
from archsearch.study.runner import run_study
from archsearch.study.schema import load_study


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("--profile")
    ap.add_argument("--output-dir", default="runs/bench_study")
    ap.add_argument("--workers", type=int)
    args = ap.parse_args()
    torch.set_num_threads(2)
    study = load_study(args.study, args.profile, args.output_dir)
    t0 = time.perf_counter()
    summary = run_study(study, fresh=True, workers=args.workers, progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0
    trials = [t for t in L.open_study(study, create=False).get_trials() if t.state.name == "COMPLETE"]
    rows = []
    for t in trials:
        total = (t.datetime_complete - t.datetime_start).total_seconds()
        work = t.user_attrs["train_time_s"] + t.user_attrs["eval_time_s"]
        rows.append((t.number, t.user_attrs.get("label", ""), total, work, total - work))
    print(f"study {study.name} (profile {study.profile}): {summary.complete} complete, {summary.failed} failed, "
          f"{summary.infeasible} off budget; wall time {wall:.1f} s on {torch.get_num_threads()} threads")
    print(f"{'trial':>5} {'label':<28} {'trial s':>8} {'train+eval s':>13} {'overhead s':>11} {'overhead %':>10}")
    for n, label, total, work, over in rows:
        print(f"{n:>5} {label:<28} {total:>8.2f} {work:>13.2f} {over:>11.3f} {100 * over / total:>9.2f}%")
    if rows:
        fr = [100 * r[4] / r[2] for r in rows]
        print(f"overhead per trial: median {statistics.median(fr):.2f}%, max {max(fr):.2f}% "
              f"(target <= 3%); total {sum(r[4] for r in rows):.2f} s of {sum(r[2] for r in rows):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
