"""The trial ledger is an Optuna study: one per study file (and profile), by default an SQLite file in the output
folder, or any SQLAlchemy URL for shared multi-machine storage. ``optuna trials --study-name NAME --storage URL``
reads it.

Each trial's user attributes hold what a reader needs without archsearch internals: ``point`` (the grid point's
stable key), ``design``, ``label``, ``seed``, ``spec_hash``, ``spec_path``, ``n_params``, ``macs_per_pixel``,
``activation_param_pct``, ``psnr``, ``ssim``, ``val_psnr``, ``wall_time_s``, ``train_time_s``, ``eval_time_s``,
``checkpoint``, ``host``, ``pid``, and for failures ``fail_reason``. Study user attributes hold the fingerprint of
the validated config, the fidelity line and the grid points no knob value could put on the budget.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from ..errors import ArchsearchError
from .schema import Study

INTERRUPTED = "interrupted: the worker running it died (crash, kill, power loss); re-queued"


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def config_fingerprint(study: Study) -> str:
    """What must not change under a running ledger: everything that defines the trials' results."""
    c = study.config
    body = {
        "task": dict(c.task), "data": c.data.__dict__, "budget": c.budget.__dict__ if c.budget else None,
        "sweep": c.sweep.__dict__ if c.sweep else None, "search": c.search.__dict__ if c.search else None,
        "training": dict(c.training), "space": [repr(d) for d in study.space.designs],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def directions(study: Study) -> list[str]:
    if study.config.search is None:
        return ["maximize"]
    return ["maximize"] + ["minimize"] * (len(study.config.search.objectives) - 1)


def storage_for(study: Study):
    optuna = _optuna()
    if study.storage_url.startswith("sqlite:///"):
        Path(study.storage_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # A generous lock timeout: several local workers write to one SQLite file.
        return optuna.storages.RDBStorage(study.storage_url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(study.storage_url)


def open_study(study: Study, *, create: bool = True, pruner=None, sampler=None):
    """The Optuna study of ``study`` (created if ``create``); refuses a ledger made by a different config."""
    optuna = _optuna()
    storage = storage_for(study)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study.name not in names:
        if not create:
            raise ArchsearchError(f"no ledger for study {study.name!r} in {study.storage_url} "
                                  f"(run `archsearch run {study.path}` first)")
        ostudy = optuna.create_study(study_name=study.name, storage=storage, directions=directions(study),
                                     sampler=sampler, pruner=pruner)
        ostudy.set_user_attr("fingerprint", config_fingerprint(study))
        ostudy.set_user_attr("study_file", str(study.path))
        ostudy.set_user_attr("profile", study.profile)
        ostudy.set_user_attr("fidelity", study.config.fidelity)
        ostudy.set_user_attr("search_space", study.space.name)
        return ostudy
    ostudy = optuna.load_study(study_name=study.name, storage=storage, sampler=sampler, pruner=pruner)
    stored = ostudy.user_attrs.get("fingerprint")
    if create and stored and stored != config_fingerprint(study):
        raise ArchsearchError(
            f"{study.path}: the ledger of study {study.name!r} ({study.storage_url}) was written with a different "
            "configuration; results would mix. Use --fresh to start over, or give the study a new name")
    return ostudy


def delete_study(study: Study) -> None:
    optuna = _optuna()
    storage = storage_for(study)
    if study.name in [s.study_name for s in optuna.get_all_study_summaries(storage)]:
        optuna.delete_study(study_name=study.name, storage=storage)


def this_host() -> str:
    return socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale(ostudy, *, all_hosts: bool = False) -> list[Any]:
    """Mark RUNNING trials whose worker is gone as FAIL (reason :data:`INTERRUPTED`) and return them.

    A trial is stale if it runs on this host under a pid that no longer exists (or any host with
    ``all_hosts``, for a single-machine SQL server after a crash). The caller re-queues their configuration.
    """
    optuna = _optuna()
    from optuna.trial import TrialState

    stale = []
    host = this_host()
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        t_host, pid = t.user_attrs.get("host"), t.user_attrs.get("pid")
        if all_hosts or (t_host == host and (pid is None or not _alive(int(pid)))):
            storage = ostudy._storage  # noqa: SLF001 - Optuna's storage API is the only way to fail another's trial
            storage.set_trial_user_attr(t._trial_id, "fail_reason", INTERRUPTED)  # noqa: SLF001
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001
            stale.append(t)
    del optuna
    return stale
