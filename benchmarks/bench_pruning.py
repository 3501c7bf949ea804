"""Pruning, replayed on a finished grid: how much of the grid's training would each pruner have spent, and is the
design it picks the grid's best -- or statistically indistinguishable from it?

Why a replay: every pruner decides from validation PSNR at intermediate steps, and a trial's training is
deterministic given its design and seed, so a pruned trial's curve is the grid trial's curve cut at the step it
was stopped. Replaying the grid's recorded curves (``val_curve`` of each design point and seed) through each rule
gives what a one-worker run with that pruner does (up to the last bits of the validation numbers: a lockstep run
trains on all cores, the grid may have run single-thread workers), for the cost of reading a ledger, on a problem
where the full answer is known.

Methods, in the grid's order (design points one after another, their seeds one after another):

* ``grid`` -- every point, every seed, every step;
* ``sh`` / ``hyperband`` / ``median`` -- Optuna's SuccessiveHalvingPruner (the asynchronous variant: ASHA, the
  algorithm Ray Tune's ASHA runs too), HyperbandPruner and MedianPruner as archsearch configures them
  (``search.pruner``; reduction factor 3, first rung at the first validation), each seed trial pruned on its own
  validation value (a sweep's seeds are separate trials);
* ``paired`` -- archsearch's paired-seed rule (``pruning:``; ``archsearch/study/pruning.py``): a design point's
  seeds in lockstep, stopped together at a rung when their paired differences with the rung's leader say worse
  by more than the noise (one-sided 95% bound below 0).

Per method: the fraction of the grid's training steps it spent (a pruned trial costs the step it was stopped at),
the design it picks (the best mean test PSNR over the seeds that finished), and that pick against the grid's
best with a paired 95% t interval over the seeds of their *grid* test PSNRs: "the grid's best", "indistinguishable"
(the interval holds 0) or "worse". The goal (issue 20): the grid's best or one indistinguishable from it for at
most 35% of the grid's steps. The fidelity diagnostics (``archsearch/report/fidelity.py``) are printed first:
they say from which step a ranking can be trusted on this problem.

A **search** (``studies/compact_denoiser.yaml --profile pruning_bench``: NSGA-II, every trial trained to the end on
3 seeds) is replayed the same way, its trials in the order the sampler proposed them; the proposals are held fixed
(a real pruned search's sampler would see the pruned trials and may propose others -- NSGA-II ignores pruned
trials, TPE reads their last values). The paired rule runs in design lockstep only (a search proposes trials one
after another). With a second objective (parameters), a **Pareto section** follows: the grid's front on (mean test
PSNR up, parameters down), the paired rule with the size objective (a design is compared only with designs no
larger than it: the MOASHA idea), and Optuna's pruners on PSNR alone (they cannot prune a multi-objective study:
what a user gets by dropping the size objective to prune). Each method's front is scored by coverage: a grid front
point is covered when a finished design no larger than it is its equal or better, or indistinguishable from it
(paired 95% interval over the seeds holds 0).

    python benchmarks/bench_pruning.py studies/xunit_budget.yaml [--profile default] [--seeds 3] [--rungs 500 1000]
        [--tolerance 0 0.1]
    python benchmarks/bench_pruning.py studies/compact_denoiser.yaml --profile pruning_bench
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archsearch.claims.stats import sample_sd, t_quantile  # noqa: E402
from archsearch.study import load_study  # noqa: E402
from archsearch.study.pruning import RungEntry, rung_decision  # noqa: E402

GOAL = 0.35


def grid_runs(df, seeds: list[int]) -> tuple[list[str], dict[str, dict[int, tuple[dict[int, float], float]]],
                                            dict[str, int]]:
    """The grid's design points in queue order; per point and seed (of ``seeds``) its validation curve
    {step: PSNR} and its test PSNR, from the ledger frame ``df`` (the fidelity diagnostics' reader); per point its
    parameter count."""
    from archsearch.report.fidelity import seed_curves

    order: list[str] = []
    runs: dict[str, dict[int, tuple[dict[int, float], float]]] = {}
    for label, seed, curve, psnr in seed_curves(df, degenerate=True):  # every seed the grid trained
        if seed not in seeds:
            continue
        if label not in runs:
            order.append(label)
        runs.setdefault(label, {})[seed] = (curve, psnr)
    incomplete = [p for p in order if len(runs[p]) < len(seeds)]
    if incomplete:
        raise SystemExit(f"points without a finished run of all {len(seeds)} seeds: {incomplete}")
    sizes = {label: int(n) for label, n in zip(df["label"], df["n_params"]) if label in runs and n == n}
    return order, runs, sizes


def seed_seconds(df, order) -> dict[str, float]:
    """Per design point: its training seconds per seed (a trial's ``train_time_s`` over its seeds; a sweep's seed
    trials averaged) -- the weights of the time-weighted fraction (a CSCNet step costs 10x an xNet's)."""
    out: dict[str, list[float]] = {}
    for _, r in df.iterrows():
        t, label = r.get("train_time_s"), r.get("label")
        if label in order and isinstance(t, (int, float)) and t == t and r.get("state") == "COMPLETE":
            seeds = r.get("seeds")
            out.setdefault(label, []).append(t / (len(seeds) if isinstance(seeds, list) and seeds else 1))
    return {p: sum(v) / len(v) for p, v in out.items()}


def fractions(spent, order, runs, steps: int, seconds: dict[str, float]) -> tuple[float, float]:
    """The share of the grid's training steps a method spent, and of its training time (each step weighted by
    its design's seconds per step; nan when a design's time is unknown)."""
    total = sum(steps for p in order for _ in runs[p])
    used = sum(v for p in spent.values() for v in p.values()) / total
    if any(p not in seconds for p in order):
        return used, math.nan
    grid = sum(seconds[p] * len(runs[p]) for p in order)
    return used, sum(seconds[p] * v / steps for p in order for v in spent[p].values()) / grid


def compare(runs, pick: str, best: str) -> tuple[float, float, float, str]:
    """The pick minus the grid's best, paired over seeds (grid test PSNR): mean, 95% interval, verdict."""
    seeds = sorted(runs[best])
    d = [runs[pick][s][1] - runs[best][s][1] for s in seeds]
    mean = sum(d) / len(d)
    if pick == best:
        return 0.0, 0.0, 0.0, "the grid's best"
    half = t_quantile(0.975, len(d) - 1) * sample_sd(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half, "indistinguishable" if mean + half >= 0 else "worse"


def replay_optuna(kind: str, order, runs, steps: int, every: int, search: bool = False
                  ) -> tuple[dict[str, dict[int, int]], list[str]]:
    """Each seed trial through Optuna's pruner, one after another: {point: {seed: steps spent}}, and notes. In a
    ``search`` a trial trains its seeds one after another and reports its first seed's values (Optuna keeps one
    curve per trial): a trial pruned at step s spent s steps of its first seed and nothing of the others."""
    import optuna

    if kind == "sh":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=every, reduction_factor=3)
    elif kind == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=every, max_resource=steps, reduction_factor=3)
    else:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    ostudy = optuna.create_study(study_name=f"replay-{kind}", direction="maximize", pruner=pruner,
                                 sampler=optuna.samplers.RandomSampler(0))  # Hyperband's brackets hash the name
    spent: dict[str, dict[int, int]] = {}
    notes = []
    for point in order:
        seeds = sorted(runs[point].items())
        if search:  # one trial: its first seed's curve; its value, the seeds' mean test PSNR
            (first, (curve, _)), *rest = seeds
            stopped = _optuna_trial(ostudy, curve, steps, sum(p for _, p in runs[point].values()) / len(seeds))
            spent[point] = ({s: steps for s, _ in seeds} if stopped is None
                            else {first: stopped, **{s: 0 for s, _ in rest}})
            if stopped is not None:
                notes.append(f"{point} at {stopped}")
            continue
        for seed, (curve, psnr) in seeds:
            stopped = _optuna_trial(ostudy, curve, steps, psnr)
            spent.setdefault(point, {})[seed] = steps if stopped is None else stopped
            if stopped is not None:
                notes.append(f"{point} seed {seed} at {stopped}")
    return spent, notes


def _optuna_trial(ostudy, curve: dict[int, float], steps: int, value: float) -> int | None:
    """One Optuna trial fed ``curve``: the step its pruner stopped it at (told PRUNED), or None (told ``value``)."""
    import optuna

    trial = ostudy.ask()
    for step in sorted(curve):
        trial.report(curve[step], step)
        if step < steps and trial.should_prune():
            ostudy.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return step
    ostudy.tell(trial, value)
    return None


def replay_paired(order, runs, steps: int, rungs, alpha: float, tolerance: float,
                  sizes: dict[str, int] | None = None) -> tuple[dict[str, dict[int, int]], list[str]]:
    """The paired-seed rule, design point by design point, the seeds in lockstep; with ``sizes``, the
    multi-objective form (a design is compared only with designs no larger than it)."""
    reached: dict[int, list[RungEntry]] = {r: [] for r in rungs}
    spent: dict[str, dict[int, int]] = {}
    notes = []
    for point in order:
        seeds = sorted(runs[point])
        stop = None
        for r in rungs:
            me = RungEntry(point, {s: runs[point][s][0][r] for s in seeds},
                           costs=(sizes[point],) if sizes is not None else ())
            decision = rung_decision(me, reached[r], r, alpha=alpha, tolerance=tolerance)
            reached[r].append(me)
            if decision.stop:
                stop = r
                notes.append(f"{point} at {r} ({decision.diff:+.3f} dB vs {decision.leader})")
                break
        spent[point] = {s: stop or steps for s in seeds}
    return spent, notes


def replay_paired_sync(order, runs, steps: int, rungs, alpha: float, tolerance: float) -> tuple[dict[str, dict[int, int]], list[str]]:
    """The paired-seed rule with every design point in lockstep (``pruning: {lockstep: study}``): all surviving
    points train to a rung, then each is compared with the rung's leader."""
    alive = list(order)
    spent: dict[str, dict[int, int]] = {p: {s: steps for s in runs[p]} for p in order}
    notes = []
    for r in rungs:
        entries = [RungEntry(p, {s: runs[p][s][0][r] for s in runs[p]}) for p in alive]
        stops = [(e, rung_decision(e, entries, r, alpha=alpha, tolerance=tolerance)) for e in entries]
        for e, d in stops:
            if d.stop:
                alive.remove(e.key)
                spent[e.key] = {s: r for s in runs[e.key]}
                notes.append(f"{e.key} at {r} ({d.diff:+.3f} dB vs {d.leader})")
    return spent, notes


def pareto_front(points, means: dict[str, float], sizes: dict[str, int]) -> list[str]:
    """The points no other point beats on both mean test PSNR (up) and parameters (down), smallest first."""
    front = [p for p in points if not any(
        means[q] >= means[p] and sizes[q] <= sizes[p] and (means[q], -sizes[q]) != (means[p], -sizes[p])
        for q in points)]
    return sorted(front, key=lambda p: sizes[p])


def coverage(spent, order, runs, steps: int, sizes: dict[str, int], front: list[str]) -> tuple[int, list[str]]:
    """How many of the grid's front points a method's finished designs cover (a finished design no larger than
    the point, equal or better, or indistinguishable from it on paired seeds), and the uncovered ones."""
    finished = [p for p in order if all(v == steps for v in spent[p].values())]
    missed = []
    for p in front:
        if not any(sizes[q] <= sizes[p] and (q == p or compare(runs, q, p)[3] != "worse") for q in finished):
            missed.append(p)
    return len(front) - len(missed), missed


def summary(name: str, spent, order, runs, steps: int, best: str, seconds: dict[str, float]) -> str:
    fraction, timed = fractions(spent, order, runs, steps, seconds)
    finished = {p: [s for s, v in spent[p].items() if v == steps] for p in order}
    means = {p: sum(runs[p][s][1] for s in ss) / len(ss) for p, ss in finished.items() if ss}
    pick = max(means, key=means.get)
    mean, low, high, verdict = compare(runs, pick, best)
    goal = "meets the goal" if fraction <= GOAL and verdict != "worse" else "misses the goal"
    return (f"{name:24s} {fraction:6.1%} {timed:6.1%}  {pick:28s} {mean:+.3f} [{low:+.3f}, {high:+.3f}]  "
            f"{verdict:17s} {goal}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--profile", default=None)
    ap.add_argument("--output-dir", default=None)
    ap.add_argument("--seeds", type=int, default=3, help="the first N seeds of the grid (default 3)")
    ap.add_argument("--rungs", type=int, nargs="*", default=None, help="the paired rule's rungs (default: the "
                    "study's pruning rungs, else the validation steps from a third of the schedule on)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--tolerance", type=float, nargs="+", default=[0.0, 0.1],
                    help="the paired rule's tolerances to replay, dB (default 0 and 0.1)")
    args = ap.parse_args(argv)

    from archsearch.report.fidelity import fidelity_ranks
    from archsearch.study.results import ledger_frame

    study = load_study(args.study, profile=args.profile, output_dir=args.output_dir)
    df = ledger_frame(study)
    order, runs, sizes = grid_runs(df, list(study.config.seeds)[:args.seeds])
    search = study.config.search
    steps = study.train.steps
    vals = sorted(next(iter(runs[order[0]].values()))[0])
    every = vals[0]
    fid = fidelity_ranks(df)
    if args.rungs:
        rungs, why = args.rungs, "given"
    elif study.config.pruning and study.config.pruning.rungs:
        rungs, why = list(study.config.pruning.rungs), "the study's pruning rungs"
    elif fid is not None and fid.rungs():
        rungs = list(fid.rungs())
        why = f"the validation steps from {fid.reliable_from}, where the diagnostics say the ranking holds"
    else:
        rungs, why = [s for s in vals if steps / 3 <= s < steps], "the validation steps from a third of the run"
    means = {p: sum(v[1] for v in runs[p].values()) / len(runs[p]) for p in order}
    seconds = seed_seconds(df, order)
    best = max(means, key=means.get)

    what = (f"{search.sampler} search, {len(order)} distinct designs proposed" if search is not None
            else f"{len(order)} design points")
    print(f"{study.name}: {what} x {args.seeds} seeds, {steps:,} steps, validation at "
          f"{', '.join(map(str, vals))}; grid's best {best} ({means[best]:.3f} dB test PSNR, mean of seeds)")
    if fid is not None:
        ranks = ", ".join(f"{r.step}: {r.rho:.2f}" for r in fid.steps)
        print(f"ranking fidelity (pooled Spearman rho, validation at step vs final test): {ranks}; "
              f"{'reliable from step ' + str(fid.reliable_from) if fid.reliable_from else 'never reliable (rho >= 0.9 at every later step)'}")
    print(f"\n{'method':24s} {'steps':>6s} {'time':>6s}  {'picked':28s} {'pick - best (95% CI), dB':26s} "
          f"{'verdict':17s} goal (<= {GOAL:.0%} of the grid's steps)")
    print(f"{'grid':24s} {1:6.1%} {1:6.1%}  {best:28s} {0:+.3f}                  the grid's best")
    spent_by: dict[str, dict[str, dict[int, int]]] = {}  # method -> what it spent, for the Pareto section too
    for kind in ("sh", "hyperband", "median"):
        spent_by[kind], _notes = replay_optuna(kind, order, runs, steps, every, search=search is not None)
        print(summary(kind, spent_by[kind], order, runs, steps, best, seconds))
    stopped = []
    modes = (("design", replay_paired),) if search is not None else (
        ("design", replay_paired), ("study", replay_paired_sync))  # a search proposes one trial at a time
    for tol in args.tolerance:
        for mode, replay in modes:
            name = f"paired {mode} tol {tol:g}"
            spent_by[name], notes = replay(order, runs, steps, rungs, args.alpha, tol)
            print(summary(name, spent_by[name], order, runs, steps, best, seconds))
            stopped.append((f"paired, lockstep {mode}, tolerance {tol:g} dB", notes))
    print(f"\nthe paired rule (rungs {rungs}: {why}; alpha {args.alpha}) stopped:")
    for name, notes in stopped:
        print(f"  {name}: {'; '.join(notes) if notes else 'nothing'}")
    if search is not None and "params" in search.objectives and len(sizes) == len(order):
        pareto(order, runs, steps, sizes, means, rungs, args, seconds, spent_by)


def pareto(order, runs, steps: int, sizes, means, rungs, args, seconds, spent_by) -> None:
    """The multi-objective section: each method's coverage of the grid's (PSNR, parameters) front -- the
    single-objective replays of ``spent_by`` (a search's: Optuna's pruners and the paired rule in design lockstep,
    on PSNR alone) beside the paired rule with the size objective."""
    front = pareto_front(order, means, sizes)
    print(f"\nPareto front of the grid (mean test PSNR up, parameters down), {len(front)} of {len(order)} designs:")
    for p in front:
        print(f"  {sizes[p]:>8,} params  {means[p]:7.3f} dB  {p}")
    print(f"\n{'method':24s} {'steps':>6s} {'time':>6s}  front covered (by a finished design no larger: equal, "
          "better or indistinguishable)")
    print(f"{'grid':24s} {1:6.1%} {1:6.1%}  {len(front)}/{len(front)}")
    rows = [(f"{k} (PSNR only)", spent_by[k]) for k in ("sh", "hyperband", "median")]
    for tol in args.tolerance:
        rows.append((f"paired PSNR only tol {tol:g}", spent_by[f"paired design tol {tol:g}"]))
        rows.append((f"paired Pareto tol {tol:g}", replay_paired(order, runs, steps, rungs, args.alpha, tol,
                                                                 sizes)[0]))
    for name, spent in rows:
        fraction, timed = fractions(spent, order, runs, steps, seconds)
        covered, missed = coverage(spent, order, runs, steps, sizes, front)
        goal = "meets the goal" if fraction <= GOAL and not missed else "misses the goal"
        print(f"{name:24s} {fraction:6.1%} {timed:6.1%}  {covered}/{len(front)}  {goal}"
              + (f"; lost: {', '.join(f'{m} ({sizes[m]:,})' for m in missed)}" if missed else ""))

if __name__ == "__main__":
    main()
