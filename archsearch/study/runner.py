"""Running a study: check its data and plan, open the ledger once, resume, execute (local or Ray), then hand the
ledger to the caller's outputs step (:func:`archsearch.report.outputs.write_outputs` for ``archsearch run`` and
:func:`archsearch.run_study`: this package writes the ledger and knows nothing of reports).

Output folder (``runs/<study>`` unless the study sets ``output_dir``)::

    .archsearch          marker: archsearch made this folder (``--fresh`` empties only folders that have it)
    ledger.db            the Optuna study (SQLite) -- unless `storage` names another database
    specs/<hash>.yaml    the spec of every architecture trained
    checkpoints/         trial_<n>.safetensors (trial_<n>_seed<s> for multi-seed search trials)
    logs/                trial_<n>.txt, the traceback of a trial that raised
    results.csv          one row per trial (and per infeasible grid point), from the ledger
    summary.csv          one row per design point: mean and spread over distinct seeds
    psnr_vs_activation.png / psnr_vs_params.png   the plain plot of the study's main curve

Nothing is created before the study file, its search space, the budget and the data have been checked.

Folder and locks: a run adopts only a new or empty folder, or one with archsearch's marker; it takes the folder's
run lock -- and a SQLite ledger's own lock, wherever that file is -- before it deletes (``--fresh``: only what
archsearch wrote) or writes anything.

Resume: re-running the same command continues the study. Finished trials are kept; trials left RUNNING by a dead
worker are marked FAIL (reason ``interrupted``) and, with trials that failed because the machine did (reason
``infrastructure: ...``: disk full, I/O error, out of memory), queued again unless another trial holds their
configuration; grid points are keyed (``design|args|seed``) and queued once. A trial whose model diverged or
raised is final. Searches never train an architecture a finished trial already trained (the proposal is
answered with that trial's result, ``duplicate_of``).

Exit status of ``archsearch run`` (:attr:`RunSummary.exit_code`): 0 every planned trial is complete (a search's
pruned trials count as finished: the pruner decided them); 5 finished, but some planned trials failed (diverged,
raised); 4 every trial failed; 3 incomplete (trials left queued, interrupted or failed for an infrastructure
reason: re-run to resume); 2 bad input; 1 a storage or machine fault; 130 Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..errors import ArchsearchError, BudgetError, SpecError, StorageFault
from ..tracking import check_available
from . import ledger as L
from .checkpoints import check_published
from .config import Study
from .images import check_study_data, study_data
from .layout import WorkerLayout, choose_layout, machine_name, requested_workers, run_device
from .queue import claim_and_run, claim_lock, file_lock, run_and_tell
from .ray_executor import run_ray
from .sampling import (
    MAX_DUPLICATES_IN_A_ROW,
    count_states,
    distributions,
    duplicates_in_a_row,
    is_retryable,
    pruner,
    sampler,
    sampler_seed,
    search_label,
    search_target,
    stored_distributions,
    suggest_search,
    widen_stored,
)
from .storage import sqlite_path
from .sweep import solve_design

MARKER = ".archsearch"
#: What ``--fresh`` removes from a study folder (and nothing else).
OUTPUTS = ("checkpoints", "specs", "logs", "ray", "results.csv", "summary.csv", "psnr_vs_activation.png",
           "psnr_vs_params.png", "report.html", "report_png", "claims.csv", "claims.json")


@dataclass
class RunSummary:
    total: int
    complete: int
    failed: int
    pruned: int
    infeasible: int
    wall_time_s: float
    output_dir: Path
    left: int = 0  # planned trials without a finished trial (queued, or retryable and not yet re-run)
    retryable: int = 0  # FAIL trials whose worker died or whose machine failed: re-queued on resume
    duplicates: int = 0
    outputs: Any = None  # what the caller's outputs step returned (files, tables, claim verdicts), else None

    @property
    def verdicts(self) -> list:
        """The claim verdicts the outputs step computed (none without an outputs step or claims)."""
        return list(getattr(self.outputs, "verdicts", None) or [])

    @property
    def status(self) -> str:
        """``complete``, ``incomplete`` (trials left to run), ``partial`` (some planned trials failed) or
        ``failed`` (every trial failed)."""
        if self.left:
            return "incomplete"
        if self.complete == 0 and self.failed > 0:
            return "failed"
        if self.failed > 0:
            return "partial"
        return "complete"

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "partial": 5, "failed": 4, "incomplete": 3}[self.status]


def _search_loop(study: Study, ostudy, *, progress: bool = False, on_done=None) -> None:
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it

    target = search_target(study)
    while True:
        with claim_lock(study):
            trials = ostudy.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            c = count_states(trials)
            if not waiting and c.finished + c.running >= target:
                return
            if duplicates_in_a_row(trials) >= MAX_DUPLICATES_IN_A_ROW:  # the sampler only repeats itself
                return
            trial = ostudy.ask()
        design, args = suggest_search(study, trial)
        outcome = run_and_tell(study, ostudy, trial, design, args, list(study.config.seeds),
                                label=search_label(design, args), dedupe=True, progress=progress)
        if on_done and "duplicate_of" not in outcome.attrs:
            on_done()


def _sweep_loop(study: Study, ostudy, *, progress: bool = False, on_done=None) -> None:
    dists = distributions(study.plan.points, study.config.seeds, stored_distributions(ostudy))
    while claim_and_run(study, ostudy, dists, progress=progress):
        if on_done:
            on_done()


def _die_with_parent(parent: int) -> None:
    """A worker ends when the `archsearch run` that started it dies (kill -9 included): Linux's parent-death
    signal where available, and a watchdog thread everywhere. Its trial stays RUNNING and is recovered on resume."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_entry(study: Study, mode: str, threads: int, parent: int, index: int) -> None:
    _die_with_parent(parent)
    try:
        import torch  # set before any torch work in this fresh (spawned) process

        from ..allocator import keep_freed_memory

        keep_freed_memory()  # speed only: the spawned worker is a fresh process
        torch.set_num_threads(threads)
        ostudy = L.open_study(study, create=False, sampler=sampler(study, seed=sampler_seed(study) + 1 + index),
                              pruner=pruner(study))
        (_sweep_loop if mode == "sweep" else _search_loop)(study, ostudy)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent prints the one line
        sys.exit(130)
    except ArchsearchError as err:  # e.g. a full disk (StorageFault): one line, and its exit status for the parent
        print(f"archsearch run: worker {index}: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(err.exit_code)


# ---------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------
def check(study: Study) -> tuple[tuple, tuple[dict[str, Any], ...]]:
    """Everything that can be wrong before a study starts, checked without writing anything: the data load and
    fit the task, and the budget is reachable. Returns the sweep's points and infeasible grid points."""
    check_study_data(study, *study_data(study))  # missing, unreadable or too-small images: one line naming the file
    check_published(study)  # published checkpoints: the file there, its digest, its tensors fitting the design
    if study.plan is not None:
        points, infeasible = study.plan.points, study.plan.infeasible
        if not points:
            reasons = "; ".join(f"{i['label']}: {i['reason']}" for i in infeasible[:4])
            raise ArchsearchError(f"{study.path}: budget: no grid point of the sweep fits the budget: {reasons}")
        return points, infeasible
    if study.config.budget is not None:  # a budget no design can meet is bad input, not N failed trials
        reasons = []
        for design in study.space.designs:
            try:
                solve_design(study.config.budget, design, {})
                break
            except (BudgetError, SpecError) as err:
                reasons.append(f"{design.name}: {err}")
        else:
            raise ArchsearchError(f"{study.path}: budget: no design of the search space can meet it: "
                                  + "; ".join(reasons))
    return (), ()


#: What archsearch writes inside its folders: ``--fresh`` deletes files matching these and nothing else (a file a
#: user put into ``logs/`` stays, and so does its folder). Exported models (``export/``) are the user's and stay.
OWN_FILES = {"checkpoints": ("*.safetensors",), "specs": ("*.yaml",), "logs": ("trial_*.txt",),
             "report_png": ("*.png",)}


def _adopt_folder(study: Study, fresh: bool = False) -> None:
    """Make sure the study folder is archsearch's before anything is written into it: a new or empty folder is
    created and adopted; a folder with archsearch's marker is resumed; any other non-empty folder is refused
    (archsearch would mix its files with the user's, and a later ``--fresh`` would delete them). The study's own
    ledger file (a ledger opened before the first run) does not make a folder foreign."""
    out = Path(study.output_dir)
    db = sqlite_path(study.storage_url)
    own = {".run.lock"} | ({db.name, f"{db.name}-journal", f"{db.name}.run.lock", f"{db.name}.lock"}
                           if db is not None and db.parent.resolve() == out.resolve() else set())
    if out.exists() and not (out / MARKER).exists() and any(p.name not in own for p in out.iterdir()):
        raise ArchsearchError(f"{'--fresh: ' if fresh else ''}{out} is not empty and was not created by archsearch "
                              f"(no {MARKER} marker): refusing to write or delete anything in it; give a new or "
                              "empty folder (--output-dir), or move its files away")
    out.mkdir(parents=True, exist_ok=True)


def _clear_outputs(study: Study) -> list[str]:
    """``--fresh``: delete what archsearch wrote in the study folder (:data:`OUTPUTS`, and in its folders only the
    files it names as in :data:`OWN_FILES`), under the run lock; returns what was removed."""
    out = Path(study.output_dir)
    removed = []
    for name in OUTPUTS:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            if name == "ray":  # Ray Tune's own tree, made for this study's runs
                shutil.rmtree(p)
                removed.append(name)
                continue
            for pattern in OWN_FILES.get(name, ()):
                for f in p.glob(pattern):
                    if f.is_file():
                        f.unlink()
            with contextlib.suppress(OSError):  # kept when it holds files archsearch did not write
                p.rmdir()
            removed.append(name)
        elif p.exists() or p.is_symlink():
            p.unlink()
            removed.append(name)
    return removed


@contextlib.contextmanager
def run_lock(study: Study):
    """The locks a run holds: its output folder's, and -- for a SQLite ledger -- the ledger file's, so two runs
    that share one SQLite ledger from two folders cannot both train (the second is refused with one line). A
    server ledger (PostgreSQL, MySQL) is shared by design: its workers claim trials through the database and a
    trial is recovered only when its host says its process is gone."""
    out = Path(study.output_dir)
    with file_lock(out / ".run.lock", blocking=False):
        db = sqlite_path(study.storage_url)
        if db is None:
            yield
            return
        db.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(Path(f"{db}.run.lock"), blocking=False,
                       what=f"the ledger {study.storage_display}"):
            yield


def prepare(study: Study, ostudy, points, infeasible) -> int:
    """Recover dead workers' trials and queue what is missing; return the number of trials the study plans."""
    # a SQLite ledger is held under run_lock: no live worker can run a trial this run did not start
    L.recover_stale(ostudy, owner_only=sqlite_path(study.storage_url) is not None)
    trials = ostudy.get_trials(deepcopy=False)
    if study.config.sweep is not None:
        # seeds added since the ledger was written: widen its stored seed choices first (Optuna refuses new ones)
        widen_stored(ostudy, points, study.config.seeds)
        ostudy.set_user_attr("infeasible", list(infeasible))
        held = {t.user_attrs.get("point") for t in trials if not is_retryable(t)}
        for p in points:
            if p.key not in held:
                ostudy.enqueue_trial(p.params, user_attrs={"point": p.key, "point_params": p.params,
                                                           "label": p.label, "sweep_value": p.sweep_value})
        return len(points)
    held = [dict(t.params) for t in trials if not is_retryable(t)]
    for t in trials:  # a retryable configuration runs again unless another trial holds it
        if is_retryable(t) and t.params and dict(t.params) not in held:
            ostudy.enqueue_trial(dict(t.params))
            held.append(dict(t.params))
    return search_target(study)


def _record_run(ostudy, study: Study, layout: WorkerLayout, started: float, wall: float, kind: str) -> None:
    """Append this run to the ledger's ``runs``: when, how long, where, with which layout (the reproduction page
    reads it)."""
    device = run_device(study)
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    runs = list(ostudy.user_attrs.get("runs") or [])
    runs.append({"started": iso(started), "finished": iso(started + wall), "wall_s": round(wall, 2),
                 "host": socket.gethostname(), "machine": machine_name(), "device": device, "executor": kind,
                 "workers": layout.workers, "threads": layout.threads, "layout": layout.reason,
                 "profile": study.profile})
    ostudy.set_user_attr("runs", runs)


def run_study(study: Study, *, executor: str | None = None, workers: int | str | None = None, fresh: bool = False,
              progress: bool | None = None, echo=print, outputs=None) -> RunSummary:
    """Run (or resume) a study to completion; see the module docstring. Nothing is written when the study, its
    data or its budget is wrong. ``outputs(study, ostudy)``, when given, is called with the ledger at the end of
    the run, still under the run's lock; what it returns is the summary's ``outputs``."""
    kind = executor or study.config.executor.kind
    started = time.time()
    progress = sys.stderr.isatty() if progress is None else progress
    out = Path(study.output_dir)
    t0 = time.perf_counter()
    requested = requested_workers(study, workers)  # a bad --workers or ARCHSEARCH_WORKERS: before any write
    check_available(study.config.tracking)  # tracking asked for, its library missing: one line, nothing written
    points, infeasible = check(study)
    storage = L.server_storage(study)
    _adopt_folder(study, fresh)
    with run_lock(study):  # nothing is deleted before the locks are held
        if fresh:
            _clear_outputs(study)
        (out / MARKER).touch()
        storage = storage or L.storage_for(study)  # opened once for the run
        if fresh:
            L.delete_study(study, storage)
        ostudy = L.open_study(study, create=True, sampler=sampler(study), pruner=pruner(study), storage=storage)
        total = prepare(study, ostudy, points, infeasible)
        c = count_states(ostudy.get_trials(deepcopy=False))
        echo(f"study {study.name}: {total} trials planned, {c.finished} already finished, "
             f"{len(infeasible)} grid points off the budget; ledger {study.storage_display}")
        if study.config.fidelity:
            echo(f"fidelity: {study.config.fidelity}")
        mode = "sweep" if study.config.sweep is not None else "search"
        layout = choose_layout(study, requested, max(0, total - c.finished), kind)
        echo(f"layout: {layout.workers} worker(s) x {layout.threads} thread(s) ({layout.reason})")
        try:
            if kind == "ray":
                run_ray(study, ostudy, mode=mode, workers=layout.workers)
            elif layout.workers == 1:
                _run_in_process(study, ostudy, mode, layout.threads, total, c.finished, progress)
            else:
                _run_processes(study, ostudy, mode, layout, total, c.finished, progress)
        finally:
            with contextlib.suppress(Exception):  # a dead database must not hide the run's own error
                _record_run(ostudy, study, layout, started, time.time() - started, kind)
        trials = ostudy.get_trials(deepcopy=False)
        written = outputs(study, ostudy) if outputs is not None else None
    c = count_states(trials)
    return RunSummary(total, c.complete, c.failed, c.pruned, len(infeasible), time.perf_counter() - t0, out,
                      left=_left(study, trials, points, total), retryable=c.retryable, duplicates=c.duplicates,
                      outputs=written)


def _left(study: Study, trials, points, total: int) -> int:
    """Planned trials that no finished trial answers: a sweep's grid points, a search's target count."""
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL") and not is_retryable(t)]
    if study.config.sweep is not None:
        held = {t.user_attrs.get("point") for t in finished}
        return sum(1 for p in points if p.key not in held)
    return max(0, total - sum(1 for t in finished if t.user_attrs.get("duplicate_of") is None))


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None

    return tqdm(total=total, initial=initial, desc="trials", unit="trial", dynamic_ncols=True)


def _run_in_process(study: Study, ostudy, mode: str, threads: int, total: int, finished: int,
                    progress: bool) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    bar = _bar(total, finished, progress)
    try:
        (_sweep_loop if mode == "sweep" else _search_loop)(
            study, ostudy, progress=progress, on_done=lambda: bar.update(1) if bar else None)
    finally:
        torch.set_num_threads(before)
        if bar:
            bar.close()


def _run_processes(study: Study, ostudy, mode: str, layout: WorkerLayout, total: int, finished: int,
                   progress: bool) -> None:
    ctx = mp.get_context("spawn")  # fork after torch/sqlite initialisation is unsafe
    args = (study, mode, layout.threads, os.getpid())  # the loaded study, pickled: workers neither load nor plan
    procs = [ctx.Process(target=_worker_entry, args=(*args, i), daemon=False) for i in range(layout.workers)]
    for p in procs:
        p.start()
    bar = _bar(total, finished, progress)
    try:
        last = finished
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            if bar:
                now = count_states(ostudy.get_trials(deepcopy=False)).finished
                bar.update(max(0, now - last))
                last = now
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them record their trials as interrupted
        for p in procs:
            p.join(timeout=30)
        raise
    finally:
        if bar:
            bar.close()
        for p in procs:
            p.join()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        why = f"{len(bad)} worker process(es) stopped (status {bad}; the reason is on the line above)"
        if all(code == StorageFault.exit_code for code in bad):
            raise StorageFault(f"{why}: fix the storage or machine fault, then re-run the same command to resume")
        raise ArchsearchError(f"{why}; re-run the same command to resume")
