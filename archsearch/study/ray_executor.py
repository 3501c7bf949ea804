"""Ray Tune executor: the same trials, the same Optuna ledger, fanned out over a Ray cluster.

Every trial runs through :func:`archsearch.study.trial.run_trial`, as locally, so a Ray trial's attributes are the
local executor's, key for key.

* Sweeps: the grid points are queued in the ledger as for the local executor; Ray runs one Tune trial per queued
  point (``tune.grid_search`` over slots), each claiming a point with the local executor's ``claim_and_run``.
* Searches: Ray Tune's ``OptunaSearch`` with ``storage`` and ``study_name`` set to the study's ledger samples the
  configurations (define-by-run, the same ``suggest_search`` as locally), and an ASHA scheduler stops weak trials
  early on the validation PSNR. Each validation PSNR is written once, by the searcher, at its *training step*
  (not Ray's iteration count); scheduler-stopped trials are recorded PRUNED, failed ones FAIL with their reason.

``executor.address`` connects to an existing cluster (``auto`` or ``ray://head:10001``); without it a local Ray
runtime is started for the run and shut down afterwards. ``cpus_per_trial`` / ``gpus_per_trial`` set each
trial's resources; ``workers`` caps the concurrent trials.
"""

from __future__ import annotations

import dataclasses
import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import torch

from . import ledger as L
from .config import Study
from .queue import claim_and_run
from .sampling import (
    MAX_DUPLICATES_IN_A_ROW,
    count_states,
    distributions,
    duplicates_in_a_row,
    sampler,
    sampler_seed,
    search_label,
    search_target,
    stored_distributions,
    suggest_search,
    validation_every,
)
from .trial import run_trial


def _portable(study: Study) -> Study:
    """The loaded study as Ray trials receive it (pickled, plan included: nothing is loaded or planned again),
    with its output folder absolute -- Tune runs each trainable in a folder of its own."""
    return dataclasses.replace(study, output_dir=Path(study.output_dir).resolve())


def _set_threads(cpus: float) -> None:
    torch.set_num_threads(max(1, int(cpus)))


def _sweep_trainable(config: dict[str, Any], *, study: Study, cpus: float) -> None:
    from ray import tune  # optional extra [ray]

    _set_threads(cpus)
    ostudy = L.open_study(study, create=False)
    dists = distributions(study.plan.points, study.config.seeds, stored_distributions(ostudy))
    claim_and_run(study, ostudy, dists)
    tune.report({"claimed": 1})


class _StorageRecorder:
    """:class:`~archsearch.study.trial.Recorder` over the ledger row of the trial OptunaSearch asked for. The
    validation PSNR goes to Ray Tune only: the searcher writes it to the ledger (once, at its step)."""

    def __init__(self, storage, trial_id: int, number: int):
        self.storage, self.trial_id, self.number = storage, trial_id, number
        self.curve: list[list[float]] = []

    def set_attr(self, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(self.trial_id, key, value)

    def report(self, step: int, value: float) -> None:
        from ray import tune  # optional extra [ray]

        # the curve so far: a trial ASHA stops is killed inside tune.report, before run_trial returns
        self.curve.append([int(step), float(value)])
        self.set_attr("val_curve", self.curve)
        tune.report({"psnr": float(value), "step": int(step), "finished": False})

    def should_prune(self) -> bool:
        return False  # ASHA stops the trial between reports


def _search_trainable(config: dict[str, Any], *, study: Study, cpus: float) -> None:
    import optuna  # ~0.7 s: only ledger paths pay it
    from ray import tune  # optional extra [ray]

    _set_threads(cpus)
    ostudy = L.open_study(study, create=False)
    number = int(config["trial_number"])
    frozen = next(t for t in ostudy.get_trials(deepcopy=False) if t.number == number)
    design, args = suggest_search(study, optuna.trial.FixedTrial(frozen.params, number))
    rec = _StorageRecorder(ostudy._storage, frozen._trial_id, number)  # noqa: SLF001 - Ray's Optuna trial
    outcome = run_trial(study, ostudy, rec, design, args, list(study.config.seeds),
                        label=search_label(design, args), dedupe=True)
    for k, v in outcome.attrs.items():
        rec.set_attr(k, v)
    result: dict[str, Any] = {"finished": True, "state": outcome.state}
    # Tune's schedulers require their metric in every result: a trial that did not complete reports the worst
    # values (the searcher records it PRUNED or FAIL from ``state`` and ignores them)
    worst = [float("-inf")] + [float("inf")] * (len(L.metric_names(study)) - 1)
    result.update(zip(L.metric_names(study), outcome.values if outcome.values is not None else worst))
    tune.report(result)


class _DefineByRun:
    """OptunaSearch's define-by-run space: the same suggestions as the local executor, plus the Optuna trial number
    so the trainable can write its attributes to that trial. A picklable class (Tune checkpoints the searcher)."""

    def __init__(self, study: Study):
        self.study = study

    def __call__(self, trial) -> dict[str, Any]:
        suggest_search(self.study, trial)
        return {"trial_number": trial.number}


def _searcher_class():
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it
    from ray.tune.search.optuna import OptunaSearch  # optional extra [ray]

    class LedgerOptunaSearch(OptunaSearch):
        """OptunaSearch that writes each validation PSNR once, at its training step, and records trials as the
        local executor does: scheduler-stopped trials PRUNED, failed ones FAIL, duplicates as their original."""

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if isinstance(self.metric, list) or trial_id in self._completed_trials or result.get("finished"):
                return  # Optuna keeps intermediate values for single-objective studies only
            if "step" in result and self.metric in result:
                self._ot_trials[trial_id].report(float(result[self.metric]), int(result["step"]))

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials:
                return
            trial = self._ot_trials[trial_id]
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            if result and result.get("finished"):
                state = result.get("state", "COMPLETE")
                if state == "COMPLETE":
                    values = [float(result[m]) for m in metrics]
                    self._ot_study.tell(trial, values if len(values) > 1 else values[0])
                else:
                    self._ot_study.tell(trial, state=TrialState[state])
            else:
                if not error:  # stopped by the scheduler: Tune skips on_trial_result for the deciding result
                    step = (result or {}).get("step")
                    if step is not None and not isinstance(self.metric, list) and self.metric in result:
                        trial.report(float(result[self.metric]), int(step))
                    trial.set_user_attr("fail_reason", f"pruned at step {step} (stopped by ASHA)")
                self._ot_study.tell(trial, state=TrialState.FAIL if error else TrialState.PRUNED)
            self._completed_trials.add(trial_id)

    return LedgerOptunaSearch


def run_ray(study: Study, ostudy, *, mode: str, workers: int) -> None:
    import ray  # optional extra [ray]
    from ray import tune  # optional extra [ray]

    ex = study.config.executor
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if ex.address:
            kwargs["address"] = ex.address
        else:
            kwargs["num_cpus"] = max(os.cpu_count() or 1, int(math.ceil(workers * ex.cpus_per_trial)))
        ray.init(**kwargs)
        started = True
    try:
        resources = {"cpu": ex.cpus_per_trial, "gpu": ex.gpus_per_trial}
        common = dict(study=_portable(study), cpus=ex.cpus_per_trial)
        run_config = tune.RunConfig(storage_path=str((Path(study.output_dir) / "ray").resolve()),
                                    name=f"{mode}", verbose=0)
        if mode == "sweep":
            n = count_states(ostudy.get_trials(deepcopy=False)).waiting
            if n:
                tune.Tuner(tune.with_resources(partial(_sweep_trainable, **common), resources),
                           param_space={"slot": tune.grid_search(list(range(n)))},
                           tune_config=tune.TuneConfig(max_concurrent_trials=workers),
                           run_config=run_config).fit()
            return
        # Rounds of Tuner.fit until the target number of distinct configurations is trained; proposals of an
        # already-trained architecture are answered from the ledger and do not count, and the search stops, as the
        # local one does, after MAX_DUPLICATES_IN_A_ROW of them in a row (a random sampler on a small space
        # proposes many: a fixed number of rounds left configurations untrained)
        target = search_target(study)
        while True:
            trials = ostudy.get_trials(deepcopy=False)
            remaining = target - count_states(trials).finished
            if remaining <= 0 or duplicates_in_a_row(trials) >= MAX_DUPLICATES_IN_A_ROW:
                return
            # each round's sampler gets another seed: a fresh one with the same seed would replay the proposals
            # of the round before (all duplicates by then)
            _search_tuner(study, common, resources, run_config, workers, remaining,
                          seed=sampler_seed(study) + len(trials)).fit()
            if len(ostudy.get_trials(deepcopy=False)) == len(trials):  # the round ran nothing: no progress to wait for
                return
    finally:
        if started:
            ray.shutdown()


def _search_tuner(study: Study, common: dict[str, Any], resources: dict[str, float], run_config, workers: int,
                  n: int, seed: int):
    from ray import tune  # optional extra [ray]
    from ray.tune.search import ConcurrencyLimiter  # optional extra [ray]

    s = study.config.search
    assert s is not None
    space = _DefineByRun(_portable(study))
    names = L.metric_names(study)
    multi = len(names) > 1
    metric = names if multi else names[0]
    mode = (["max"] + ["min"] * (len(names) - 1)) if multi else "max"
    searcher = _searcher_class()(space=space, metric=metric, mode=mode, study_name=study.name,
                                 storage=L.storage_for(study), sampler=sampler(study, seed=seed))
    scheduler = None
    if not multi and s.pruner != "none":  # ASHA plays the pruner's role under Ray
        from ray.tune.schedulers import ASHAScheduler  # optional extra [ray]

        steps = study.train.steps
        scheduler = ASHAScheduler(time_attr="training_iteration", metric="psnr", mode="max",
                                  max_t=max(2, steps // validation_every(study) + 1), grace_period=1,
                                  reduction_factor=s.reduction_factor)
    return tune.Tuner(tune.with_resources(partial(_search_trainable, **common), resources),
                      tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=workers),
                                                  scheduler=scheduler, num_samples=n),
                      run_config=run_config)
