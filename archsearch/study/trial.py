"""Grid planning and the execution of one trial: solve the budget, build, train, evaluate, record.

Everything a trial needs is read from the :class:`~archsearch.study.schema.Study` and the trial's parameters, so
the same function runs in the local executor, in its worker processes and inside Ray Tune.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchsearchError, BudgetError, SpecError
from ..families import get_family
from ..solver import Solution, solve
from ..spec import GraphSpec
from .schema import Design, Study


# ---------------------------------------------------------------------------------------------------------
# planning
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
                    if design.accepts(sw.via):
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
                if design.accepts(sw.over):
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
class TrialFailed(ArchsearchError):
    """A trial that ended without a result (diverged, infeasible, error); ``reason`` goes to the ledger."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TrialPruned(Exception):
    """Raised when the pruner stops a trial at an intermediate validation step."""


_DATA_CACHE: dict[tuple[str, str, str], Any] = {}


def _datasets(study: Study):
    """Task and images, loaded once per process (every trial of a study sees the same images and noise)."""
    from .ledger import config_fingerprint

    key = (str(study.path), study.profile, config_fingerprint(study))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = _load_datasets(study)
    return _DATA_CACHE[key]


def _load_datasets(study: Study):
    from ..data import load_dataset
    from ..tasks import make_task

    c = study.config
    task = make_task(**dict(c.task))
    root = c.data.data_root
    train = load_dataset(c.data.train, color=task.color, data_root=root, split="train")
    val = load_dataset(c.data.val, color=task.color, data_root=root, split="val")
    if c.data.val_images:
        val = val[: c.data.val_images]
    test = load_dataset(c.data.test, color=task.color, data_root=root, split="test")
    return task, train, val, test


def execute(study: Study, design_name: str, arguments: dict[str, Any], seed: int, *, report=None,
            trial_number: int | None = None, progress: bool = False, on_spec=None) -> dict[str, Any]:
    """Run one trial and return its attributes (counts, metrics, timings, paths).

    ``on_spec(attrs)`` receives the spec's attributes (hash, path, counts) before training starts, so a trial that
    is later pruned or fails still records what it was. ``report(step, val_psnr)`` is called at each validation
    step; it raises :class:`TrialPruned` to stop.
    Raises :class:`TrialFailed` with a reason when the budget cannot be met or training diverges.
    """
    import torch

    from ..builder import build
    from ..evaluate import evaluate
    from ..schema import load_dataclass
    from ..training import TrainConfig, train

    t_start = time.perf_counter()
    design = study.space.design(design_name)
    try:
        sol = solve_design(study, design, arguments)
    except (BudgetError, SpecError) as err:
        raise TrialFailed(f"infeasible: {err}") from None
    spec = sol.spec if isinstance(sol, Solution) else sol
    from ..counting import count

    counts = count(spec)
    out = study.output_dir
    spec_path = out / "specs" / f"{spec.hash}.yaml"
    if not spec_path.exists():
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec.save(spec_path)
    attrs: dict[str, Any] = {
        "design": design.name, "seed": seed, "spec_hash": spec.hash, "spec_path": str(spec_path),
        "n_params": counts.params, "macs_per_pixel": counts.macs_per_pixel,
        "activation_param_pct": counts.activation_param_pct,
        "arguments": {k: v for k, v in (sol.arguments if isinstance(sol, Solution) else {**design.fixed,
                                                                                          **arguments}).items()},
    }
    if on_spec is not None:
        on_spec(dict(attrs))
    task, train_images, val_images, test_images = _datasets(study)
    config = load_dataclass(TrainConfig, {"progress": progress, **dict(study.config.training), "seed": seed},
                            "training")
    torch.manual_seed(seed)
    model = build(spec)
    t_overhead = time.perf_counter() - t_start
    t0 = time.perf_counter()
    result = train(model, task, train_images, val_images, config, report=report)
    attrs["train_time_s"] = time.perf_counter() - t0
    attrs["steps"] = result.steps
    attrs["steps_per_second"] = result.steps_per_second
    if result.diverged:
        raise TrialFailed(f"diverged: {result.reason}")
    attrs["val_psnr"] = result.final_val_psnr
    t1 = time.perf_counter()
    ev = evaluate(model, task, test_images, seed=0)
    attrs["eval_time_s"] = time.perf_counter() - t1
    if not math.isfinite(ev.psnr):
        raise TrialFailed(f"diverged: test PSNR is {ev.psnr}")
    attrs["psnr"], attrs["ssim"], attrs["n_test_images"] = ev.psnr, ev.ssim, ev.n_images
    t2 = time.perf_counter()
    ckpt = out / "checkpoints" / (f"trial_{trial_number}.safetensors" if trial_number is not None
                                  else f"{spec.hash}_seed{seed}.safetensors")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(ckpt),
              metadata={"spec_hash": spec.hash, "spec_path": str(spec_path)})
    attrs["checkpoint"] = str(ckpt)
    attrs["overhead_s"] = t_overhead + (time.perf_counter() - t2)
    attrs["wall_time_s"] = time.perf_counter() - t_start
    return attrs


def failure_log(study: Study, trial_number: int, err: BaseException) -> str:
    """Write the traceback of an unexpected error next to the ledger; return the one-line reason."""
    path = Path(study.output_dir) / "logs" / f"trial_{trial_number}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(traceback.format_exception(type(err), err, err.__traceback__)))
    return f"error: {type(err).__name__}: {err} (traceback: {path})"


def worker_identity() -> dict[str, Any]:
    from .ledger import this_host

    return {"host": this_host(), "pid": os.getpid()}
