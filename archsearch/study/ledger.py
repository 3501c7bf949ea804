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

import datetime as dt
import os
import socket
import warnings
from pathlib import Path
from typing import Any

from ..errors import ArchsearchError
from .config import Study, config_body, config_differences, config_fingerprint
from .loader import load_study
from .sampling import INTERRUPTED, OBJECTIVE_ATTRS
from .storage import LedgerCorrupt, corrupt_hint, create_or_load, make_storage, sqlite_path


def _optuna():
    import optuna  # ~0.7 s: only ledger paths pay it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def directions(study: Study) -> list[str]:
    if study.config.search is None:
        return ["maximize"]
    return ["maximize"] + ["minimize"] * (len(study.config.search.objectives) - 1)


def metric_names(study: Study) -> list[str]:
    """Optuna's names of the objective values (optuna-dashboard and ``optuna trials`` show them)."""
    objectives = study.config.search.objectives if study.config.search is not None else ("psnr",)
    return [OBJECTIVE_ATTRS[o] for o in objectives]


def storage_for(study: Study):
    """The study's Optuna storage (:func:`archsearch.study.storage.make_storage`: checked, masked in errors,
    safe when several processes create a new ledger at once). A corrupt SQLite ledger says how to move it aside."""
    try:
        return make_storage(study.storage_url)
    except LedgerCorrupt as err:
        raise LedgerCorrupt(err.path, err.reason, corrupt_hint(err.path, fresh_command(study))) from None


def fresh_command(study: Study) -> str | None:
    """``archsearch run STUDY [--profile P]``, the command whose ``--fresh`` moves this study's corrupt ledger
    aside; None when the ledger is at a ``storage:`` URL (archsearch never moves or deletes one)."""
    if study.config.storage is not None:
        return None
    c = study.config
    default = Path(c.output_dir) if c.output_dir else Path("runs") / study.name
    extra = f" --profile {study.profile}" if study.profile != "default" else ""
    if Path(study.output_dir) != default:
        extra += f" --output-dir {study.output_dir}"
    return f"archsearch run {study.path}{extra}"


def server_storage(study: Study):
    """A database server that cannot be reached is one line (masked URL and reason), before anything is written;
    returns its storage, to be handed on. A default SQLite ledger is not opened here (None): it is created inside
    the study folder, which does not exist yet."""
    return storage_for(study) if sqlite_path(study.storage_url) is None else None


def _no_ledger(study: Study) -> ArchsearchError:
    return ArchsearchError(f"no ledger for study {study.name!r} in {study.storage_display} "
                           f"(run `archsearch run {study.path}` first)")


def open_study(study: Study, *, create: bool = True, pruner=None, sampler=None, storage=None,
               any_config: bool = False):
    """The Optuna study of ``study`` (created if ``create``). A ledger written under another configuration (a
    setting that defines the trials' results changed in the study file, or another study's ledger in place) is
    refused, by writers and readers alike, naming what differs -- unless ``any_config`` (a reader's explicit
    ``--any-config``: read it as it is). Reading (``create=False``) a ledger that does not exist creates nothing."""
    optuna = _optuna()
    path = sqlite_path(study.storage_url)
    if not create and path is not None and not path.exists():
        raise _no_ledger(study)
    storage = storage or storage_for(study)
    if not create:
        try:
            ostudy = optuna.load_study(study_name=study.name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:  # Optuna's "no such study"
            raise _no_ledger(study) from None
        if not any_config:
            check_config(study, ostudy, reading=True)
        return ostudy
    ostudy, created = create_or_load(storage, study.name, directions(study), sampler=sampler, pruner=pruner,
                                     user_attrs={"fingerprint": config_fingerprint(study),
                                                 "config": config_body(study),
                                                 "study_file": str(study.path), "profile": study.profile,
                                                 "fidelity": study.config.fidelity,
                                                 "search_space": study.space.name})
    if created:
        with warnings.catch_warnings():  # set_metric_names is "experimental" in Optuna 5, and the only way
            warnings.simplefilter("ignore")
            ostudy.set_metric_names(metric_names(study))
        return ostudy
    check_config(study, ostudy, reading=False)
    return ostudy


def check_config(study: Study, ostudy, *, reading: bool) -> None:
    """Refuse a ledger whose stored fingerprint is not the study file's, naming the settings that differ (ledgers
    written before the settings were stored name the two fingerprints)."""
    stored = ostudy.user_attrs.get("fingerprint")
    current = config_fingerprint(study)
    if not stored or stored == current:
        return
    body = ostudy.user_attrs.get("config")
    what = "; ".join(config_differences(body, config_body(study))) if isinstance(body, dict) else \
        f"fingerprint {stored} in the ledger, {current} for the study file"
    advice = ("read it anyway with --any-config, or restore the study file's settings" if reading else
              "results would mix. Use --fresh to start over, or give the study a new name")
    raise ArchsearchError(f"{study.path}: the ledger of study {study.name!r} ({study.storage_display}) was written "
                          f"with a different configuration ({what}); {advice}")


def delete_study(study: Study, storage=None) -> None:
    optuna = _optuna()
    storage = storage or storage_for(study)
    try:
        optuna.delete_study(study_name=study.name, storage=storage)
    except KeyError:  # nothing to delete
        pass


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


#: A RUNNING trial with no host/pid yet is taken for dead after this long (its worker died between Optuna's
#: ``ask()`` and recording who runs it; a live worker records itself within milliseconds).
UNCLAIMED_AFTER_S = 30.0


def recover_stale(ostudy, *, owner_only: bool = False) -> list[Any]:
    """Mark RUNNING trials whose worker is gone as FAIL (reason :data:`INTERRUPTED`) and return them.

    A trial is stale when it runs on this host under a pid that no longer exists, or has no host/pid recorded
    and started over :data:`UNCLAIMED_AFTER_S` ago. ``owner_only``: the caller holds the study folder's run lock
    and the ledger is a local SQLite file, so no live worker can run a trial it did not start -- every RUNNING
    trial is stale. The caller re-queues what is missing (:func:`archsearch.study.runner.prepare`).
    """
    from optuna.trial import TrialState  # ~0.7 s: only ledger paths pay it

    stale = []
    host = this_host()
    now = dt.datetime.now()
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        t_host, pid = t.user_attrs.get("host"), t.user_attrs.get("pid")
        if owner_only:
            dead = True
        elif t_host is None or pid is None:
            started = t.datetime_start or now
            dead = (now - started).total_seconds() > UNCLAIMED_AFTER_S
        else:
            dead = t_host == host and not _alive(int(pid))
        if dead:
            # Optuna's public API finishes only the caller's own trials; its storage API finishes another's.
            storage = ostudy._storage  # noqa: SLF001
            storage.set_trial_user_attr(t._trial_id, "fail_reason", INTERRUPTED)  # noqa: SLF001
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001
            stale.append(t)
    return stale


def open_ledger(study_file: str | Path, profile: str | None = None, output_dir: str | Path | None = None, *,
                any_config: bool = False):
    """The study (validated) and its ledger (the Optuna study), as ``archsearch report`` reads them.

    ``output_dir`` overrides the study's output folder (and its default SQLite ledger there), as for
    ``archsearch run --output-dir``. Raises :class:`ArchsearchError` for an unknown study file, a missing ledger
    or one written under another configuration (unless ``any_config``).
    """
    study = load_study(study_file, profile, output_dir or None)
    return study, open_study(study, create=False, any_config=any_config)
