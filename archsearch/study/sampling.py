"""How a study explores: Optuna samplers and pruners, the distributions of a sweep's grid, the define-by-run
suggestions of a search, and the counting of trial states -- shared by the local and the Ray executor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import INFRASTRUCTURE
from .config import Study

#: ``fail_reason`` of a trial whose worker died (crash, kill, Ctrl-C) -- it is re-queued on resume.
INTERRUPTED = "interrupted: the worker running it died (crash, kill, Ctrl-C); re-queued"


#: The trial attribute behind each objective name (also Optuna's metric names).
OBJECTIVE_ATTRS = {"psnr": "psnr", "params": "n_params", "macs": "macs_per_pixel", "latency": "latency_ms_per_mp"}




def is_retryable(trial) -> bool:
    """A FAIL that says nothing about the design -- its worker died (:data:`INTERRUPTED`) or the machine failed
    (:data:`archsearch.errors.INFRASTRUCTURE`) --: the run queues it again, and it counts as not finished; a
    diverged or infeasible trial is final."""
    reason = str(trial.user_attrs.get("fail_reason", ""))
    return trial.state.name == "FAIL" and (reason.startswith("interrupted") or reason.startswith(INFRASTRUCTURE))


def sampler_seed(study: Study) -> int:
    """The search sampler's seed: ``search.seed``, else the study's first training seed (studies with other seeds
    explore in another order)."""
    s = study.config.search
    return int(s.seed) if s is not None and s.seed is not None else int(study.config.seeds[0])


def sampler(study: Study, seed: int | None = None):
    """The search's sampler (a sweep's queued grid points need none: Optuna's RandomSampler, never consulted)."""
    import optuna  # ~0.7 s: only ledger paths pay it

    seed = sampler_seed(study) if seed is None else seed
    s = study.config.search
    if s is None or s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, s.n_trials // 2)))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, s.n_trials // 3)))


def pruner(study: Study):
    """The local executor's pruner; its resource is the training step at which validation PSNR is reported."""
    import optuna  # ~0.7 s: only ledger paths pay it

    s = study.config.search
    steps = study.train.steps
    if s is None or s.pruner == "none":
        return optuna.pruners.NopPruner()
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    every = validation_every(study)
    if s.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=every, reduction_factor=s.reduction_factor)
    return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=max(steps, 2),
                                          reduction_factor=s.reduction_factor)


def validation_every(study: Study) -> int:
    """The training steps between two validation reports (``val_every``; 0 validates at the end only)."""
    every = study.train.val_every
    return every if every > 0 else max(1, study.train.steps)


def distributions(points, seeds=(), stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """One categorical distribution per grid parameter, holding every value the sweep's points take -- and, for
    ``seed``, every seed of the study (``seeds``): a sequential study's stage plans some of them, and Optuna refuses
    a parameter whose choices change within a ledger. ``stored`` (:func:`stored_distributions`): the ledger's
    distributions; a value they lack is appended after their choices (the stored choices keep their order, so
    every stored trial's value -- an index into them -- keeps its meaning; :func:`widen_stored` writes them)."""
    from optuna.distributions import CategoricalDistribution  # ~0.7 s: only ledger paths pay it

    values: dict[str, set] = {"seed": set(seeds)} if seeds else {}
    for p in points:
        for k, v in p.params.items():
            values.setdefault(k, set()).add(v)
    out = {}
    for k, v in values.items():
        fresh = sorted(v, key=lambda x: (str(type(x)), x))
        old = (stored or {}).get(k)
        if isinstance(old, CategoricalDistribution):
            fresh = [*old.choices, *(x for x in fresh if x not in old.choices)]
        out[k] = CategoricalDistribution(fresh)
    return out


def stored_distributions(ostudy) -> dict[str, Any]:
    """The distribution the ledger holds for each parameter (Optuna checks every new value against the first
    stored one)."""
    out: dict[str, Any] = {}
    for t in ostudy.get_trials(deepcopy=False):
        for k, d in t.distributions.items():
            out.setdefault(k, d)
    return out


def widen_stored(ostudy, points, seeds) -> list[str]:
    """Seeds added to a study that has a ledger (``seeds: [0, 1, 2]`` -> ``[0, 1, 2, 3, 4]``, a sequential
    study's later stage): Optuna refuses a categorical parameter whose choices change within a study, so the
    ledger's stored ``seed`` distribution is widened in place to what :func:`distributions` gives for ``points``
    and ``seeds`` -- the stored choices first, in their order, then the new ones: every stored value (an index
    into the choices) keeps its meaning. Returns the parameters widened. Only for the database ledgers archsearch
    writes (SQLite, PostgreSQL, MySQL)."""
    from optuna.distributions import CategoricalDistribution, distribution_to_json
    from sqlalchemy import text

    stored = stored_distributions(ostudy)
    changed = []
    for name, dist in distributions(points, seeds, stored).items():
        old = stored.get(name)
        if not (isinstance(old, CategoricalDistribution) and isinstance(dist, CategoricalDistribution)):
            continue
        if tuple(dist.choices) == tuple(old.choices):  # (distributions() only ever appends to the stored ones)
            continue
        storage = getattr(ostudy._storage, "_backend", ostudy._storage)  # the RDB storage under Optuna's cache
        with storage.engine.begin() as conn:
            conn.execute(text("UPDATE trial_params SET distribution_json = :d WHERE param_name = :n AND trial_id IN "
                              "(SELECT trial_id FROM trials WHERE study_id = :s)"),
                         {"d": distribution_to_json(dist), "n": name, "s": ostudy._study_id})
        changed.append(name)
    return changed


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


def space_size(study: Study) -> int | None:
    """How many distinct configurations a search can propose (None: a continuous range makes it unbounded)."""
    total = 0
    for d in study.space.designs:
        n = 1
        for rng in d.search.values():
            if rng.choices is not None:
                n *= len(rng.choices)
            elif rng.is_int and not rng.log:
                n *= int((rng.high - rng.low) // (rng.step or 1)) + 1
            elif rng.is_int:
                n *= int(rng.high - rng.low) + 1  # an upper bound: log-spaced integers may collide
            else:
                return None
        total += n
    return total


#: A search stops when the sampler proposes only trained architectures this many times in a row (every executor,
#: counted from the ledger by :func:`duplicates_in_a_row`).
MAX_DUPLICATES_IN_A_ROW = 50


def duplicates_in_a_row(trials) -> int:
    """The latest finished proposals, in trial order, that repeated a trained architecture (``duplicate_of``),
    counted back to the last one that trained something new."""
    n = 0
    for t in sorted(trials, key=lambda t: t.number, reverse=True):
        if t.state.name in ("RUNNING", "WAITING"):
            continue
        if t.user_attrs.get("duplicate_of") is None:
            break
        n += 1
    return n


def search_target(study: Study) -> int:
    """Trials a search trains: ``n_trials``, or fewer when the space has fewer distinct configurations."""
    n = study.config.search.n_trials  # type: ignore[union-attr]
    size = space_size(study)
    return n if size is None else min(n, size)


def search_label(design: str, args: dict[str, Any]) -> str:
    """The label of a search trial (``design key=value ...``), as a sweep's grid points are labelled."""
    return design + "".join(f" {k}={v}" for k, v in args.items())


@dataclass(frozen=True)
class Counts:
    """Trials by state; ``retryable`` are FAIL trials whose worker died or whose machine failed (re-queued:
    :func:`is_retryable`), ``duplicates`` search proposals answered from an earlier trial of the same
    architecture (not trained again)."""

    complete: int = 0
    failed: int = 0
    pruned: int = 0
    running: int = 0
    waiting: int = 0
    retryable: int = 0
    duplicates: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.failed + self.pruned


def count_states(trials) -> Counts:
    c = dict.fromkeys(Counts.__dataclass_fields__, 0)
    for t in trials:
        if t.user_attrs.get("duplicate_of") is not None and t.state.name != "RUNNING":
            c["duplicates"] += 1
        elif t.state.name == "COMPLETE":
            c["complete"] += 1
        elif t.state.name == "PRUNED":
            c["pruned"] += 1
        elif t.state.name == "RUNNING":
            c["running"] += 1
        elif t.state.name == "WAITING":
            c["waiting"] += 1
        elif is_retryable(t):
            c["retryable"] += 1
        else:
            c["failed"] += 1
    return Counts(**c)
