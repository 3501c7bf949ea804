"""Run a study and report its wall time and the framework's overhead per trial; or compare its wall time run
the old way (one worker of two threads, fp32 NCHW) with the new defaults, in one run.

Overhead = everything in a trial outside the training and evaluation steps: solving the budget, writing the
spec, building the model, the ledger writes, saving the checkpoint. It is measured from the ledger: the trial's
Optuna wall time (start to completion) minus its training and evaluation time.

    python benchmarks/bench_study.py studies/xunit_budget.yaml [--profile NAME] [--output-dir DIR]
    python benchmarks/bench_study.py studies/xunit_budget.yaml --compare-old   # old way vs defaults

``--compare-old`` runs the profile twice into ``DIR/old`` and ``DIR/new``, one after the other on the same
machine: **old**, as archsearch trained before the throughput work -- one worker process using every core,
``channels_last: false`` (contiguous NCHW), fp32; **new**, the defaults (``executor.workers: auto``,
``channels_last: auto``). It prints both wall times, their ratio, and checks that both ran the same trials
(design points and seeds) and how far their test PSNRs differ (float rounding of the layouts and thread counts).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

from archsearch.study import Study, load_study
from archsearch.study import ledger as L
from archsearch.study.runner import run_study


def complete_trials(study: Study) -> list:
    return [t for t in L.open_study(study, create=False).get_trials() if t.state.name == "COMPLETE"]


def report_overhead(study: Study, summary, wall: float) -> None:
    rows = []
    for t in complete_trials(study):
        total = (t.datetime_complete - t.datetime_start).total_seconds()
        work = t.user_attrs["train_time_s"] + t.user_attrs["eval_time_s"]
        rows.append((t.number, t.user_attrs.get("label", ""), total, work, total - work))
    print(f"study {study.name} (profile {study.profile}): {summary.complete} complete, {summary.failed} failed, "
          f"{summary.infeasible} off budget; wall time {wall:.1f} s")
    print(f"{'trial':>5} {'label':<28} {'trial s':>8} {'train+eval s':>13} {'overhead s':>11} {'overhead %':>10}")
    for n, label, total, work, over in rows:
        print(f"{n:>5} {label:<28} {total:>8.2f} {work:>13.2f} {over:>11.3f} {100 * over / total:>9.2f}%")
    if rows:
        fr = [100 * r[4] / r[2] for r in rows]
        print(f"overhead per trial: median {statistics.median(fr):.2f}%, max {max(fr):.2f}% "
              f"(target <= 3%); total {sum(r[4] for r in rows):.2f} s of {sum(r[2] for r in rows):.1f} s")


def old_way(path: str, profile: str | None, output_dir: Path) -> Study:
    """The study with ``channels_last: false`` laid under every profile's training (a profile that sets it
    itself keeps its own value)."""
    data = yaml.safe_load(Path(path).read_text())
    space = Path(data["search_space"])  # a mapping's search space is read from the working directory
    data["search_space"] = str(space if space.is_absolute() else (Path(path).parent / space).resolve())
    data["training"] = {**(data.get("training") or {}), "channels_last": False}
    return load_study(data, profile, output_dir)


def compare_old(args) -> int:
    out = Path(args.output_dir)
    ways = {"old": (old_way(args.study, args.profile, out / "old"), 1),
            "new": (load_study(args.study, args.profile, out / "new"), None)}
    walls, results = {}, {}
    for name, (study, workers) in ways.items():
        t0 = time.perf_counter()
        summary = run_study(study, fresh=True, workers=workers, progress=sys.stderr.isatty(),
                            echo=lambda line, name=name: print(f"[{name}] {line}", flush=True))
        walls[name] = time.perf_counter() - t0
        trials = complete_trials(study)
        results[name] = {(t.user_attrs["label"], t.user_attrs["seed"]): t for t in trials}
        settings = {k: sorted({str(t.user_attrs["train_settings"][k]) for t in trials})
                    for k in ("threads", "channels_last", "amp", "compile")}
        print(f"[{name}] {summary.complete} complete, {summary.failed} failed in {walls[name]:.1f} s; trials ran "
              + ", ".join(f"{k} {'/'.join(v)}" for k, v in settings.items()), flush=True)
    old, new = results["old"], results["new"]
    same = old.keys() == new.keys()
    diffs = [abs(new[k].user_attrs["psnr"] - old[k].user_attrs["psnr"]) for k in old if k in new]
    print(f"\nstudy {ways['new'][0].name} (profile {ways['new'][0].profile}), {len(new)} trials")
    threads = {t.user_attrs["train_settings"]["threads"] for t in old.values()}
    print(f"old way (1 worker x {'/'.join(map(str, sorted(threads)))} threads, fp32 NCHW): {walls['old']:.1f} s")
    print(f"new defaults (workers auto, channels_last auto):          {walls['new']:.1f} s")
    print(f"new / old wall time: {walls['new'] / walls['old']:.3f} (target <= 0.50)")
    print(f"same trials (design points x seeds): {'yes' if same else 'NO'}; test PSNR |new - old|: "
          f"max {max(diffs):.4f} dB, median {statistics.median(diffs):.4f} dB over {len(diffs)} trials")
    return 0 if same else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("--profile")
    ap.add_argument("--output-dir", default="runs/bench_study")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--compare-old", action="store_true", help="old way vs the new defaults, in one run")
    args = ap.parse_args()
    if args.compare_old:
        return compare_old(args)
    study = load_study(args.study, args.profile, args.output_dir)
    t0 = time.perf_counter()
    summary = run_study(study, fresh=True, workers=args.workers, progress=sys.stderr.isatty())
    report_overhead(study, summary, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
