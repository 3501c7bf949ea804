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

import itertools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..claims import Claim, check_points, load_claims, load_published_map
from ..errors import ArchsearchError, BudgetError, SpecError, did_you_mean
from ..families import Family, get_family
from ..schema import coerce, deep_merge, describe, load_dataclass, load_yaml, read_text_file
from ..solver import METRICS, Budget, Solution, solve
from ..spec import GraphSpec, check_name

#: The folder that holds every study's output folder by default (``runs/<study>``), relative to the working
#: directory. A derived output folder must resolve inside it.
RUNS_ROOT = Path("runs")

#: Seeds are 0 <= seed < 2**31 (NumPy, torch and Optuna accept them all).
MAX_SEED = 2**31


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
        for key in ("low", "high", "step"):
            v = getattr(self, key)
            if v is not None and not math.isfinite(v):
                raise SpecError(key, f"must be a finite number, got {v!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise SpecError("low", f"`low <= high` must hold, got low={self.low}, high={self.high}")
        if self.step is not None and not self.step > 0:
            raise SpecError("step", f"must be a number > 0, got {self.step!r}")
        if self.log and self.low is not None and not self.low > 0:
            raise SpecError("low", f"must be > 0 for a log range, got {self.low!r}")

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
        check_name(self.name, "name")
        try:
            fam = get_family(self.family)
        except ArchsearchError as err:
            raise SpecError("family", str(err)) from None
        allowed = fam.defaults
        for key in self.fixed:
            if key not in allowed:
                raise SpecError(f"fixed.{key}", f"is not an argument of family {self.family!r}"
                                                f"{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")
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
        # The arguments against the family's signature: type, then the family's own rules (range, odd kernels,
        # divisibility) by building the design with its defaults + these arguments (the free knob may move).
        earlier: dict[str, Any] = {}
        for key, value in self.fixed.items():  # each key with the ones before it: the error sits where it starts
            earlier[key] = check_argument(fam, earlier, key, value, f"fixed.{key}", self.free_knob)
        for key, rng in ranges.items():
            others = {k: _candidates(r) for k, r in ranges.items() if k != key}
            _check_range(fam, dict(self.fixed), key, rng, f"search.{key}", self.free_knob, others)

    def accepts(self, argument: str) -> bool:
        return argument in get_family(self.family).defaults

    def sweeps(self, argument: str) -> bool:
        """Whether a sweep over ``argument`` moves this design: it takes the argument and does not fix it (a
        design that fixes it -- or lacks it -- is a baseline: one point)."""
        return self.accepts(argument) and argument not in self.fixed


def argument_types(fam: Family) -> dict[str, Any]:
    """The annotated type of every argument of a family (``Any`` where there is none)."""
    hints = typing.get_type_hints(fam.fn)
    return {k: hints.get(k, Any) for k in fam.defaults}


def _knob_candidates(fam: Family, knob: str | None) -> list[int]:
    """A few values of the free knob to retry with when the default fails a rule that the knob may fix (e.g.
    channels divisible by a cardinality): the solver will look for such a value, so only all of them failing
    is an error."""
    if knob is None or knob not in fam.knobs:
        return []
    values = fam.knobs[knob].values()
    stride = max(1, len(values) // 16)
    picks = set(values[::stride][:17]) | {v for v in (12, 24, 36, 48, 60, 72, 96, 120, 144, 240, 360, 720)
                                           if v in values}
    return sorted(picks)


def check_argument(fam: Family, others: Mapping[str, Any], key: str, value: Any, path: str,
                   free_knob: str | None = None, *, design: str | None = None) -> Any:
    """``value`` for the argument ``key`` of ``fam``, checked: its annotated type (ints accepted for floats,
    floats finite), then the family's rules, by building the family with its defaults, ``others`` and
    ``key=value`` (retrying a few values of ``free_knob``, which the budget solver moves). Errors are
    :class:`SpecError` at ``path``."""
    tp = argument_types(fam).get(key, Any)
    ok, v = coerce(tp, value)
    whose = f"argument {key!r} of family {fam.name!r}" + (f" (design {design!r})" if design else "")
    if not ok:
        raise SpecError(path, f"must be {describe(tp)} ({whose}), got {value!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise SpecError(path, f"must be a finite number ({whose}), got {value!r}")
    args = {**others, key: v}
    first = _try_family(fam, args)
    if first is None:
        return v
    if free_knob is not None and free_knob not in args:
        for knob_value in _knob_candidates(fam, free_knob):
            if _try_family(fam, {**args, free_knob: knob_value}) is None:
                return v
    detail = first.message if first.path in (key, "") else f"{first.path}: {first.message}"
    raise SpecError(path, f"{key}={v!r} breaks a rule of family {fam.name!r}"
                          f"{f' (design {design!r})' if design else ''}: {detail}")


def _try_family(fam: Family, args: Mapping[str, Any]) -> SpecError | None:
    try:
        fam(**args)
    except SpecError as err:
        return err
    except (TypeError, ValueError, ZeroDivisionError) as err:  # a family without a rule for this value
        return SpecError("", f"is not accepted by family {fam.name!r} ({type(err).__name__}: {err})")
    return None


def _candidates(rng: ParamRange) -> list[Any]:
    """Values a searched argument can take, for checking another one jointly (choices, or a range's ends)."""
    if rng.choices is not None:
        return list(rng.choices)
    return [int(rng.low), int(rng.high)] if rng.is_int else [rng.low, rng.high]


#: Combinations of the other searched arguments tried before a searched value counts as breaking a rule.
JOINT_TRIES = 256


def _check_jointly(fam: Family, fixed: dict[str, Any], key: str, value: Any, path: str, free_knob: str | None,
                   others: dict[str, list[Any]]) -> None:
    """A searched value is valid when some combination of the other searched arguments' values makes the design
    valid (``kernel_size: 7`` is fine beside ``stride: [2, 4, 6]`` though not beside the default stride 8)."""
    try:
        check_argument(fam, fixed, key, value, path, free_knob)
    except SpecError:
        tp = argument_types(fam).get(key, Any)
        ok, v = coerce(tp, value)
        if ok and others:
            for combo in itertools.islice(itertools.product(*others.values()), JOINT_TRIES):
                if _try_family(fam, {**fixed, **dict(zip(others, combo)), key: v}) is None:
                    return
        raise


def _check_range(fam: Family, fixed: dict[str, Any], key: str, rng: ParamRange, path: str,
                 free_knob: str | None, others: dict[str, list[Any]] | None = None) -> None:
    tp = argument_types(fam).get(key, Any)
    others = others or {}
    if rng.choices is not None:
        for j, choice in enumerate(rng.choices):
            _check_jointly(fam, fixed, key, choice, f"{path}.choices[{j}]", free_knob, others)
        return
    if tp is int:
        if not rng.is_int:
            raise SpecError(path, f"{key!r} is an integer argument: give integer low, high and step, got low="
                                  f"{rng.low}, high={rng.high}, step={rng.step}")
        values = range(int(rng.low), int(rng.high) + 1, int(rng.step or 1))  # type: ignore[arg-type]
        sample = values if len(values) <= 256 else [values[0], values[-1]]
        for v in sample:
            _check_jointly(fam, fixed, key, v, path, free_knob, others)
    elif tp is float:
        for end in ("low", "high"):
            check_argument(fam, fixed, key, getattr(rng, end), f"{path}.{end}", free_knob)
    else:
        raise SpecError(path, f"{key!r} is {describe(tp)}: search it with `choices`, not low/high")


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
    """The YAML of a study or search-space file; every problem (missing, a folder, not UTF-8, binary, malformed,
    a repeated key) is one :class:`ConfigError` naming the file."""
    import yaml

    try:
        text = read_text_file(path, "YAML file")
        return load_yaml(text, file=str(path))
    except SpecError as err:
        raise ConfigError(err.path, err.message, file=str(path)) from None
    except yaml.YAMLError as err:
        raise ConfigError("", "malformed YAML: " + " ".join(str(err).split()), file=str(path)) from None
    except RecursionError:
        raise ConfigError("", "malformed YAML: nested too deeply", file=str(path)) from None


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
        if "name" in data:
            check_name(data["name"], "name")
        if not isinstance(data.get("description", ""), str):
            raise SpecError("description", f"must be a string, got {data['description']!r}")
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
        if self.metric not in METRICS or not self.value > 0 or not math.isfinite(self.value):
            raise SpecError("value", f"must be a finite positive number of {self.metric}, got {self.value}")
        if self.tolerance is not None and not 0 <= self.tolerance < 1:
            raise SpecError("tolerance", f"must be a fraction in [0, 1) (0.05: within 5%) or null, got "
                                         f"{self.tolerance!r}")

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
        if not (math.isfinite(self.pct_tolerance) and self.pct_tolerance > 0):
            raise SpecError("pct_tolerance", f"must be a finite number of percentage points > 0, got "
                                             f"{self.pct_tolerance!r}")
        seen: list[Any] = []
        for i, v in enumerate(self.values):
            if isinstance(v, (Mapping, list, tuple)) or v is None:
                raise SpecError(f"values[{i}]", f"must be a number, a string or true/false, got {v!r}")
            if self.over == "activation_param_pct":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                    raise SpecError(f"values[{i}]", f"must be a percentage in 0..100, got {v!r}")
            if any(type(v) is type(w) and v == w for w in seen):
                raise SpecError(f"values[{i}]", f"repeats the value {v!r}; each grid value once")
            seen.append(v)


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
        if len(set(self.objectives)) != len(self.objectives):
            raise SpecError("objectives", f"must not repeat an objective, got {list(self.objectives)}")
        if not 1 <= self.n_trials <= 1_000_000:
            raise SpecError("n_trials", f"must be an integer in 1..1,000,000, got {self.n_trials}")
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

    def __post_init__(self) -> None:
        for key in ("train", "val", "test"):
            if not getattr(self, key).strip():
                raise SpecError(key, "must name a dataset (default, a standard set or a folder), got ''")
        if self.data_root is not None and not self.data_root.strip():
            raise SpecError("data_root", "must be a folder or null, got ''")
        if self.val_images < 0:
            raise SpecError("val_images", f"must be an integer >= 0 (0: all the validation images), got "
                                          f"{self.val_images}")


@dataclass(frozen=True)
class ExecutorConfig:
    kind: Literal["local", "ray"] = "local"
    workers: int | Literal["auto"] = "auto"  # auto: the runner picks the worker x thread layout from the machine
    address: str | None = None  # ray: an existing cluster ("auto", "ray://host:10001"); none starts one
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    def __post_init__(self) -> None:
        if self.workers != "auto" and not 1 <= self.workers <= 1024:
            raise SpecError("workers", f"must be auto or an integer in 1..1024, got {self.workers}")
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise SpecError("cpus_per_trial", f"must be a finite number > 0, got {self.cpus_per_trial!r}")
        if not (math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise SpecError("gpus_per_trial", f"must be a finite number >= 0, got {self.gpus_per_trial!r}")
        if self.address is not None and not self.address.strip():
            raise SpecError("address", "must be a Ray address (auto, ray://host:port) or null, got ''")


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
    published: Mapping[str, str] | None = field(default_factory=dict)  # point -> published row id (archsearch.claims)
    claims: Any = ()  # a list of claims (Claim fields); validated below (archsearch.claims)
    profiles: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        if (self.sweep is None) == (self.search is None):
            raise SpecError("sweep", "give exactly one of `sweep` (a grid) or `search` (TPE / NSGA-II)")
        if not self.seeds:
            raise SpecError("seeds", "must list at least one seed")
        for i, seed in enumerate(self.seeds):
            if not 0 <= seed < MAX_SEED:
                raise SpecError(f"seeds[{i}]", f"must be an integer with 0 <= seed < 2**31, got {seed}")
            if seed in self.seeds[:i]:
                raise SpecError(f"seeds[{i}]", f"repeats the seed {seed}; each seed once")
        if not self.search_space.strip():
            raise SpecError("search_space", "must name a search-space file, got ''")
        if self.output_dir is not None and not self.output_dir.strip():
            raise SpecError("output_dir", "must be a folder or null (default runs/<name>), got ''")
        for key, value in _walk(self.task, "task"):
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(key, f"must be a finite number, got {value!r}")
        if self.storage is not None:
            check_storage(self.storage)
        object.__setattr__(self, "references", tuple(
            r if isinstance(r, ReferenceLine) else load_dataclass(ReferenceLine, r, f"references[{i}]")
            for i, r in enumerate(self.references)))
        if self.search is not None and "latency" in self.search.objectives and not self.latency.enabled:
            raise SpecError("latency.enabled", "the search minimises latency: it must be measured (true)")
        object.__setattr__(self, "published", load_published_map({} if self.published is None else self.published))
        claims = () if self.claims is None else self.claims
        if not (isinstance(claims, tuple) and all(isinstance(c, Claim) for c in claims)):
            claims = load_claims(claims)
        object.__setattr__(self, "claims", claims)


def _walk(value: Any, path: str):
    """(key path, value) of every leaf of nested mappings and lists."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def check_storage(url: Any) -> None:
    """Raise :class:`SpecError` at ``storage`` unless ``url`` can hold a ledger (:func:`.storage.check_url`: the
    allowed dialects and drivers, a file for SQLite, a database name for servers). The message shows the URL
    with its password masked, never the password."""
    from .storage import check_url

    problem = check_url(url) if isinstance(url, str) else "must be a database URL (a string) or null"
    if problem:
        raise SpecError("storage", problem)


def hide_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (:func:`.storage.mask_url`)."""
    from .storage import mask_url

    return mask_url(url)


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

    @property
    def storage_display(self) -> str:
        """The ledger URL with any password hidden: use this in messages, never ``storage_url``."""
        return hide_password(self.storage_url)


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
        _check_task_and_training(config)
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
    if config.claims or config.published:
        _check_claim_points(config, space, path, chosen, profiles, base)
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
    from .storage import check_url

    problem = check_url(storage)
    if problem:
        raise ConfigError("storage", problem, file=str(path))
    return Study(config, space, path, chosen, out, storage, source)


def _planned_points(config: StudyConfig, space: SearchSpace, path: Path) -> list[tuple[str, Any]]:
    """(label, sweep value) of every planned grid point of a sweep, feasible or off the budget (the solver runs;
    nothing is built)."""
    study = Study(config, space, path, "default", Path("."), "")
    points, infeasible = plan_sweep(study)
    return [(p.label, p.sweep_value) for p in points] + [(i["label"], i.get("sweep_value")) for i in infeasible]


def _check_claim_points(config: StudyConfig, space: SearchSpace, path: Path, chosen: str,
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
                plans[origin] = _planned_points(config, space, path) if config.sweep is not None else []
            else:  # the default profile's config and search space
                try:
                    base_config = load_dataclass(StudyConfig, base)
                except SpecError as err:
                    raise ConfigError(err.path, err.message, file=str(path)) from None
                base_space = space if base_config.search_space == config.search_space else \
                    load_search_space((path.parent / base_config.search_space).resolve())
                plans[origin] = _planned_points(base_config, base_space, path) \
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


def task_error(err: Exception, keys, where) -> SpecError:
    """A task's error (``sigma must be in (0, 255], got 300``) at the setting that caused it: ``where(key)`` for
    the first word when it is one of ``keys`` (``task.sigma``, ``--sigma``), else ``where("")``."""
    text = str(err)
    key, _, rest = text.partition(" ")
    if key in keys and rest:
        return SpecError(where(key), rest)
    return SpecError(where(""), text)


def _check_task_and_training(config: StudyConfig) -> None:
    from ..tasks import make_task
    from ..training import TrainConfig

    try:
        make_task(**dict(config.task))
    except ArchsearchError as err:
        raise task_error(err, [k for k in config.task if k != "name"],
                         lambda k: f"task.{k}" if k else "task") from None
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
        if not any(d.sweeps(arg) for d in space.designs):
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
        for d in space.designs:
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


def check_study_data(study: Study, task: Any, train: list, val: list, test: list) -> None:
    """The study's images against its settings, before anything is written: training images at least one
    training patch (``training.patch_size``), validation images (after ``training.val_crop``) and test images
    at least the SSIM window after the SR border. Raises :class:`ConfigError` naming the study file, the key
    and the image file."""
    from ..data import DataError, check_images
    from ..schema import load_dataclass
    from ..training import TrainConfig

    c = study.config
    config = load_dataclass(TrainConfig, dict(c.training), "training")
    scales = set()
    for d in study.space.designs:
        fam = get_family(d.family)
        err = _try_family(fam, dict(d.fixed))
        if err is None:
            scales.add(fam(**dict(d.fixed)).scale)
    factor = max((task.input_factor(s) for s in scales), default=1)
    multiple = int(getattr(task, "scale", 1) or 1)
    checks = [(train, "training", "training.patch_size", dict(patch_size=config.patch_size, factor=factor)),
              (val, "validation", "training.val_crop" if config.val_crop else "data.val",
               dict(crop=config.val_crop, factor=factor, border=task.border)),
              (test, "test", "data.test", dict(factor=factor, border=task.border))]
    for images, role, key, kw in checks:
        if role == "validation" and not images:
            continue
        try:
            check_images(images, role=role, multiple=multiple, key=key, **kw)
        except DataError as err:
            raise ConfigError(key, str(err), file=str(study.path)) from None


# ---------------------------------------------------------------------------------------------------------
# planning: the sweep's grid points (solved onto the budget; nothing is built). Here, beside the config it
# reads, because loading a study checks its claims against these points.
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One grid point of a sweep at one seed. ``key`` is stable across runs (resume never duplicates it)."""

    design: str
    arguments: tuple[tuple[str, Any], ...]
    seed: int
    label: str
    sweep_value: Any

    @property
    def key(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.arguments)
        return f"{self.design}|{args}|seed={self.seed}"

    @property
    def params(self) -> dict[str, Any]:
        return {"design": self.design, **dict(self.arguments), "seed": self.seed}


def solve_design(study: Study, design: Design, arguments: dict[str, Any], *,
                 target_pct: float | None = None, via: str | None = None) -> Solution | GraphSpec:
    """The design's spec on the study's budget (a :class:`Solution`), or its spec as is without a budget."""
    fixed = {**design.fixed, **arguments}
    if study.config.budget is None:
        return get_family(design.family)(**fixed)
    budget = study.config.budget.budget()
    if target_pct is not None and via is not None:
        return solve(design.family, design.free_knob, budget, fixed, target_activation_pct=target_pct, via=via)
    return solve(design.family, design.free_knob, budget, fixed)


def plan_sweep(study: Study) -> tuple[list[Point], list[dict[str, Any]]]:
    """The sweep's points (every feasible design x value x seed) and the infeasible ones with reasons."""
    sw = study.config.sweep
    assert sw is not None
    cells: list[tuple[Design, dict[str, Any], Any, str]] = []  # design, arguments, sweep value, label
    infeasible: list[dict[str, Any]] = []
    seen: dict[str, str] = {}

    def add(design: Design, args: dict[str, Any], value: Any, sol) -> None:
        spec = sol.spec if isinstance(sol, Solution) else sol
        label = design.name + "".join(f" {k}={v}" for k, v in args.items())
        if spec.hash in seen:
            infeasible.append({"design": design.name, "sweep_value": value, "label": label,
                               "reason": f"same architecture as {seen[spec.hash]!r} (spec {spec.hash})"})
            return
        seen[spec.hash] = label
        cells.append((design, args, value, label))

    if sw.over == "activation_param_pct":
        for target in sw.values:
            best = None
            for design in study.space.designs:
                try:
                    if design.sweeps(sw.via):
                        sol = solve_design(study, design, {}, target_pct=float(target), via=sw.via)
                        args = {sw.via: sol.arguments[sw.via]}
                    else:
                        sol, args = solve_design(study, design, {}), {}
                except (BudgetError, SpecError) as err:
                    infeasible.append({"design": design.name, "sweep_value": target, "label": design.name,
                                       "reason": str(err)})
                    continue
                pct = sol.counts.activation_param_pct if isinstance(sol, Solution) else 0.0
                if best is None or abs(pct - target) < abs(best[3] - target):
                    best = (design, args, sol, pct)
            if best is None:
                continue
            if abs(best[3] - target) > sw.pct_tolerance:
                infeasible.append({"design": best[0].name, "sweep_value": target, "label": f"{target}%",
                                   "reason": f"closest activation share is {best[3]:.2f}% (tolerance "
                                             f"{sw.pct_tolerance} points)"})
                continue
            add(best[0], best[1], target, best[2])
    else:
        baselines_done: set[str] = set()
        for value in sw.values:
            for design in study.space.designs:
                if design.sweeps(sw.over):
                    args = {sw.over: value}
                elif design.name in baselines_done:
                    continue
                else:
                    args = {}
                    baselines_done.add(design.name)
                try:
                    sol = solve_design(study, design, args)
                except (BudgetError, SpecError) as err:
                    infeasible.append({"design": design.name, "sweep_value": value if args else None,
                                       "label": design.name + "".join(f" {k}={v}" for k, v in args.items()),
                                       "reason": str(err)})
                    continue
                add(design, args, value if args else None, sol)
    points = [Point(d.name, tuple(sorted(a.items())), seed, label, value)
              for d, a, value, label in cells for seed in study.config.seeds]
    return points, infeasible


# ---------------------------------------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------------------------------------
