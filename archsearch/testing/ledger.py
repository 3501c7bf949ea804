"""Synthetic ledgers for report, latency and export tests: Optuna trials with the user attributes a real trial
stores, built from :data:`archsearch.study.record.TRIAL_ATTRS` -- a row with a name the trial does not write is
refused, so renaming a stored attribute breaks the tests that read it."""

from __future__ import annotations

from typing import Any

from ..study import ledger as L
from ..study.config import Study
from ..study.record import check_attrs

#: The designs of the synthetic ledgers' categorical ``design`` parameter.
DESIGNS = ("convnet", "memnet", "nsr_resnet", "resnet", "xnet")


def new_ledger(study: Study, directions=("maximize",)):
    """An empty ledger for ``study`` in its storage, with the study's fidelity line (no fingerprint: readers do
    not check one)."""
    import optuna  # the ledger library; tests that use this kit use Optuna anyway

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ostudy = optuna.create_study(study_name=study.name, storage=L.storage_for(study), directions=list(directions))
    ostudy.set_user_attr("fidelity", study.config.fidelity)
    return ostudy


def trial_attrs(*, design: str, psnr: float | None = None, seed: int = 0, n_params: int = 3000,
                macs: float = 2900.0, pct: float = 0.0, arguments: dict[str, Any] | None = None,
                label: str | None = "", reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """The user attributes of one trial: the architecture's (design, seed, counts, arguments, spec hash), the
    label (the design unless given; None leaves it out), PSNR/SSIM when ``psnr`` is given, a fail reason, and
    any other stored attribute by its ledger name (``sweep_value=5``, ``latency_ms_per_mp=1.2``)."""
    ua: dict[str, Any] = {"design": design, "seed": seed, "n_params": n_params, "macs_per_pixel": macs,
                          "activation_param_pct": pct, "arguments": arguments or {},
                          "spec_hash": f"{design}{sorted((arguments or {}).items())}"}
    if label is not None:
        ua["label"] = label or design
    if psnr is not None:
        ua["psnr"], ua["ssim"] = psnr, 0.5
    if reason:
        ua["fail_reason"] = reason
    ua.update(extra)
    check_attrs(ua)
    return ua


def add_trial(ostudy, *, state=None, params: dict[str, Any] | None = None, values=None, **attrs: Any) -> None:
    """Add one finished (or running) trial to ``ostudy``: its attributes as :func:`trial_attrs` builds them, its
    Optuna params (default: design and seed), its objective values (default: the PSNR) and one intermediate
    validation value (PSNR - 1)."""
    from optuna.distributions import (  # ~0.7 s: only ledger paths pay it
        CategoricalDistribution,
        IntDistribution,
    )
    from optuna.trial import TrialState, create_trial  # ~0.7 s: only ledger paths pay it

    state = TrialState.COMPLETE if state is None else state
    ua = trial_attrs(**attrs)
    psnr = ua.get("psnr")
    params = params if params is not None else {"design": ua["design"], "seed": ua["seed"]}
    dists = {k: (CategoricalDistribution(list(DESIGNS)) if isinstance(v, str) else IntDistribution(0, 100))
             for k, v in params.items()}
    if state == TrialState.COMPLETE and values is None:
        values = [psnr]
    ostudy.add_trial(create_trial(state=state, values=values if state == TrialState.COMPLETE else None,
                                  params=params, distributions=dists, user_attrs=ua,
                                  intermediate_values={1: (psnr or 20.0) - 1}))


def trials_of(study: Study) -> list:
    """The trials of ``study``'s ledger as stored (read-only view)."""
    return L.open_study(study, create=False).get_trials(deepcopy=False)
