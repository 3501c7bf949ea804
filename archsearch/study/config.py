"""A study's configuration (``studies/*.yaml``) as typed, frozen objects, and :class:`Study`, the loaded study.

A study names the task and data, the search space, a budget, either a ``sweep`` (a grid over a named quantity,
the free knob re-solved so every point sits on the budget) or a ``search`` (TPE, NSGA-II), the training
fidelity, the seeds, the executor and the storage; ``profiles`` hold partial overrides merged over the file
(``archsearch run ... --profile paper``). Loading (profiles, output folder, cross-checks): :mod:`.loader`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..claims import MIN_SEEDS, Claim, load_claims, load_published_map
from ..errors import SpecError
from ..schema import load_dataclass
from ..solver import METRICS, Budget
from ..spec import check_name
from ..tasks import Task
from ..tracking import TrackingConfig
from ..training import MAX_SEED, TrainConfig
from .space import SearchSpace
from .storage import check_url, mask_url

#: The folder that holds every study's output folder by default (``runs/<study>``), relative to the working
#: directory. A derived output folder must resolve inside it.
RUNS_ROOT = Path("runs")


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


#: ``sweep: {over: designs}``: every design of the search space once, as it is (no argument swept).
DESIGNS = "designs"


@dataclass(frozen=True)
class SweepConfig:
    """A grid over ``over``: a family argument (``xunit_kernel_size``, ``sparsity_groups``, ``n_blocks``, ...) or
    ``activation_param_pct`` (targets reached by moving ``via``). Designs without the argument contribute one
    point each (the baselines, e.g. the ConvNet at 0%)."""

    over: str
    values: tuple[Any, ...] = ()
    via: str | None = None
    pct_tolerance: float = 2.5  # percentage points

    def __post_init__(self) -> None:
        if self.over == DESIGNS:  # one point per design, nothing swept (e.g. published checkpoints side by side)
            if self.values or self.via:
                raise SpecError("values" if self.values else "via", "a sweep over `designs` runs each design once: "
                                                                   "give no `values` and no `via`")
            return
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


#: A cap on ``data.test_draws`` (each draw costs one more test pass per trial and seed).
MAX_TEST_DRAWS = 100


@dataclass(frozen=True)
class DataConfig:
    """Dataset names (``embedded`` or one of the shared sets, resolved under ``data_root``) or folders.
    ``test_draws``: noise draws per test image (draw d seeded with d; :func:`archsearch.evaluate.evaluate`)."""

    train: str = "embedded"
    val: str = "embedded"
    test: str = "embedded"
    data_root: str | None = None
    val_images: int = 0  # 0: all
    # 1 when absent, so a study file written before the key has the fingerprint it had (config_body leaves the
    # default out) and its ledger, all of one draw, resumes; the shipped studies set 3
    test_draws: int = 1
    # the test protocol (archsearch.evaluate): `dncnn` scores as the DnCNN authors' test script does (one fixed
    # draw, float output), so published checkpoints are compared on the numbers their papers report
    protocol: Literal["default", "dncnn"] = "default"

    def __post_init__(self) -> None:
        for key in ("train", "val", "test"):
            if not getattr(self, key).strip():
                raise SpecError(key, "must name a dataset (default, a standard set or a folder), got ''")
        if self.data_root is not None and not self.data_root.strip():
            raise SpecError("data_root", "must be a folder or null, got ''")
        if self.val_images < 0:
            raise SpecError("val_images", f"must be an integer >= 0 (0: all the validation images), got "
                                          f"{self.val_images}")
        if not 1 <= self.test_draws <= MAX_TEST_DRAWS:
            raise SpecError("test_draws", f"must be an integer in 1..{MAX_TEST_DRAWS} (noise draws per test image), "
                                          f"got {self.test_draws}")
        if self.protocol == "dncnn" and self.test_draws != 1:
            raise SpecError("test_draws", f"the dncnn protocol has one fixed noise draw (its noise ignores the seed): "
                                          f"use test_draws 1 or protocol default, got {self.test_draws}")


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
class SequentialConfig:
    """Sequential seeding (``sequential:``): seeds are added in planned stages -- stage k trains the first
    ``stages[k]`` seeds of ``seeds`` -- until every claim is decided or the last stage is reached; each look tests
    at the level the error-spending function (``spending``) gives it, so that the looks together keep the
    one-sided 2.5% (archsearch.claims.stats.stage_levels)."""

    stages: tuple[int, ...] = (3, 5, 10)
    spending: Literal["pocock", "obrien_fleming"] = "pocock"

    def __post_init__(self) -> None:
        if not self.stages:
            raise SpecError("stages", "must list at least one stage (seeds per stage), e.g. [3, 5, 10]")
        if self.stages[0] < MIN_SEEDS:
            raise SpecError("stages[0]", f"must be at least {MIN_SEEDS} (fewer shared seeds decide nothing), got "
                                         f"{self.stages[0]}")
        for i in range(1, len(self.stages)):
            if self.stages[i] <= self.stages[i - 1]:
                raise SpecError(f"stages[{i}]", f"must exceed the stage before ({self.stages[i - 1]}): stages add "
                                                f"seeds, got {self.stages[i]}")


@dataclass(frozen=True)
class PruningConfig:
    """Paired-seed rung pruning (``pruning:``; :mod:`archsearch.study.pruning`): at each rung a design stops when
    the one-sided (1 - ``alpha``) upper bound of its paired difference with its group's leader is below
    ``tolerance`` dB (0: shown worse; 0.1: shown at most 0.1 dB better -- near-ties of the leader stop too, and
    the result is within the tolerance of them). ``rungs``: training steps (default: the validation steps from a
    third of the schedule on); ``group_by``: design arguments (or ``design``) whose values make the groups that
    are compared, e.g. a budget; ``lockstep``: ``study`` (a sweep: every queued design point trains rung by rung
    together, so any of them can be stopped) or ``design`` (a design's seeds together, compared with the designs
    trained before it; what a search does)."""

    rungs: tuple[int, ...] = ()
    alpha: float = 0.05
    tolerance: float = 0.0
    group_by: tuple[str, ...] = ()
    lockstep: Literal["study", "design"] = "study"

    def __post_init__(self) -> None:
        for i, r in enumerate(self.rungs):
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise SpecError(f"rungs[{i}]", f"must be a training step >= 1, got {r!r}")
        if len(set(self.rungs)) != len(self.rungs):
            raise SpecError("rungs", f"must not repeat a step, got {list(self.rungs)}")
        object.__setattr__(self, "rungs", tuple(sorted(self.rungs)))
        if not 0 < self.alpha < 0.5:
            raise SpecError("alpha", f"must be a level in (0, 0.5), e.g. 0.05, got {self.alpha!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise SpecError("tolerance", f"must be a number of dB >= 0, got {self.tolerance!r}")
        for i, g in enumerate(self.group_by):
            if not isinstance(g, str) or not g:
                raise SpecError(f"group_by[{i}]", f"must be a design argument's name or 'design', got {g!r}")


@dataclass(frozen=True)
class ReferenceLine:
    """A published PSNR drawn on the study's Pareto plots (e.g. DnCNN-S's official weights on the same test
    set): a dashed line across them, or -- with the model's ``n_params`` / ``macs_per_pixel`` -- a reference
    point at its size on the plot of that axis (a published checkpoint beside the searched designs). Only
    meaningful where the study's task and test data are the reference's: put it in that profile."""

    label: str
    psnr: float
    source: str = ""
    n_params: int | None = None
    macs_per_pixel: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.psnr < 100:
            raise SpecError("psnr", f"must be a PSNR in dB (0, 100), got {self.psnr}")
        for key in ("n_params", "macs_per_pixel"):
            v = getattr(self, key)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise SpecError(key, f"must be the reference model's size, a number > 0, got {v!r}")


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
    sequential: SequentialConfig | None = None  # seeds added in stages until the claims are decided
    pruning: PruningConfig | None = None  # paired-seed rung pruning (archsearch.study.pruning)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    # TensorBoard / MLflow curves per trial (archsearch.tracking); not in the config fingerprint: where curves
    # are logged changes no result, so turning it on or off never blocks resuming a ledger
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    references: tuple[Mapping[str, Any], ...] = ()  # ReferenceLine fields; validated below
    storage: str | None = None  # an SQLAlchemy URL; default: sqlite in the output folder
    output_dir: str | None = None  # default: runs/<name>
    description: str = ""
    fidelity: str = ""  # a line saying what scale this is (e.g. "CPU-scale proxy: ...")
    published: Mapping[str, str] | None = field(default_factory=dict)  # point -> published row id (archsearch.claims)
    claims: Any = ()  # a list of claims (Claim fields); validated below (archsearch.claims)
    # what the claims' paired intervals pair over: the seeds (trained designs), or the test images of one seed
    # (published checkpoints: the replicates are images; the noise draw is fixed). Not in the fingerprint.
    replicates: Literal["seeds", "images"] = "seeds"
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
        if self.replicates == "images" and (len(self.seeds) != 1 or self.sequential is not None):
            raise SpecError("replicates", f"`images` pairs the claims over the test images of one seed: list one "
                                          f"seed (and no `sequential`), got seeds {list(self.seeds)}")
        if self.sequential is not None:
            if self.sweep is None:
                raise SpecError("sequential", "needs a `sweep`: a search trains every seed inside each trial")
            if self.sequential.stages[-1] > len(self.seeds):
                raise SpecError("sequential.stages", f"the last stage trains {self.sequential.stages[-1]} seeds, but "
                                                     f"`seeds` lists {len(self.seeds)}: list at least that many")
        if self.pruning is not None:
            if len(self.seeds) < 2 or self.replicates == "images":
                raise SpecError("pruning", f"compares designs on paired seeds: list at least 2 seeds, got "
                                           f"{list(self.seeds)}")
            if self.search is not None and self.pruning.lockstep == "study":
                raise SpecError("pruning.lockstep", "a search proposes its trials one after another: use `design` "
                                                    "(each trial's seeds in lockstep)")
            if self.executor.kind == "ray" and self.sweep is not None:
                raise SpecError("pruning", "a sweep's lockstep runs in one local worker: use executor.kind local")
            if self.search is not None and self.search.pruner != "none":
                raise SpecError("search.pruner", f"is {self.search.pruner!r}, and `pruning` is set: use one (none here "
                                                 "and `pruning` for the paired-seed rule)")
        if not self.search_space.strip():
            raise SpecError("search_space", "must name a search-space file, got ''")
        if self.output_dir is not None and not self.output_dir.strip():
            raise SpecError("output_dir", "must be a folder or null (default runs/<name>), got ''")
        for key, value in _walk(self.task, "task"):
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(key, f"must be a finite number, got {value!r}")
        if self.storage is not None:
            check_storage_url(self.storage)
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


def check_storage_url(url: Any) -> None:
    """Raise :class:`SpecError` at ``storage`` unless ``url`` can hold a ledger (:func:`.storage.check_url`: the
    allowed dialects and drivers, a file for SQLite, a database name for servers). The message shows the URL
    with its password masked, never the password."""
    problem = check_url(url) if isinstance(url, str) else "must be a database URL (a string) or null"
    if problem:
        raise SpecError("storage", problem)


# a sweep's plan, made by :func:`.sweep.plan_sweep` at load and carried by the Study
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


@dataclass(frozen=True)
class SweepPlan:
    """A sweep's points (every feasible design x value x seed) and the grid points off the budget, with reasons."""

    points: tuple[Point, ...]
    infeasible: tuple[dict[str, Any], ...]

    def labelled(self) -> list[tuple[str, Any]]:
        """(label, sweep value) of every planned grid point, feasible or off the budget (claims name these)."""
        return [(p.label, p.sweep_value) for p in self.points] + \
            [(i["label"], i.get("sweep_value")) for i in self.infeasible]


@dataclass(frozen=True)
class Study:
    """A loaded study: the validated config, its search space, file paths and the chosen profile -- and what they
    imply, built once at load: the typed ``task`` and training config ``train``, and a sweep's ``plan`` (its grid
    points on the budget; None for a search). Workers and Ray trials receive this object; nothing re-plans."""

    config: StudyConfig
    space: SearchSpace
    path: Path
    profile: str
    output_dir: Path
    storage_url: str
    task: Task
    train: TrainConfig
    plan: SweepPlan | None = None

    @property
    def name(self) -> str:
        return self.config.name if self.profile == "default" else f"{self.config.name}-{self.profile}"

    def output_path(self, stored: str | Path) -> Path:
        """A path the ledger stores (``spec_path``, ``checkpoint``): relative to the output folder, or -- in
        ledgers written before paths were stored that way -- absolute or relative to where ``run`` started."""
        p = Path(stored)
        if p.is_absolute():
            return p
        inside = Path(self.output_dir) / p
        return inside if inside.exists() or not p.exists() else p

    @property
    def storage_display(self) -> str:
        """The ledger URL with any password hidden: use this in messages, never ``storage_url``."""
        return mask_url(self.storage_url)


def config_body(study: Study) -> dict[str, Any]:
    """What must not change under a running ledger: everything that defines the trials' results, as plain data
    (stored in the ledger, so that a reader can say which setting differs)."""
    c = study.config
    data = dict(c.data.__dict__)
    # defaults stay out: files written before the keys keep their fingerprint
    if data["test_draws"] == 1:
        del data["test_draws"]
    if data["protocol"] == "default":
        del data["protocol"]
    body = {
        "task": dict(c.task), "data": data, "budget": c.budget.__dict__ if c.budget else None,
        "sweep": c.sweep.__dict__ if c.sweep else None, "search": c.search.__dict__ if c.search else None,
        "training": dict(c.training), "space": [_design_key(d) for d in study.space.designs],
    }
    if c.pruning is not None:  # which trials finish: a ledger pruned under one rule is not another's
        body["pruning"] = c.pruning.__dict__
    return json.loads(json.dumps(body, sort_keys=True, default=str))


def _design_key(design) -> str:
    """A design in the fingerprint: its repr, and for a published checkpoint the weights file and its digest."""
    if not design.published:
        return repr(design)
    return f"{design!r} weights={design.weights!r} sha256={design.sha256!r}"


def config_fingerprint(study: Study) -> str:
    """The hash of :func:`config_body` (the same digest as ledgers written before the body was stored)."""
    return hashlib.sha256(json.dumps(config_body(study), sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any], limit: int = 3) -> list[str]:
    """``key.path: ledger X, study file Y`` for the settings that differ (the first ``limit``)."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        elif a != b:
            out.append(f"{path}: {a!r} in the ledger, {b!r} in the study file" if path != "space" else
                       "the search space's designs differ")

    walk(stored, current, "")
    return out
