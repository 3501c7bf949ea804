"""Study and search-space files: YAML validated at load into typed, frozen objects.

A **search space** (``search_spaces/*.yaml``) lists *designs*; each is a registered family with fixed arguments,
the free knob a budget solves, and (for searches) the ranges of the arguments to search::

    name: xunit_fig4
    designs:
      - name: convnet                 # Conv+BN+ReLU, 0% of the parameters in activations
        family: convnet
        fixed: {depth: 4}
        free_knob: width
      - name: xnet
        family: xnet
        fixed: {depth: 4}
        free_knob: width
        search:
          xunit_kernel_size: {choices: [1, 3, 5, 7, 9]}

A **study** (``studies/*.yaml``) names the task and data, the search space, a budget, either a ``sweep`` (a grid
over a named quantity, the free knob re-solved so every point sits on the budget) or a ``search`` (TPE, NSGA-II),
the training fidelity, the seeds, the executor and the storage; ``profiles`` hold partial overrides merged over
the file (``archsearch run ... --profile paper``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ArchsearchError, SpecError, did_you_mean
from ..families import get_family
from ..schema import deep_merge, load_dataclass, load_yaml
from ..solver import METRICS, Budget


class ConfigError(SpecError):
    """A study or search-space file that breaks a rule (file, key path, allowed values)."""


# ---------------------------------------------------------------------------------------------------------
# search spaces
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamRange:
    """A searched argument: ``choices`` or an integer/float range ``low``..``high`` (``step``, ``log``)."""

    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if (self.choices is None) == (self.low is None or self.high is None):
            raise SpecError("", "give either `choices` or both `low` and `high`")
        if self.choices is not None and not self.choices:
            raise SpecError("choices", "must not be empty")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise SpecError("low", f"`low <= high` must hold, got low={self.low}, high={self.high}")

    @property
    def is_int(self) -> bool:
        return self.choices is None and float(self.low).is_integer() and float(self.high).is_integer() and (
            self.step is None or float(self.step).is_integer())


@dataclass(frozen=True)
class Design:
    name: str
    family: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    free_knob: str | None = None
    search: Mapping[str, ParamRange] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            fam = get_family(self.family)
        except ArchsearchError as err:
            raise SpecError("family", str(err)) from None
        allowed = fam.defaults
        for key in self.fixed:
            if key not in allowed:
                raise SpecError(f"fixed.{key}", f"is not an argument of family {self.family!r}"
                                                f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
        if self.free_knob is not None:
            if self.free_knob not in fam.knobs:
                raise SpecError("free_knob", f"must be a knob of family {self.family!r} "
                                             f"({', '.join(fam.knobs)}), got {self.free_knob!r}")
            if self.free_knob in self.fixed:
                raise SpecError("free_knob", f"{self.free_knob!r} is solved for the budget; remove it from `fixed`")
        ranges = {}
        for key, raw in self.search.items():
            if key not in allowed:
                raise SpecError(f"search.{key}", f"is not an argument of family {self.family!r}"
                                                 f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
            ranges[key] = raw if isinstance(raw, ParamRange) else load_dataclass(ParamRange, raw, f"search.{key}")
        object.__setattr__(self, "search", ranges)

    def accepts(self, argument: str) -> bool:
        return argument in get_family(self.family).defaults


@dataclass(frozen=True)
class SearchSpace:
    name: str
    designs: tuple[Design, ...]
    description: str = ""
    path: str = ""

    def design(self, name: str) -> Design:
        for d in self.designs:
            if d.name == name:
                return d
        names = [d.name for d in self.designs]
        raise ArchsearchError(f"unknown design {name!r}{did_you_mean(name, names)} in search space {self.name!r}; "
                              f"designs: {', '.join(names)}")


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError("", f"cannot read: {err.strerror}", file=str(path)) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError("", "malformed YAML: " + str(err).replace("\n", " "), file=str(path)) from None


def load_search_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    data = _read_yaml(path)
    try:
        if not isinstance(data, Mapping):
            raise SpecError("", f"must be a mapping with keys name, designs, description; got {type(data).__name__}")
        for key in data:
            if key not in ("name", "designs", "description"):
                raise SpecError(str(key), f"unknown key{did_you_mean(str(key), ['name', 'designs', 'description'])};"
                                          " allowed: name, designs, description")
        raw = data.get("designs")
        if not isinstance(raw, list) or not raw:
            raise SpecError("designs", f"must be a non-empty list of designs, got {raw!r}")
        designs = []
        for i, d in enumerate(raw):
            designs.append(load_dataclass(Design, d, f"designs[{i}]"))
        names = [d.name for d in designs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpecError("designs", f"design names must be unique, repeated: {', '.join(sorted(dup))}")
        return SearchSpace(str(data.get("name", path.stem)), tuple(designs), str(data.get("description", "")),
                           str(path))
    except SpecError as err:
        raise ConfigError(err.path, err.message, file=str(path)) from None


# ---------------------------------------------------------------------------------------------------------
# studies
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetConfig:
    metric: Literal["params", "macs"] = "params"
    value: float = 0.0
    tolerance: float | None = 0.05

    def __post_init__(self) -> None:
        if self.metric not in METRICS or not self.value > 0:
            raise SpecError("value", f"must be a positive number of {self.metric}, got {self.value}")

    def budget(self) -> Budget:
        return Budget(self.metric, self.value, self.tolerance)


@dataclass(frozen=True)
class SweepConfig:
    """A grid over ``over``: a family argument (``xunit_kernel_size``, ``sparsity_groups``, ``n_blocks``, ...) or
    ``activation_param_pct`` (targets reached by moving ``via``). Designs without the argument contribute one
    point each (the baselines, e.g. the ConvNet at 0%)."""

    over: str
    values: tuple[Any, ...]
    via: str | None = None
    pct_tolerance: float = 2.5  # percentage points

    def __post_init__(self) -> None:
        if not self.values:
            raise SpecError("values", "must list at least one value")
        if self.over == "activation_param_pct" and not self.via:
            raise SpecError("via", "a sweep over activation_param_pct needs `via` (e.g. xunit_kernel_size)")


@dataclass(frozen=True)
class SearchConfig:
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    n_trials: int = 20
    objectives: tuple[str, ...] = ("psnr",)
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "none"
    reduction_factor: int = 3  # successive halving / Hyperband (local) and ASHA (Ray): keep 1 in this many
    seed: int | None = None  # the sampler's seed; default: the study's first training seed

    def __post_init__(self) -> None:
        if self.reduction_factor < 2:
            raise SpecError("reduction_factor", f"must be an integer >= 2, got {self.reduction_factor}")
        allowed = ("psnr", "params", "macs", "latency")
        for i, o in enumerate(self.objectives):
            if o not in allowed:
                raise SpecError(f"objectives[{i}]", f"must be one of {', '.join(allowed)}, got {o!r}")
        if self.objectives[0] != "psnr":
            raise SpecError("objectives", f"must start with psnr, got {list(self.objectives)}")
        if self.n_trials < 1:
            raise SpecError("n_trials", f"must be >= 1, got {self.n_trials}")
        if len(self.objectives) > 1 and self.pruner != "none":
            raise SpecError("pruner", "pruning works for single-objective searches only (Optuna); use none")
        if self.sampler == "nsga2" and len(self.objectives) < 2:
            raise SpecError("objectives", "nsga2 is multi-objective: add params or macs, e.g. [psnr, params]")


@dataclass(frozen=True)
class DataConfig:
    """Dataset names (``embedded`` or one of the shared sets, resolved under ``data_root``) or folders."""

    train: str = "embedded"
    val: str = "embedded"
    test: str = "embedded"
    data_root: str | None = None
    val_images: int = 0  # 0: all


@dataclass(frozen=True)
class ExecutorConfig:
    kind: Literal["local", "ray"] = "local"
    workers: int = 1
    address: str | None = None  # ray: an existing cluster ("auto", "ray://host:10001"); none starts one
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise SpecError("workers", f"must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class LatencyConfig:
    """Inference latency measured at the end of every trial, on the training device, and stored with the trial
    (``latency_ms_per_mp``: Optuna's tools sort and plot it; ``latency`` can be a search objective)."""

    enabled: bool = True
    size: tuple[int, int] = (128, 128)
    warmup: int = 2
    repeats: int = 5

    def __post_init__(self) -> None:
        if len(self.size) != 2 or any(v < 8 for v in self.size):
            raise SpecError("size", f"must be [height, width], each >= 8, got {list(self.size)}")
        if self.warmup < 0 or self.repeats < 1:
            raise SpecError("repeats", f"need warmup >= 0 and repeats >= 1, got {self.warmup}, {self.repeats}")


@dataclass(frozen=True)
class ReferenceLine:
    """A published PSNR drawn across the study's Pareto plots (e.g. DnCNN-S's official weights on the same test
    set). Only meaningful where the study's task and test data are the reference's: put it in that profile."""

    label: str
    psnr: float
    source: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.psnr < 100:
            raise SpecError("psnr", f"must be a PSNR in dB (0, 100), got {self.psnr}")


@dataclass(frozen=True)
class StudyConfig:
    name: str
    search_space: str
    task: Mapping[str, Any] = field(default_factory=lambda: {"name": "denoise", "sigma": 25})
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig | None = None
    sweep: SweepConfig | None = None
    search: SearchConfig | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    references: tuple[Mapping[str, Any], ...] = ()  # ReferenceLine fields; validated below
    storage: str | None = None  # an SQLAlchemy URL; default: sqlite in the output folder
    output_dir: str | None = None  # default: runs/<name>
    description: str = ""
    fidelity: str = ""  # a line saying what scale this is (e.g. "CPU-scale proxy: ...")
    profiles: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.sweep is None) == (self.search is None):
            raise SpecError("sweep", "give exactly one of `sweep` (a grid) or `search` (TPE / NSGA-II)")
        if not self.seeds:
            raise SpecError("seeds", "must list at least one seed")
        object.__setattr__(self, "references", tuple(
            r if isinstance(r, ReferenceLine) else load_dataclass(ReferenceLine, r, f"references[{i}]")
            for i, r in enumerate(self.references)))
        if self.search is not None and "latency" in self.search.objectives and not self.latency.enabled:
            raise SpecError("latency.enabled", "the search minimises latency: it must be measured (true)")


@dataclass(frozen=True)
class Study:
    """A loaded study: the validated config, its search space, file paths and the chosen profile."""

    config: StudyConfig
    space: SearchSpace
    path: Path
    profile: str
    output_dir: Path
    storage_url: str
    source: Mapping[str, Any] | None = None  # the mapping a study was loaded from (None: from ``path``)

    @property
    def origin(self) -> str | Mapping[str, Any]:
        """What :func:`load_study` re-reads in a worker process: the file, or the mapping."""
        return self.source if self.source is not None else str(self.path)

    @property
    def name(self) -> str:
        return self.config.name if self.profile == "default" else f"{self.config.name}-{self.profile}"


def load_study(path: str | Path | Mapping[str, Any], profile: str | None = None,
               output_dir: str | Path | None = None) -> Study:
    """Load and validate a study file -- or a mapping holding what such a file would (its search-space path is
    then read from the working directory) -- and its search space; nothing is written. ``output_dir`` overrides
    the file's output folder (``--output-dir``), and with it the default SQLite ledger inside it."""
    source = None
    if isinstance(path, Mapping):
        source, data, path = dict(path), dict(path), Path("<mapping>")
    else:
        path = Path(path)
        data = _read_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError("", f"must be a mapping, got {type(data).__name__}", file=str(path))
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError("profiles", f"must be a mapping of profile names to overrides, got {profiles!r}",
                          file=str(path))
    chosen = profile or "default"
    if profile and profile != "default":
        if profile not in profiles:
            raise ConfigError("profiles", f"no profile {profile!r}{did_you_mean(profile, profiles)}; "
                                          f"defined: {', '.join(['default', *profiles]) }", file=str(path))
        override = profiles[profile]
        if not isinstance(override, Mapping):
            raise ConfigError(f"profiles.{profile}", "must be a mapping of overrides", file=str(path))
        data = deep_merge(data, override)
    try:
        config = load_dataclass(StudyConfig, data)
        _check_task_and_training(config)
    except SpecError as err:
        where = err.path if not (profile and profile != "default") else f"{err.path} (profile {profile!r})"
        raise ConfigError(where, err.message, file=str(path)) from None
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
        raise ConfigError(err.path, err.message, file=str(path)) from None
    if output_dir is not None:
        out = Path(output_dir)
    elif config.output_dir:
        out = Path(config.output_dir)
    else:
        out = Path("runs") / (config.name if chosen == "default" else f"{config.name}-{chosen}")
    storage = config.storage or f"sqlite:///{(out / 'ledger.db').resolve()}"
    from .storage import check_url

    problem = check_url(storage)
    if problem:
        raise ConfigError("storage", problem, file=str(path))
    return Study(config, space, path, chosen, out, storage, source)


def _check_task_and_training(config: StudyConfig) -> None:
    from ..tasks import make_task
    from ..training import TrainConfig

    try:
        make_task(**dict(config.task))
    except ArchsearchError as err:
        raise SpecError("task", str(err)) from None
    except TypeError as err:
        raise SpecError("task", str(err)) from None
    load_dataclass(TrainConfig, dict(config.training), "training")


def _check_against_space(config: StudyConfig, space: SearchSpace) -> None:
    for d in space.designs:
        if config.budget is not None and d.free_knob is None:
            raise SpecError("budget", f"design {d.name!r} of {space.path} has no free_knob to solve for the budget")
        if config.search is not None and config.budget is None and d.free_knob is not None:
            raise SpecError("budget", f"design {d.name!r} has a free_knob but the study gives no budget")
    if config.sweep is not None:
        sw = config.sweep
        arg = sw.via if sw.over == "activation_param_pct" else sw.over
        if not any(d.accepts(arg) for d in space.designs):
            raise SpecError("sweep.over" if sw.over != "activation_param_pct" else "sweep.via",
                            f"no design of {space.name!r} takes the argument {arg!r}")
        if config.budget is None:
            raise SpecError("budget", "a sweep re-solves the free knob on a budget: give `budget`")
    if config.search is not None:
        if not any(d.search for d in space.designs) and len(space.designs) < 2:
            raise SpecError("search", f"search space {space.name!r} has nothing to search (no `search` ranges)")
        if config.search.sampler == "nsga2" and config.budget is not None:
            # Multi-objective over size makes sense only if the size varies; a fixed budget pins it.
            raise SpecError("budget", "an NSGA-II search trades PSNR against size: leave `budget` out")
