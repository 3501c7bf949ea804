"""Running a study: plan, resume, execute (local or Ray), write the results table and plot.

Output folder (``runs/<study>`` unless the study sets ``output_dir``)::

    ledger.db            the Optuna study (SQLite) -- unless `storage` names another database
    specs/<hash>.yaml    the spec of every architecture trained
    checkpoints/         trial_<n>.safetensors, the trained weights of each finished trial
    logs/                trial_<n>.txt, the traceback of a trial that raised
    results.csv          one row per trial (and per infeasible grid point), from the ledger
    summary.csv          one row per design point: mean and spread over seeds
    psnr_vs_activation.png / psnr_vs_params.png   the plain plot of the study's main curve

Resume: re-running the same command continues the study. Finished trials are kept; trials left RUNNING by a dead
worker are marked FAIL (reason ``interrupted``) and their configuration is queued again; grid points are keyed
(``design|args|seed``) and queued once.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchsearchError, BudgetError, SpecError
from . import ledger as L
from .schema import Study, load_study
from .trial import (
    TrialFailed,
    TrialPruned,
    execute,
    failure_log,
    plan_sweep,
    worker_identity,
)


@dataclass
class RunSummary:
    total: int
    complete: int
    failed: int
    pruned: int
    infeasible: int
    wall_time_s: float
    output_dir: Path


# ---------------------------------------------------------------------------------------------------------
# locks
# ---------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _file_lock(path: Path, *, blocking: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise ArchsearchError(f"study output {path.parent} is in use by a running `archsearch run` ({owner}); "
                                  "wait for it, or add workers with --workers") from None
        if not blocking:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _claim_lock(study: Study):
    # Serialises "is anything left? -> ask()" between local workers so none creates a stray trial.
    return _file_lock(Path(study.output_dir) / ".claim.lock")


# ---------------------------------------------------------------------------------------------------------
# samplers, pruners
# ---------------------------------------------------------------------------------------------------------
def _sampler(study: Study, seed: int = 0):
    import optuna

    s = study.config.search
    if s is None or s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, s.n_trials // 2)))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, s.n_trials // 3)))


def _pruner(study: Study):
    import optuna

    s = study.config.search
    steps = int(dict(study.config.training).get("steps", 1000))
    if s is None or s.pruner == "none":
        return optuna.pruners.NopPruner()
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if s.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(steps, 2))


# ---------------------------------------------------------------------------------------------------------
# one trial inside Optuna's ask/tell
# ---------------------------------------------------------------------------------------------------------
def _distributions(points) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    values: dict[str, set] = {}
    for p in points:
        for k, v in p.params.items():
            values.setdefault(k, set()).add(v)
    return {k: CategoricalDistribution(sorted(v, key=lambda x: (str(type(x)), x))) for k, v in values.items()}


def _run_claimed(study: Study, ostudy, trial, design: str, args: dict[str, Any], seeds: list[int], *,
                 prune: bool, progress: bool, extra_report=None) -> None:
    """Run a claimed trial, record its attributes and tell Optuna how it ended (never raises but Ctrl-C)."""
    from optuna.trial import TrialState

    for k, v in worker_identity().items():
        trial.set_user_attr(k, v)

    def on_spec(attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            trial.set_user_attr(k, v)

    multi = len(L.directions(study)) > 1
    curve: list[list[float]] = []

    def report(step: int, val_psnr: float) -> None:
        if val_psnr is None or not math.isfinite(val_psnr):
            return
        curve.append([int(step), float(val_psnr)])
        if not multi:  # Optuna keeps intermediate values for single-objective studies only
            trial.report(float(val_psnr), int(step))
        if extra_report:
            extra_report(step, val_psnr)
        if prune and trial.should_prune():
            raise TrialPruned(f"pruned at step {step} (validation PSNR {val_psnr:.3f} dB)")

    try:
        results = []
        for i, seed in enumerate(seeds):
            attrs = execute(study, design, args, seed, report=report if i == 0 else None,
                            trial_number=trial.number if len(seeds) == 1 else None, progress=progress,
                            on_spec=on_spec if i == 0 else None)
            results.append(attrs)
        attrs = dict(results[0])
        if len(results) > 1:  # a search trial trains every seed; its value is the mean
            attrs["psnr_per_seed"] = [r["psnr"] for r in results]
            attrs["psnr"] = sum(attrs["psnr_per_seed"]) / len(results)
            attrs["ssim"] = sum(r["ssim"] for r in results) / len(results)
            attrs["wall_time_s"] = sum(r["wall_time_s"] for r in results)
            attrs["checkpoints"] = [r["checkpoint"] for r in results]
        attrs["val_curve"] = curve
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        values: list[float] = [attrs["psnr"]]
        if study.config.search is not None:
            for obj in study.config.search.objectives[1:]:
                values.append(float(attrs["n_params"] if obj == "params" else attrs["macs_per_pixel"]))
        ostudy.tell(trial, values if len(values) > 1 else values[0])
    except TrialPruned as err:
        trial.set_user_attr("fail_reason", str(err))
        ostudy.tell(trial, state=TrialState.PRUNED)
    except TrialFailed as err:
        trial.set_user_attr("fail_reason", err.reason)
        ostudy.tell(trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", L.INTERRUPTED)
        ostudy.tell(trial, state=TrialState.FAIL)
        fixed = trial.user_attrs.get("point_params") or trial.params
        ostudy.enqueue_trial(fixed, user_attrs={k: v for k, v in trial.user_attrs.items()
                                                if k in ("point", "point_params", "label", "sweep_value")})
        raise
    except Exception as err:  # one trial's bug never ends the study
        trial.set_user_attr("fail_reason", failure_log(study, trial.number, err))
        ostudy.tell(trial, state=TrialState.FAIL)


def claim_and_run(study: Study, ostudy, dists, *, progress: bool = False, extra_report=None) -> bool:
    """Claim one queued grid point and run it; False when nothing is left."""
    from optuna.trial import TrialState

    with _claim_lock(study):
        if not ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return False
        trial = ostudy.ask()
    fixed = trial.user_attrs.get("point_params")  # set when the point was queued
    if not fixed:  # another machine took the last point between our check and ask()
        trial.set_user_attr("fail_reason", "no grid point left to claim (concurrent worker)")
        ostudy.tell(trial, state=TrialState.FAIL)
        return False
    params = {k: trial.suggest_categorical(k, dists[k].choices) for k in fixed}
    args = {k: v for k, v in params.items() if k not in ("design", "seed")}
    _run_claimed(study, ostudy, trial, params["design"], args, [params["seed"]], prune=False,
                 progress=progress, extra_report=extra_report)
    return True


def _sweep_worker(study: Study, *, progress: bool = False, on_done=None) -> None:
    ostudy = L.open_study(study, create=False)
    dists = _distributions(plan_sweep(study)[0])
    while claim_and_run(study, ostudy, dists, progress=progress):
        if on_done:
            on_done()


def suggest_search(study: Study, trial) -> tuple[str, dict[str, Any]]:
    """Define-by-run: the design and its searched arguments for one search trial."""
    designs = study.space.designs
    name = trial.suggest_categorical("design", [d.name for d in designs]) if len(designs) > 1 else designs[0].name
    design = study.space.design(name)
    args: dict[str, Any] = {}
    for key, rng in design.search.items():
        pname = f"{name}.{key}" if len(designs) > 1 else key  # conditional params keep their own distribution
        if rng.choices is not None:
            args[key] = trial.suggest_categorical(pname, list(rng.choices))
        elif rng.is_int:
            args[key] = trial.suggest_int(pname, int(rng.low), int(rng.high), step=int(rng.step or 1), log=rng.log)
        else:
            args[key] = trial.suggest_float(pname, rng.low, rng.high, step=rng.step, log=rng.log)
    return name, args


def _search_worker(study: Study, *, progress: bool = False, on_done=None) -> None:
    from optuna.trial import TrialState

    ostudy = L.open_study(study, create=False, sampler=_sampler(study, seed=os.getpid() % 10_000),
                          pruner=_pruner(study))
    n_trials = study.config.search.n_trials  # type: ignore[union-attr]
    prune = study.config.search.pruner != "none"  # type: ignore[union-attr]
    while True:
        with _claim_lock(study):
            trials = ostudy.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            used = sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                       or (t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") != L.INTERRUPTED))
            if not waiting and used >= n_trials:
                return
            trial = ostudy.ask()
        design, args = suggest_search(study, trial)
        _run_claimed(study, ostudy, trial, design, args, list(study.config.seeds), prune=prune, progress=progress)
        if on_done:
            on_done()


def _worker_entry(path: str, profile: str, output_dir: str, kind: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    study = load_study(path, profile, output_dir)  # the parent's output folder, which --output-dir may set
    (_sweep_worker if kind == "sweep" else _search_worker)(study)


# ---------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------
def prepare(study: Study, *, fresh: bool = False) -> tuple[Any, int, list[dict[str, Any]]]:
    """Open (or create) the ledger, recover stale trials, queue what is missing.

    Returns the Optuna study, the number of trials the study plans in all, and the infeasible points.
    """
    if fresh:
        L.delete_study(study)
        for sub in ("checkpoints", "specs", "logs"):
            shutil.rmtree(Path(study.output_dir) / sub, ignore_errors=True)
        for f in ("results.csv", "summary.csv", "psnr_vs_activation.png", "psnr_vs_params.png"):
            (Path(study.output_dir) / f).unlink(missing_ok=True)
    from optuna.trial import TrialState

    from .trial import _datasets

    _datasets(study)  # missing or unreadable data: a clear error before anything is written
    if study.config.sweep is not None:
        points, infeasible = plan_sweep(study)  # before touching the ledger: bad input writes nothing
        if not points:
            reasons = "; ".join(f"{i['label']}: {i['reason']}" for i in infeasible[:4])
            raise ArchsearchError(f"{study.path}: no grid point of the sweep fits the budget: {reasons}")
        ostudy = L.open_study(study, create=True)
        ostudy.set_user_attr("infeasible", infeasible)
        L.recover_stale(ostudy)
        done_or_queued = set()
        for t in ostudy.get_trials(deepcopy=False):
            key = t.user_attrs.get("point")
            if key is None:
                continue
            if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == L.INTERRUPTED:
                continue
            done_or_queued.add(key)
        for p in points:
            if p.key not in done_or_queued:
                ostudy.enqueue_trial(p.params, user_attrs={"point": p.key, "point_params": p.params,
                                                           "label": p.label, "sweep_value": p.sweep_value})
        return ostudy, len(points), infeasible
    if study.config.budget is not None:  # a budget no design can meet is bad input, not N failed trials
        from .trial import solve_design

        reasons = []
        for design in study.space.designs:
            try:
                solve_design(study, design, {})
                break
            except (BudgetError, SpecError) as err:
                reasons.append(f"{design.name}: {err}")
        else:
            raise ArchsearchError(f"{study.path}: budget: no design of the search space can meet it: "
                                  + "; ".join(reasons))
    ostudy = L.open_study(study, create=True, sampler=_sampler(study), pruner=_pruner(study))
    for t in L.recover_stale(ostudy):
        ostudy.enqueue_trial(t.params)  # a search trial's configuration is its params
    return ostudy, study.config.search.n_trials, []  # type: ignore[union-attr]


def _counts(ostudy) -> dict[str, int]:
    from optuna.trial import TrialState

    out = {"complete": 0, "failed": 0, "pruned": 0, "running": 0, "waiting": 0, "interrupted": 0}
    for t in ostudy.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            out["complete"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
        elif t.user_attrs.get("fail_reason") == L.INTERRUPTED:
            out["interrupted"] += 1
        else:
            out["failed"] += 1
    return out


def run_study(study: Study, *, executor: str | None = None, workers: int | None = None, fresh: bool = False,
              progress: bool | None = None, echo=print) -> RunSummary:
    """Run (or resume) a study to completion; see the module docstring."""
    kind = executor or study.config.executor.kind
    n_workers = workers or study.config.executor.workers
    if n_workers < 1:
        raise ArchsearchError(f"--workers must be >= 1, got {n_workers}")
    progress = sys.stderr.isatty() if progress is None else progress
    out = Path(study.output_dir)
    t0 = time.perf_counter()
    with _file_lock(out / ".run.lock", blocking=False):
        ostudy, total, infeasible = prepare(study, fresh=fresh)
        c = _counts(ostudy)
        finished = c["complete"] + c["failed"] + c["pruned"]
        echo(f"study {study.name}: {total} trials planned, {finished} already finished, "
             f"{len(infeasible)} grid points off the budget; ledger {study.storage_url}")
        if study.config.fidelity:
            echo(f"fidelity: {study.config.fidelity}")
        mode = "sweep" if study.config.sweep is not None else "search"
        if kind == "ray":
            from .ray_executor import run_ray

            run_ray(study, mode=mode, workers=n_workers)
        elif n_workers == 1:
            bar = _bar(total, finished, progress)
            try:
                (_sweep_worker if mode == "sweep" else _search_worker)(
                    study, progress=progress, on_done=lambda: bar.update(1) if bar else None)
            finally:
                if bar:
                    bar.close()
        else:
            _run_processes(study, mode, n_workers, total, finished, progress)
        c = _counts(ostudy)
        write_outputs(study, ostudy)
    return RunSummary(total, c["complete"], c["failed"], c["pruned"], len(infeasible), time.perf_counter() - t0,
                      out)


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="trials", unit="trial", dynamic_ncols=True)


def _run_processes(study: Study, mode: str, n_workers: int, total: int, finished: int, progress: bool) -> None:
    ctx = mp.get_context("spawn")  # fork after torch/sqlite initialisation is unsafe
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    args = (str(study.path), study.profile, str(study.output_dir), mode, threads)
    procs = [ctx.Process(target=_worker_entry, args=args, daemon=False) for _ in range(n_workers)]
    for p in procs:
        p.start()
    bar = _bar(total, finished, progress)
    ostudy = L.open_study(study, create=False)
    try:
        last = finished
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            if bar:
                c = _counts(ostudy)
                now = c["complete"] + c["failed"] + c["pruned"]
                bar.update(max(0, now - last))
                last = now
    finally:
        if bar:
            bar.close()
        for p in procs:
            p.join()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise ArchsearchError(f"{len(bad)} worker process(es) exited with status {bad}; re-run to resume")


# ---------------------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------------------
RESULT_COLUMNS = ["number", "state", "design", "label", "sweep_value", "seed", "n_params", "macs_per_pixel",
                  "activation_param_pct", "psnr", "ssim", "val_psnr", "wall_time_s", "train_time_s", "eval_time_s",
                  "spec_hash", "checkpoint", "fail_reason"]


def results_frame(study: Study, ostudy=None):
    """One row per trial (state from the ledger) plus one per infeasible grid point (state INFEASIBLE)."""
    import pandas as pd

    ostudy = ostudy or L.open_study(study, create=False)
    rows = []
    for t in ostudy.get_trials(deepcopy=False):
        ua = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name, **{c: ua.get(c) for c in RESULT_COLUMNS[2:]},
                     "seed": ua.get("seed", t.params.get("seed"))})
    for inf in ostudy.user_attrs.get("infeasible", []) or []:
        rows.append({"number": None, "state": "INFEASIBLE", "design": inf.get("design"), "label": inf.get("label"),
                     "sweep_value": inf.get("sweep_value"), "fail_reason": inf.get("reason")})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def summary_frame(df):
    """Mean and spread (sample std) of PSNR/SSIM over seeds, one row per design point."""
    done = df[df["state"] == "COMPLETE"]
    if done.empty:
        return done
    g = done.groupby(["label", "design"], dropna=False)
    s = g.agg(n_seeds=("psnr", "size"), psnr_mean=("psnr", "mean"), psnr_std=("psnr", "std"),
              ssim_mean=("ssim", "mean"), n_params=("n_params", "first"),
              macs_per_pixel=("macs_per_pixel", "first"), activation_param_pct=("activation_param_pct", "first"),
              sweep_value=("sweep_value", "first")).reset_index()
    return s.sort_values("activation_param_pct")


def write_outputs(study: Study, ostudy=None) -> dict[str, Path]:
    """``results.csv``, ``summary.csv`` and the study's main curve as a PNG -- drawn by the report's figure
    functions (:mod:`archsearch.report`), so the plain plot and the report show the same thing."""
    from ..report import design_points, fig_activation_share, fig_vs_size, ledger_frame, to_png

    out = Path(study.output_dir)
    df = ledger_frame(study, ostudy)
    paths = {"results": out / "results.csv", "summary": out / "summary.csv"}
    df[RESULT_COLUMNS].to_csv(paths["results"], index=False)
    summary_frame(df).to_csv(paths["summary"], index=False)
    points = design_points(df)
    fig = fig_activation_share(points, study.config.fidelity) if study.config.sweep is not None else None
    fig = fig or fig_vs_size(points, "n_params", study.config.fidelity)
    if fig is not None:
        paths["plot"] = to_png(fig, out / f"{fig.key}.png")
    return paths
