"""``archsearch run STUDY --plan``: what a study would train, how big each network is, and how long it would take
on this machine -- without training anything or writing anything.

:func:`plan_study` solves every grid point (or, for a search, every design at a representative point of its
ranges), counts parameters, MACs per pixel and the activation-parameter share, and estimates the wall time by
**timing a few steps of each distinct network** -- the trainer's own step
(:func:`archsearch.training.train_step`, prepared from the study's training settings as the trainer prepares it:
``channels_last`` per block family, AMP, compile) on random tensors of the training batch shape, plus drawing a
batch of patches from the study's images, with the torch thread count a worker would use; nothing is trained on
data, nothing is saved --, scaled by steps x seeds, plus validation, test and latency forward passes (timed forward cost per pixel x
the pixels of the study's images, the test images once per ``data.test_draws``), divided by the executor's worker
count. Networks too large to time at the full batch on a CPU in a moment are timed on fewer samples (or smaller
patches) and scaled linearly by pixels; the plan says so.

Notebook use::

    from archsearch.study.plan import plan_study
    from archsearch.study import load_study
    plan = plan_study(load_study("studies/xunit_budget.yaml"))
    plan.frame()            # one row per planned point (pandas)
    print(plan.text())      # what `--plan` prints
    plan.estimated_s        # seconds
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..builder import build
from ..counting import count
from ..errors import ArchsearchError, BudgetError, SpecError
from ..solver import Solution
from ..training import PatchSampler, TrainConfig, deterministic_mode, prepare_step, train_step
from .config import Study
from .images import study_data
from .layout import choose_layout, machine_cpus
from .sampling import search_target
from .sweep import solve_design

#: Forward MACs of one timed step above which the timed batch (then the patch) is reduced and the time scaled
#: linearly by pixels (a paper-scale network on a CPU would otherwise take minutes to plan).
TIMING_MAC_CAP = 1.0e9
#: Smallest patch side the timing falls back to.
MIN_TIMED_PATCH = 16


@dataclass
class PlannedPoint:
    """One design point (a network) and the seeds it is trained with."""

    design: str
    label: str
    sweep_value: Any
    seeds: tuple[int, ...]
    arguments: dict[str, Any]
    spec_hash: str
    n_params: int
    macs_per_pixel: float
    activation_param_pct: float
    seconds_per_step: float | None = None
    seconds_per_seed: float | None = None  # training + validation + test of one seed (estimate)
    timed_on: str = ""


@dataclass
class Plan:
    """The planned trials of a study; see the module docstring."""

    study: Study
    mode: str  # sweep | search
    points: list[PlannedPoint]
    infeasible: list[dict[str, Any]]
    n_trials: int  # ledger trials (a sweep: points x seeds; a search: n_trials, each over every seed)
    workers: int
    threads: int
    timed_steps: int
    estimated_s: float | None
    training: TrainConfig  # the study's training settings, resolved (TrainConfig's defaults filled in)
    notes: list[str] = field(default_factory=list)
    load: float = 0.0  # 1-minute load average while timing

    @property
    def method(self) -> str:
        if self.estimated_s is None:
            return "not estimated (timing disabled)"
        return (f"estimated from {self.timed_steps} timed steps per design (the trainer's step: forward, loss, "
                f"backward, gradient norm, Adam, with the study's channels_last/amp/compile, on random tensors of "
                f"the training batch shape, {self.threads} torch thread(s) per worker, after one warm-up step, the "
                f"fastest step kept; nothing trained or saved) + drawing a batch of patches, x steps x seeds, plus "
                f"validation/test/latency forward passes, / {self.workers} worker(s); load average "
                f"{self.load:.1f} on {machine_cpus()} CPUs while timing "
                "(other processes slow the timed steps: re-plan on an idle machine for a tighter figure)")

    def frame(self):
        import pandas as pd  # ~0.3 s: only table paths pay it

        rows = [{"design": p.design, "label": p.label, "sweep_value": p.sweep_value,
                 "seeds": ",".join(map(str, p.seeds)), "n_params": p.n_params, "macs_per_pixel": p.macs_per_pixel,
                 "activation_param_pct": p.activation_param_pct, "s_per_step": p.seconds_per_step,
                 "s_per_seed": p.seconds_per_seed} for p in self.points]
        df = pd.DataFrame(rows)
        if not df.empty:  # sweep values as written (an int stays an int beside a baseline's missing value)
            df["sweep_value"] = pd.Series([p.sweep_value for p in self.points], dtype=object)
        return df

    def text(self) -> str:
        s, c = self.study, self.study.config
        lines = []
        what = ""
        if c.sweep is not None:
            via = f" via {c.sweep.via}" if c.sweep.over == "activation_param_pct" else ""
            what = (f"sweep over {c.sweep.over}{via} {list(c.sweep.values)}" if c.sweep.values else
                    "each design once (sweep over designs)")
        elif c.search is not None:
            what = f"{c.search.sampler} search, {c.search.n_trials} trials, objectives {list(c.search.objectives)}"
        budget = (f"budget {c.budget.value:,.0f} {c.budget.metric} (tolerance {c.budget.tolerance})" if c.budget
                  else "no budget (designs built as they are)")
        lines.append(f"plan of study {s.name} (profile {s.profile}): {what}; {budget}; seeds {list(c.seeds)}")
        if c.fidelity:
            lines.append(f"fidelity: {c.fidelity}")
        tr = self.training
        published = [d.name for d in s.space.designs if d.published]
        if s.space.all_published:
            lines.append(f"nothing trained: published weights, evaluated; task {dict(c.task)}; test data "
                         f"{c.data.test} ({c.data.protocol} protocol)")
        else:
            lines.append(f"training: {tr.steps} steps of {tr.batch_size} x {tr.patch_size}x{tr.patch_size} patches, "
                         f"validation every {tr.val_every or 'end only'}; task {dict(c.task)}; data {c.data.train} "
                         f"-> {c.data.test}" + (f"; published weights, evaluated only: {', '.join(published)}"
                                                if published else ""))
        if self.mode == "sweep":
            lines.append(f"{self.n_trials} trials planned ({len(self.points)} points x {len(c.seeds)} seeds), "
                         f"{len(self.infeasible)} grid points off the budget")
            if c.sequential is not None:
                stages = c.sequential.stages
                lines.append(f"sequential seeding ({c.sequential.spending} spending): stage 1 trains "
                             f"{len(self.points) * stages[0]} trials ({stages[0]} seeds); each later stage (" +
                             ", ".join(f"{n} seeds" for n in stages[1:]) + ") runs only while a claim that more "
                             "seeds could decide is undecided; the estimate below is for every stage")
        else:
            lines.append(f"{self.n_trials} trials planned (each trains seeds {list(c.seeds)}); the sampler picks "
                         f"the designs: below, each design at a representative point of its ranges")
        if c.pruning is not None:
            p = c.pruning
            lines.append(f"pruning on paired seeds (lockstep {p.lockstep}): rungs at steps "
                         f"{', '.join(map(str, p.rungs))}, one-sided level {p.alpha:g}, tolerance {p.tolerance:g} dB"
                         + (f", groups by {', '.join(p.group_by)}" if p.group_by else "")
                         + "; the estimate below trains every trial to the end (an upper bound)")
        df = self.frame()
        if not df.empty:
            view = df.drop(columns=["design"]).rename(columns={
                "sweep_value": "value", "n_params": "params", "macs_per_pixel": "MACs/px",
                "activation_param_pct": "act %", "s_per_step": "s/step", "s_per_seed": "s/seed"})
            if self.mode == "search":
                view = view.drop(columns=["value"])
            fmt = {"MACs/px": lambda v: f"{v:,.0f}", "params": lambda v: f"{v:,}", "act %": lambda v: f"{v:.2f}",
                   "s/step": lambda v: f"{v:.4f}", "s/seed": lambda v: f"{v:.1f}"}
            for col, f in fmt.items():
                view[col] = [("-" if v is None or v != v else f(v)) for v in view[col]]
            if "value" in view:
                view["value"] = ["-" if v is None or v != v else str(v) for v in view["value"]]
            lines.append(view.to_string(index=False))
        if self.infeasible:
            lines.append("off the budget / not trained:")
            for i in self.infeasible:
                value = f" (value {i['sweep_value']})" if i.get("sweep_value") is not None else ""
                lines.append(f"  {i['label']}{value}: {i['reason']}")
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.estimated_s is not None:
            lines.append(f"estimated wall time on this machine: {_duration(self.estimated_s)} "
                         f"({self.estimated_s:,.0f} s)")
        lines.append(f"method: {self.method}")
        lines.append("nothing was trained or written (drop --plan to run)")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ---------------------------------------------------------------------------------------------------------
# points
# ---------------------------------------------------------------------------------------------------------
def _counts(sol) -> tuple[Any, Any]:
    spec = sol.spec if isinstance(sol, Solution) else sol
    return spec, count(spec)


def _sweep_points(study: Study) -> tuple[list[PlannedPoint], list[dict[str, Any]], dict[str, Any]]:
    points, infeasible = study.plan.points, study.plan.infeasible
    by_point: dict[tuple, PlannedPoint] = {}
    specs: dict[str, Any] = {}
    for p in points:
        key = (p.design, p.arguments)
        if key in by_point:
            by_point[key].seeds += (p.seed,)
            continue
        sol = solve_design(study.config.budget, study.space.design(p.design), dict(p.arguments))
        spec, counts = _counts(sol)
        specs[spec.hash] = spec
        by_point[key] = PlannedPoint(p.design, p.label, p.sweep_value, (p.seed,), dict(p.arguments), spec.hash,
                                     counts.params, counts.macs_per_pixel, counts.activation_param_pct)
    return list(by_point.values()), infeasible, specs


def _representative(design) -> dict[str, Any]:
    """A search design's middle choice / middle of its range for every searched argument."""
    args: dict[str, Any] = {}
    for key, rng in design.search.items():
        if rng.choices is not None:
            args[key] = rng.choices[len(rng.choices) // 2]
        elif rng.is_int:
            step = int(rng.step or 1)
            n = (int(rng.high) - int(rng.low)) // step
            args[key] = int(rng.low) + step * (n // 2)
        else:
            args[key] = math.sqrt(rng.low * rng.high) if rng.log else (rng.low + rng.high) / 2
    return args


def _search_points(study: Study) -> tuple[list[PlannedPoint], list[dict[str, Any]], dict[str, Any]]:
    points, infeasible, specs = [], [], {}
    for design in study.space.designs:
        args = _representative(design)
        label = design.name + "".join(f" {k}={v}" for k, v in args.items())
        try:
            sol = solve_design(study.config.budget, design, args)
        except (BudgetError, SpecError) as err:
            infeasible.append({"design": design.name, "sweep_value": None, "label": label, "reason": str(err)})
            continue
        spec, counts = _counts(sol)
        specs[spec.hash] = spec
        points.append(PlannedPoint(design.name, label, None, tuple(study.config.seeds), args, spec.hash,
                                   counts.params, counts.macs_per_pixel, counts.activation_param_pct))
    return points, infeasible, specs


# ---------------------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------------------
def _time_steps(spec, task, config, n_steps: int) -> tuple[float, float, str]:
    """(seconds per training step at the configured batch shape, forward seconds per output pixel, how it was
    timed) for ``spec``. The step timed is the trainer's own, :func:`archsearch.training.train_step` -- the batch
    to the device and memory format, the forward (bfloat16 autocast with ``amp``), the loss with MemNet's
    multi-supervision, backward, the gradient norm (clipped with ``grad_clip``), Adam and the schedule --,
    prepared by :func:`~archsearch.training.prepare_step` from the study's ``config`` as
    :func:`~archsearch.training.train` prepares it (device, ``channels_last`` resolved per block family,
    ``compile``) and run under the trainer's deterministic mode, on random tensors of the batch shape: a fresh
    model, nothing kept. Drawing the batch of patches is timed apart (:func:`_image_pixels`) and added by the
    caller, so the sum is one step of the trainer's loop."""
    torch.manual_seed(0)
    model = build(spec)
    factor = task.input_factor(int(getattr(spec, "scale", 1)))
    c_in, c_out = spec.in_channels, spec.out_channels
    batch, patch = config.batch_size, config.patch_size
    macs = count(spec).macs_per_pixel
    # reduce the timed batch, then the patch, to keep one timed forward under TIMING_MAC_CAP MACs
    tb, tp = batch, patch
    while tb > 1 and macs * tb * tp * tp > TIMING_MAC_CAP:
        tb = max(1, tb // 2)
    while tp > max(MIN_TIMED_PATCH, factor) and macs * tb * tp * tp > TIMING_MAC_CAP:
        tp = max(MIN_TIMED_PATCH, tp * 3 // 4)
    tp -= tp % factor
    tp = max(tp, factor)
    scale_up = (batch * patch * patch) / (tb * tp * tp)
    how = "full batch" if scale_up == 1 else f"timed at {tb} x {tp}x{tp}, scaled x{scale_up:.1f} by pixels"
    inp = torch.rand(tb, c_in, tp // factor, tp // factor)  # on the CPU, as the patch sampler draws them
    target = torch.rand(tb, c_out, tp, tp)
    setup = prepare_step(model, task, config)
    sync = torch.cuda.synchronize if setup.device.type == "cuda" else (lambda: None)
    times = []
    with deterministic_mode(config.deterministic):
        model.train()
        for i in range(n_steps + 1):  # the first step warms up (allocations, kernels; with compile: compiling)
            sync()
            t0 = time.perf_counter()
            train_step(setup, inp, target)
            sync()
            if i:
                times.append(time.perf_counter() - t0)
        model.eval()  # validation and test run the eager module in eval mode (as evaluate does)
        x = inp.to(setup.device)
        with torch.inference_mode():
            model(x)
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            fwd = time.perf_counter() - t0
    step = min(times) * scale_up  # the fastest: other processes' interruptions are not the network's cost
    return step, fwd / (tb * tp * tp), how


def _image_pixels(study: Study, config, scale: int) -> tuple[float | None, float | None, float, str | None]:
    """Output pixels of one validation pass (after ``val_crop``) and of one test pass, from the study's images,
    and the seconds the trainer spends drawing one batch of patches from them (timed on 5 batches); (None, None,
    0, why) where the data cannot be read here (e.g. a paper profile whose sets are not installed)."""
    try:
        task, train, val, test = study_data(study)
    except (ArchsearchError, OSError) as err:
        return None, None, 0.0, f"validation/test cost not estimated: the data cannot be read here ({err})"
    crop = config.val_crop

    def px(im, c=None):
        h, w = im.size
        return (min(h, c) * min(w, c)) if c else h * w

    sample_s = 0.0
    try:
        sampler = PatchSampler(task, train, config.patch_size, scale=scale, augment=config.augment, seed=0)
        sampler.batch(config.batch_size)
        t0 = time.perf_counter()
        for _ in range(5):
            sampler.batch(config.batch_size)
        sample_s = (time.perf_counter() - t0) / 5
    except ArchsearchError:
        pass
    return float(sum(px(im, crop) for im in val)), float(sum(px(im) for im in test)), sample_s, None


def plan_study(study: Study, *, timed_steps: int = 3, workers: int | str | None = None) -> Plan:
    """The study's planned trials with their sizes and an estimated wall time on this machine (module
    docstring). ``timed_steps=0`` skips the timing (sizes only). Nothing is trained or written."""
    c = study.config
    config = study.train
    mode = "sweep" if c.sweep is not None else "search"
    points, infeasible, specs = _sweep_points(study) if mode == "sweep" else _search_points(study)
    if mode == "sweep":
        n_trials = sum(len(p.seeds) for p in points)
    else:
        n_trials = search_target(study)
    layout = choose_layout(study, workers, n_trials, c.executor.kind)
    n_workers, threads = layout.workers, layout.threads
    plan = Plan(study, mode, points, infeasible, n_trials, n_workers, threads, timed_steps, None, config)
    if timed_steps <= 0 or not points:
        return plan
    task = study.task
    scale = int(getattr(specs[points[0].spec_hash], "scale", 1))
    lat = c.latency
    lat_px = lat.size[0] * lat.size[1] * (lat.warmup + lat.repeats) if lat.enabled else 0
    timed: dict[str, tuple[float, float, str]] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # the batch is drawn in the worker's process, with its thread count (the gather and the noise use torch)
        val_px, test_px, sample_s, why = _image_pixels(study, config, scale)
        if why:
            plan.notes.append(why)
        n_val = (config.steps // config.val_every if config.val_every else 0) + (1 if val_px else 0)
        for p in points:
            if p.spec_hash not in timed:
                timed[p.spec_hash] = _time_steps(specs[p.spec_hash], task, config, timed_steps)
            step, fwd_px, how = timed[p.spec_hash]
            step += sample_s  # drawing the batch of patches (and the noise) from the study's images
            p.seconds_per_step, p.timed_on = step, how
            # validation/test forward passes (3x the timed forward per pixel: whole images, metrics, copies), the
            # test images once per noise draw
            published = study.space.design(p.design).published  # evaluated only: no training, no validation
            eval_s = 3 * fwd_px * ((val_px or 0) * (0 if published else n_val) + (test_px or 0) * c.data.test_draws)
            p.seconds_per_seed = (0.0 if published else config.steps * step) + eval_s + 0.5  # + build, ckpt, ledger
    finally:
        torch.set_num_threads(previous)
    plan.load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if config.compile:
        plan.notes.append("compile: the per-model-shape compilation (the warm-up step here) is not in the estimate;"
                          " the timed steps are the compiled ones")
    scaled = sorted({p.timed_on for p in points if p.timed_on != "full batch"})
    if scaled:
        plan.notes.append(f"{len(scaled)} network(s) too large to time at the full batch here: "
                          f"{scaled[0]}{' (and similar)' if len(scaled) > 1 else ''}")
    if mode == "sweep":
        total = sum(p.seconds_per_seed * len(p.seeds) + 3 * lat_px * timed[p.spec_hash][1] for p in points)
    else:  # the sampler's mix of designs is unknown: the mean design, n_trials times
        per_trial = statistics.mean(p.seconds_per_seed * len(p.seeds) for p in points)
        total = per_trial * n_trials
        plan.notes.append(f"search: {n_trials} trials x the mean over designs of one trial ({per_trial:.1f} s)")
    plan.estimated_s = total / n_workers
    return plan
