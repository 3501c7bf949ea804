"""Loading a study: the YAML file (or a mapping), its profile merged over it, every cross-check -- task, training,
search space, budget, the claims' points against the sweep's plan -- and the output folder; nothing is written.
The result is a :class:`~archsearch.study.config.Study` that carries its typed task, training config and plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..claims import check_points
from ..errors import ArchsearchError, ConfigError, SpecError, did_you_mean
from ..families import get_family
from ..schema import deep_merge, load_dataclass, read_yaml
from ..spec import check_name
from ..tasks import Task, make_task, task_error
from ..training import TrainConfig
from .config import DESIGNS, RUNS_ROOT, Study, StudyConfig
from .space import SearchSpace, check_argument, load_search_space
from .storage import check_url
from .sweep import SweepPlan, plan_sweep


def load_study(path: str | Path | Mapping[str, Any], profile: str | None = None,
               output_dir: str | Path | None = None) -> Study:
    """Load and validate a study file -- or a mapping holding what such a file would (its search-space path is
    then read from the working directory) -- and its search space; nothing is written. ``output_dir`` overrides
    the file's output folder (``--output-dir``), and with it the default SQLite ledger inside it."""
    if isinstance(path, Mapping):
        data, path = dict(path), Path("<mapping>")
    else:
        path = Path(path)
        data = read_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError("", f"must be a mapping, got {type(data).__name__}", file=str(path))
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError("profiles", f"must be a mapping of profile names to overrides, got {profiles!r}",
                          file=str(path))
    for name in profiles:
        try:
            check_name(name, f"profiles.{name}")
        except SpecError as err:
            raise ConfigError(err.path, err.message, file=str(path)) from None
    chosen = profile or "default"
    base = data  # the file without a profile's overrides
    if profile and profile != "default":
        if profile not in profiles:
            raise ConfigError("profiles", f"no profile {profile!r}{did_you_mean(profile, profiles)}; "
                                          f"defined: {', '.join(['default', *profiles]) }", file=str(path))
        override = profiles[profile]
        if not isinstance(override, Mapping):
            raise ConfigError(f"profiles.{profile}", "must be a mapping of overrides", file=str(path))
        data = deep_merge(data, override)
    where_profile = f" (profile {profile!r})" if profile and profile != "default" else ""
    if data.get("storage") is not None and not isinstance(data.get("storage"), str):  # never echo a password
        raise ConfigError(f"storage{where_profile}", "must be a database URL (a string) such as "
                                                     "sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB, or null",
                          file=str(path))
    try:
        config = load_dataclass(StudyConfig, data)
        task, train = _task_and_training(config)
        config, train = _with_rungs(config, train)
    except SpecError as err:
        raise ConfigError(f"{err.path}{where_profile}", err.message, file=str(path)) from None
    space_path = (path.parent / config.search_space).resolve()
    if not space_path.exists():
        alt = Path(config.search_space)
        if alt.exists():
            space_path = alt.resolve()
        else:
            raise ConfigError("search_space", f"no such search-space file {config.search_space!r} (looked in "
                                              f"{path.parent} and the working directory)", file=str(path))
    space = load_search_space(space_path)
    try:
        _check_against_space(config, space)
    except SpecError as err:
        raise ConfigError(f"{err.path}{where_profile}", err.message, file=str(path)) from None
    plan = plan_sweep(config, space) if config.sweep is not None else None
    if config.claims or config.published:
        _check_claim_points(config, space, plan, path, chosen, profiles, base)
    name = config.name if chosen == "default" else f"{config.name}-{chosen}"
    if output_dir is not None:
        out = _explicit_output_dir(Path(output_dir), path, "--output-dir")
    elif config.output_dir:
        out = _explicit_output_dir(Path(config.output_dir), path, f"output_dir{where_profile}")
    else:
        out = RUNS_ROOT / name
        root = RUNS_ROOT.resolve()
        resolved = out.resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise ConfigError("name", f"the output folder {out} resolves to {resolved}, outside {root}; the study "
                                      "name must give a folder inside runs/", file=str(path))
    storage = config.storage or f"sqlite:///{(out / 'ledger.db').resolve()}"
    problem = check_url(storage)
    if problem:
        raise ConfigError("storage", problem, file=str(path))
    return Study(config, space, path, chosen, out, storage, task, train, plan)


def _check_claim_points(config: StudyConfig, space: SearchSpace, own_plan: SweepPlan | None, path: Path, chosen: str,
                        profiles: Mapping[str, Any], base: Mapping[str, Any]) -> None:
    """The points that ``claims`` and ``published`` name exist in the sweep of the profile that defines them:
    a profile's own ``claims`` against its own sweep; claims written at the top level against the default
    profile's sweep (a profile that inherits them and lacks a point -- a smoke run's shorter sweep -- reports
    that claim inconclusive when it is evaluated, naming the missing point)."""
    override = profiles.get(chosen, {}) if chosen != "default" else {}
    plans: dict[str, list[tuple[str, Any]]] = {}

    def plan(origin: str) -> list[tuple[str, Any]]:
        if origin not in plans:
            if origin == chosen:
                plans[origin] = own_plan.labelled() if own_plan is not None else []
            else:  # the default profile's config and search space
                try:
                    base_config = load_dataclass(StudyConfig, base)
                except SpecError as err:
                    raise ConfigError(err.path, err.message, file=str(path)) from None
                base_space = space if base_config.search_space == config.search_space else \
                    load_search_space((path.parent / base_config.search_space).resolve())
                plans[origin] = plan_sweep(base_config, base_space).labelled() \
                    if base_config.sweep is not None else []
        return plans[origin]

    where_profile = f" (profile {chosen!r})" if chosen != "default" else ""
    for key in ("claims", "published"):
        origin = chosen if chosen == "default" or key in override else "default"
        claims = config.claims if key == "claims" else ()
        mapping = config.published if key == "published" else {}
        if not claims and not mapping:
            continue
        where = "the study's sweep" if origin == "default" else f"the sweep of profile {origin!r}"
        try:
            check_points(claims, mapping, plan(origin), where, sweep=config.sweep is not None)
        except SpecError as err:
            raise ConfigError(f"{err.path}{where_profile}", err.message, file=str(path)) from None


def _explicit_output_dir(out: Path, study_file: Path, key: str) -> Path:
    """An output folder the user chose: anywhere, except a folder whose reset would hit what is not the study's
    (the runs/ root itself, the filesystem root, the home folder, the study file's folder or any parent of it)."""
    if not str(out).strip():
        raise ConfigError(key, "must be a folder, got ''", file=str(study_file))
    try:
        resolved = out.expanduser().resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise ConfigError(key, f"cannot resolve {out}: {err}", file=str(study_file)) from None
    forbidden = {RUNS_ROOT.resolve(): "the root of all study folders (runs/)",
                 Path(resolved.anchor): "the filesystem root", Path.home().resolve(): "the home folder"}
    if resolved in forbidden:
        raise ConfigError(key, f"{out} is {forbidden[resolved]}: give a folder of this study's own (default "
                               "runs/<name>)", file=str(study_file))
    if str(study_file) != "<mapping>" and study_file.resolve().parent.is_relative_to(resolved):
        raise ConfigError(key, f"{out} holds the study file {study_file}: give a folder of this study's own "
                               "(default runs/<name>)", file=str(study_file))
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(key, f"{out} exists and is not a folder", file=str(study_file))
    return out


def _task_and_training(config: StudyConfig) -> tuple[Task, TrainConfig]:
    """The study's task and training config, typed (errors at ``task.<key>`` / ``training.<key>``)."""
    try:
        task = make_task(**dict(config.task))
    except ArchsearchError as err:
        raise task_error(err, [k for k in config.task if k != "name"],
                         lambda k: f"task.{k}" if k else "task") from None
    except TypeError as err:
        raise SpecError("task", str(err)) from None
    return task, load_dataclass(TrainConfig, dict(config.training), "training")


def _with_rungs(config: StudyConfig, train: TrainConfig) -> tuple[StudyConfig, TrainConfig]:
    """A study with ``pruning``: its rungs resolved (default: the validation steps from a third of the schedule on)
    and checked, and validation added at every rung (the rule compares validation PSNR there)."""
    p = config.pruning
    if p is None:
        return config, train
    steps = train.steps
    if p.rungs:
        for i, r in enumerate(p.rungs):
            if r >= steps:
                raise SpecError(f"pruning.rungs[{i}]", f"must be a step before the last ({steps}): a trial that has "
                                                       f"trained every step is finished, got {r}")
        rungs = p.rungs
    else:
        every = train.val_every
        due = set(train.report_steps) | (set(range(every, steps, every)) if every else set())
        rungs = tuple(sorted(s for s in due if steps / 3 <= s < steps))
        if not rungs:
            raise SpecError("pruning.rungs", f"no validation step between a third of the schedule and its end "
                                             f"({steps} steps): list the rungs, e.g. [{steps // 3}, {2 * steps // 3}], "
                                             f"or set training.val_every")
    config = dataclasses.replace(config, pruning=dataclasses.replace(p, rungs=rungs))
    return config, dataclasses.replace(train, report_steps=tuple(sorted(set(train.report_steps) | set(rungs))))


def _check_against_space(config: StudyConfig, space: SearchSpace) -> None:
    for d in space.designs:
        if config.budget is not None and d.published:
            raise SpecError("budget", f"design {d.name!r} of {space.path} is a published checkpoint (`weights`): its "
                                      "size is fixed, so the study can have no budget")
        if config.search is not None and d.published:
            raise SpecError("search", f"design {d.name!r} of {space.path} is a published checkpoint (`weights`): "
                                      "nothing to search; run it in a sweep")
        if config.budget is not None and d.free_knob is None:
            raise SpecError("budget", f"design {d.name!r} of {space.path} has no free_knob to solve for the budget")
        if config.search is not None and config.budget is None and d.free_knob is not None:
            raise SpecError("budget", f"design {d.name!r} has a free_knob but the study gives no budget")
    if config.sweep is not None:
        sw = config.sweep
        arg = sw.via if sw.over == "activation_param_pct" else sw.over
        if sw.over != DESIGNS and not any(d.sweeps(arg) for d in space.designs):
            if any(d.accepts(arg) for d in space.designs):
                raise SpecError("sweep.over" if sw.over != "activation_param_pct" else "sweep.via",
                                f"every design of {space.name!r} that takes {arg!r} fixes it; leave it out of "
                                "`fixed` in at least one design to sweep it")
            raise SpecError("sweep.over" if sw.over != "activation_param_pct" else "sweep.via",
                            f"no design of {space.name!r} takes the argument {arg!r}")
        if config.budget is None:
            # A sweep without a budget builds every design as it is (fixed-structure grids: the papers' tables
            # over depth, blocks, ...); then no design may have a free knob, and shares need a budget.
            if sw.over == "activation_param_pct":
                raise SpecError("budget", "a sweep over activation_param_pct re-solves the free knob on a budget: "
                                          "give `budget`")
            knobbed = [d.name for d in space.designs if d.free_knob is not None]
            if knobbed:
                raise SpecError("budget", f"design {knobbed[0]!r} of {space.path} has a free_knob but the study "
                                          "gives no budget: give `budget`, or drop free_knob to build the designs "
                                          "as they are")
        for d in space.designs:  # (`over: designs` names no argument: no design takes it)
            if not d.accepts(arg):
                continue
            if arg == d.free_knob:
                raise SpecError("sweep.over" if sw.over != "activation_param_pct" else "sweep.via",
                                f"{arg!r} is the free knob of design {d.name!r}, solved for the budget; sweep "
                                "another argument")
            if arg in d.fixed:  # the design fixes the swept argument: a baseline, one point at its own value
                continue
            if sw.over == "activation_param_pct":
                continue
            fam = get_family(d.family)
            for i, value in enumerate(sw.values):
                check_argument(fam, dict(d.fixed), arg, value, f"sweep.values[{i}]", d.free_knob, design=d.name)
    if config.search is not None:
        if not any(d.search for d in space.designs) and len(space.designs) < 2:
            raise SpecError("search", f"search space {space.name!r} has nothing to search (no `search` ranges)")
        if config.search.sampler == "nsga2" and config.budget is not None:
            # Multi-objective over size makes sense only if the size varies; a fixed budget pins it.
            raise SpecError("budget", "an NSGA-II search trades PSNR against size: leave `budget` out")
