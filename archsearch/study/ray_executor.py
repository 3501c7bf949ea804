"""Ray Tune executor: the same trials, the same Optuna ledger, fanned out over a Ray cluster.

* Sweeps: the grid points are queued in the ledger as for the local executor; Ray runs one Tune trial per
  queued point (``tune.grid_search`` over slots), each claiming a point and running it with the same code.
* Searches: Ray Tune's ``OptunaSearch`` with ``storage`` and ``study_name`` set to the study's ledger samples the
  configurations (define-by-run, the same ``suggest_search`` as locally), and an ASHA scheduler stops weak
  trials early on the validation PSNR; stopped trials are recorded PRUNED, diverged ones FAIL with their reason.

``executor.address`` connects to an existing cluster (``auto`` or ``ray://head:10001``); without it a local Ray
runtime is started for the run and shut down afterwards. ``cpus_per_trial`` / ``gpus_per_trial`` set each
trial's resources; ``workers`` caps the concurrent trials.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any

from . import ledger as L
from .schema import Study, load_study


def _set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def _sweep_trainable(config: dict[str, Any], *, path: str, profile: str, output_dir: str, cpus: float) -> None:
    from ray import tune

    from .runner import _distributions, claim_and_run
    from .trial import plan_sweep

    _set_threads(cpus)
    study = load_study(path, profile, output_dir)
    ostudy = L.open_study(study, create=False)
    dists = _distributions(plan_sweep(study)[0])
    claim_and_run(study, ostudy, dists,
                  extra_report=lambda step, v: tune.report({"val_psnr": float(v), "step": int(step)}))
    tune.report({"claimed": 1})


def _search_trainable(config: dict[str, Any], *, path: str, profile: str, output_dir: str, cpus: float) -> None:
    from ray import tune

    from .runner import suggest_search
    from .trial import TrialFailed, execute, failure_log, worker_identity

    _set_threads(cpus)
    study = load_study(path, profile, output_dir)
    ostudy = L.open_study(study, create=False)
    number = int(config["trial_number"])
    frozen = next(t for t in ostudy.get_trials(deepcopy=False) if t.number == number)
    storage, trial_id = ostudy._storage, frozen._trial_id  # noqa: SLF001 - writing attrs of Ray's Optuna trial
    import optuna

    design, args = suggest_search(study, optuna.trial.FixedTrial(frozen.params, number))
    for k, v in worker_identity().items():
        storage.set_trial_user_attr(trial_id, k, v)

    def report(step: int, val_psnr: float) -> None:
        if val_psnr is not None and math.isfinite(val_psnr):
            storage.set_trial_intermediate_value(trial_id, int(step), float(val_psnr))
            tune.report({"psnr": float(val_psnr), "step": int(step), "finished": False})

    def on_spec(attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            storage.set_trial_user_attr(trial_id, k, v)

    try:
        results = [execute(study, design, args, seed, report=report if i == 0 else None,
                           on_spec=on_spec if i == 0 else None)
                   for i, seed in enumerate(study.config.seeds)]
    except TrialFailed as err:
        storage.set_trial_user_attr(trial_id, "fail_reason", err.reason)
        tune.report({"failed": True, "finished": False})
        return
    except Exception as err:
        storage.set_trial_user_attr(trial_id, "fail_reason", failure_log(study, number, err))
        raise
    attrs = dict(results[0])
    attrs["psnr"] = sum(r["psnr"] for r in results) / len(results)
    attrs["psnr_per_seed"] = [r["psnr"] for r in results]
    for k, v in attrs.items():
        storage.set_trial_user_attr(trial_id, k, v)
    tune.report({"psnr": attrs["psnr"], "n_params": float(attrs["n_params"]),
                 "macs": float(attrs["macs_per_pixel"]), "finished": True})


class _DefineByRun:
    """OptunaSearch's define-by-run space: the same suggestions as the local executor, plus the Optuna trial number
    so the trainable can write its attributes to that trial. A picklable class (Tune checkpoints the searcher)."""

    def __init__(self, path: str, profile: str):
        self.path, self.profile = path, profile

    def __call__(self, trial) -> dict[str, Any]:
        from .runner import suggest_search

        suggest_search(load_study(self.path, self.profile), trial)  # only the search space is read
        return {"trial_number": trial.number}


def _searcher_class():
    from ray.tune.search.optuna import OptunaSearch

    class LedgerOptunaSearch(OptunaSearch):
        """OptunaSearch that records scheduler-stopped trials as PRUNED and failed ones as FAIL, so the ledger
        reads the same as the local executor's (plain OptunaSearch would store their last intermediate value as a
        COMPLETE result)."""

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
            if result is not None and not result.get("finished", False):
                return super().on_trial_complete(trial_id, None, error or bool(result.get("failed")))
            return super().on_trial_complete(trial_id, result, error)

    return LedgerOptunaSearch


def run_ray(study: Study, *, mode: str, workers: int) -> None:
    import ray
    from ray import tune

    from .runner import _counts, _pruner, _sampler

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
        common = dict(path=str(Path(study.path).resolve()), profile=study.profile,
                      output_dir=str(Path(study.output_dir).resolve()), cpus=ex.cpus_per_trial)
        run_config = tune.RunConfig(storage_path=str((Path(study.output_dir) / "ray").resolve()),
                                    name=f"{mode}", verbose=0)
        ostudy = L.open_study(study, create=False)
        if mode == "sweep":
            n = _counts(ostudy)["waiting"]
            if n == 0:
                return
            tuner = tune.Tuner(
                tune.with_resources(partial(_sweep_trainable, **common), resources),
                param_space={"slot": tune.grid_search(list(range(n)))},
                tune_config=tune.TuneConfig(max_concurrent_trials=workers),
                run_config=run_config,
            )
        else:
            s = study.config.search
            assert s is not None
            c = _counts(ostudy)
            remaining = s.n_trials - (c["complete"] + c["failed"] + c["pruned"])
            if remaining <= 0:
                return

            space = _DefineByRun(str(Path(study.path).resolve()), study.profile)
            multi = len(s.objectives) > 1
            metric = ["psnr"] + [("n_params" if o == "params" else "macs") for o in s.objectives[1:]] if multi \
                else "psnr"
            mode_ = ["max"] + ["min"] * (len(s.objectives) - 1) if multi else "max"
            searcher = _searcher_class()(space=space, metric=metric, mode=mode_, study_name=study.name,
                                         storage=L.storage_for(study), sampler=_sampler(study))
            del _pruner  # the ASHA scheduler plays the pruner's role under Ray
            scheduler = None
            if not multi:
                from ray.tune.schedulers import ASHAScheduler

                steps = int(dict(study.config.training).get("steps", 1000))
                every = int(dict(study.config.training).get("val_every", max(1, steps // 4))) or steps
                scheduler = ASHAScheduler(time_attr="training_iteration", metric="psnr", mode="max",
                                          max_t=max(2, steps // max(1, every) + 1), grace_period=1)
            from ray.tune.search import ConcurrencyLimiter

            tuner = tune.Tuner(
                tune.with_resources(partial(_search_trainable, **common), resources),
                tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=workers),
                                            scheduler=scheduler, num_samples=remaining),
                run_config=run_config,
            )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()
