"""The trial queue: claiming queued trials and recording their outcomes through Optuna's ask/tell -- used by the
local workers and by the Ray executor's sweep trials alike."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from ..errors import INFRASTRUCTURE, ArchsearchError, StorageFault, infrastructure_reason
from .config import Study
from .trial import Outcome, run_trial


# ---------------------------------------------------------------------------------------------------------
# locks
# ---------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True, what: str | None = None):
    """An exclusive lock on ``path`` for the ``with`` block. Non-blocking: refused with one line naming the holder
    (its pid, written into the file) and ``what`` is locked (default: the study output folder)."""
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            held = what or f"study output {path.parent}"
            raise ArchsearchError(f"{held} is in use by a running `archsearch run` ({owner}); wait for it, add "
                                  "workers to that run with --workers, or give this one its own storage") from None
        if not blocking:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def claim_lock(study: Study):
    # Serialises "is anything left? -> ask()" between local workers so none creates a stray trial.
    return file_lock(Path(study.output_dir) / ".claim.lock")


class OptunaRecorder:
    """:class:`~archsearch.study.trial.Recorder` over an Optuna trial this process asked for."""

    def __init__(self, trial):
        self.trial, self.number = trial, trial.number

    def set_attr(self, key: str, value: Any) -> None:
        self.trial.set_user_attr(key, value)

    def report(self, step: int, value: float) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


def tell(ostudy, trial, outcome: Outcome) -> None:
    """Store an outcome's attributes and finish the trial in its state."""
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it

    for k, v in outcome.attrs.items():
        trial.set_user_attr(k, v)
    if outcome.state == "COMPLETE":
        ostudy.tell(trial, outcome.values if len(outcome.values) > 1 else outcome.values[0])
    else:
        ostudy.tell(trial, state=TrialState[outcome.state])


def run_and_tell(study: Study, ostudy, trial, design: str, args: dict[str, Any], seeds: list[int], *,
                  label: str, dedupe: bool, progress: bool, on_report=None) -> Outcome:
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it

    try:
        outcome = run_trial(study, ostudy, OptunaRecorder(trial), design, args, seeds, label=label, dedupe=dedupe,
                            progress=progress, on_report=on_report)
    except (KeyboardInterrupt, SystemExit):
        ostudy.tell(trial, state=TrialState.FAIL)  # fail_reason is `interrupted`; prepare() re-queues it
        raise
    except OSError as err:  # the disk failed outside the trial's own writes (say, its failure log): never RUNNING
        outcome = Outcome("FAIL", {"fail_reason": infrastructure_reason(err)})
    tell(ostudy, trial, outcome)
    reason = str(outcome.attrs.get("fail_reason") or "")
    if outcome.state == "FAIL" and reason.startswith(INFRASTRUCTURE):  # every next trial would fail the same way
        raise StorageFault(f"trial {trial.number} stopped: {reason[len(INFRASTRUCTURE):]}; it is recorded as "
                           "failed (infrastructure) and runs again on resume: fix the cause (free space, a "
                           "writable folder), then re-run the same command")
    return outcome


def claim_and_run(study: Study, ostudy, dists, *, progress: bool = False) -> bool:
    """Claim one queued grid point and run it; False when nothing is left. With ``pruning``, the point's other
    queued seeds are claimed with it (``lockstep: design``), or every queued trial (``lockstep: study``), and
    they train in lockstep (:func:`run_lockstep_trials`)."""
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it

    pruning = study.config.pruning
    with claim_lock(study):
        waiting = ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            return False
        asked = [ostudy.ask()]
        if pruning is not None:  # a point's seeds are queued one after another, the points in grid order
            label = asked[0].user_attrs.get("label")
            more = len(waiting) - 1 if pruning.lockstep == "study" else \
                sum(1 for t in waiting if t.user_attrs.get("label") == label) - 1
            asked += [ostudy.ask() for _ in range(max(0, more))]
    runs = []
    for trial in asked:
        fixed = trial.user_attrs.get("point_params")  # set when the point was queued
        if not fixed:  # another machine took the last point between our check and ask()
            trial.set_user_attr("fail_reason", "no grid point left to claim (concurrent worker)")
            ostudy.tell(trial, state=TrialState.FAIL)
            continue
        runs.append((trial, {k: trial.suggest_categorical(k, dists[k].choices) for k in fixed}))
    if not runs:
        return False
    if pruning is None:
        (trial, params), = runs
        run_and_tell(study, ostudy, trial, params["design"], _arguments(params), [params["seed"]],
                     label=trial.user_attrs.get("label"), dedupe=False, progress=progress)
        return True
    run_lockstep_trials(study, ostudy, runs, progress=progress)
    return True


def _arguments(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("design", "seed")}


def run_lockstep_trials(study: Study, ostudy, runs: list, *, progress: bool = False) -> None:
    """Run claimed seed trials -- ``(trial, params)`` -- in lockstep (:func:`archsearch.study.pruning.run_lockstep`):
    at each rung the paired-seed rule decides for each design point, and its seeds go on or stop (PRUNED)
    together."""
    from .pruning import run_lockstep
    from .trial import rung_decider

    seeds = [params["seed"] for _, params in runs]
    labels = [trial.user_attrs.get("label") for trial, _ in runs]
    recs = [OptunaRecorder(trial) for trial, _ in runs]

    def run_unit(i: int, report) -> Outcome:
        trial, params = runs[i]
        return run_and_tell(study, ostudy, trial, params["design"], _arguments(params), [params["seed"]],
                            label=labels[i], dedupe=False, progress=progress, on_report=report)

    # every unit tells its own outcome (a stopped one: PRUNED, with the decision)
    run_lockstep(len(runs), study.config.pruning.rungs, rung_decider(study, ostudy, recs, seeds, labels), run_unit)
