"""Train a restoration model on random patches: seeded, deterministic on CPU, with divergence detection.

* **Patches**: random crops of ``patch_size`` (the target's size) with the 8 flips/rotations, drawn by a seeded
  NumPy PCG64 generator. Training images are stacked by size once; a batch is one vectorised gather per size
  (no per-sample Python work), built in the main process (no DataLoader workers: on 2 cores they would compete
  with the training step). Static degradations (SR, JPEG) are applied once to whole images and the pairs are
  cropped together; the noise of the denoising task is drawn per batch from a seeded ``torch.Generator``.
* **Optimisation**: Adam (default betas, as in the xUnit and NSR papers), L1 or L2 loss, optional gradient-norm
  clipping, learning-rate schedule ``step`` (x ``step_gamma`` at ``step_milestones`` fractions of the run; the
  defaults 0.2 at 2/3 and 5/6 are NSR's "x0.2 at epochs 20 and 25 of 30"), ``cosine`` or ``constant``.
* **One step**: :func:`train_step` on a :func:`prepare_step` setup is the loop's whole step (batch to the device
  and memory format, forward, loss, backward, gradient norm, Adam, schedule); ``archsearch run --plan`` and
  benchmarks/bench_throughput.py time that same function, so their figures are the trainer's.
* **Weight average** (``ema``): an exponential moving average of the weights (:class:`WeightAverage`) is what
  validation scores and what the trained model holds at the end (BasicSR's ``model_ema``).
* **Batch norm**: ``model.train()`` for the steps, ``model.eval()`` (running statistics) for validation.
* **MemNet multi-supervision**: when a module exposes non-empty ``intermediate`` predictions during training
  (``memnet_m6r6_ms``'s recon node), the loss is ``alpha * L(final) + (1 - alpha) * mean_m L(y_m)`` with
  ``alpha = 1 / (M + 1)`` (Tai et al. ICCV 2017, Eq. 12).
* **Determinism**: :func:`seed_everything` seeds Python, NumPy and torch; training runs under
  ``torch.use_deterministic_algorithms(True)``; the same seed gives identical losses and metrics on CPU. Build the
  model *after* ``seed_everything(seed)`` to get identical initial weights too.
* **Divergence**: a non-finite loss, a non-finite gradient norm, a gradient norm above ``max_grad_norm`` or a
  non-finite validation PSNR ends the run with ``status="diverged"`` and the reason; nothing is raised.
* **Reporting**: validation PSNR (``default`` protocol, noise seeded by ``val_seed``) at every ``val_every``-th
  step, at the ``report_steps`` and at the end is passed to ``report(step, psnr)``; a ``True`` return stops the
  run (``status="stopped"``), an exception (e.g. Optuna's ``TrialPruned``) propagates. This is the pruning hook.
"""

from __future__ import annotations

import copy
import math
import random
import re
import sys
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import Image
from .errors import ArchsearchError, SpecError, did_you_mean
from .evaluate import check_fit, evaluate, model_scale, select_device
from .schema import coerce, describe
from .tasks import Task

SCHEDULES = ("step", "cosine", "constant")
LOSSES = ("l1", "l2")


class TrainError(ArchsearchError, ValueError):
    """An invalid training setting or training data (empty set, images smaller than the patch, ...)."""


class TrainConfigError(TrainError, SpecError):
    """A :class:`TrainConfig` field that breaks its rule; ``path`` is the field (``lr``, ``step_milestones[1]``),
    so a study's loader reports it as ``<file>: training.lr: ...``."""


#: Upper limits of the integer settings (a typo such as 10**20 steps is an error, not a run that never ends).
MAX_STEPS = 10_000_000
MAX_BATCH_SIZE = 4096
MAX_PATCH_SIZE = 1024
MAX_SEED = 2**31  # seeds are 0 <= seed < 2**31 (NumPy, torch and Optuna all accept them)
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,2})?", re.ASCII)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TrainConfigError(key, f"must be one of {', '.join(allowed)}, got {value!r}{did_you_mean(value, allowed)}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (validated at construction)."""

    steps: int = 1000
    batch_size: int = 16
    patch_size: int = 40  # DnCNN and the xUnit paper train on 40x40 patches
    lr: float = 1e-3
    schedule: str = "step"
    step_milestones: tuple[float, ...] = (2 / 3, 5 / 6)
    step_gamma: float = 0.2
    loss: str = "l2"
    weight_decay: float = 0.0
    grad_clip: float | None = None
    max_grad_norm: float = 1e6  # a gradient norm above this counts as an explosion
    augment: bool = True
    seed: int = 0
    val_every: int = 0  # 0: validate at the end (and at report_steps) only
    report_steps: tuple[int, ...] = ()
    val_seed: int = 0
    val_crop: int | None = None  # centre-crop validation images to this size (faster intermediate reports)
    device: str = "auto"
    # Throughput settings: each comment gives the reason; docs/speed.md holds the measured speed-ups and costs
    # (benchmarks/bench_throughput.py).
    amp: bool = False  # bfloat16 autocast (CPU and CUDA); off: slower on a CPU for the small-channel nets of the
    #                    studies, the casts cost more than the bf16 GEMMs save (docs/speed.md)
    channels_last: bool | Literal["auto"] = "auto"  # NHWC activations and weights (oneDNN's NHWC kernels); same
    #   function, float rounding differs from NCHW (deterministic either way). "auto": NHWC where a block family
    #   measured faster with it and its 1,000-step PSNR matched NCHW (xUnit, MemNet), NCHW for NSR (slower) and
    #   for plain conv nets (no clear gain, and DnCNN-S's PSNR moved); see uses_channels_last and docs/speed.md
    compile: bool = False  # torch.compile (inductor) the training forward: faster for conv nets, slower for NSR;
    #   needs a C++ compiler at run time and compiles once per model shape (seconds warm, up to a minute cold), so
    #   off by default; validation runs the eager module (no recompiles per image size); docs/speed.md
    deterministic: bool = True
    progress: bool | None = None  # None: a bar when stderr is a terminal
    ema: float | None = None  # decay of an exponential moving average of the weights used for validation and the
    #   result (BasicSR's model_ema, e.g. 0.999); null: the last weights. Less seed-to-seed noise in the test PSNR
    #   at no extra steps (issue 19; docs/speed.md has the measured paired sd)

    def __post_init__(self) -> None:
        # Every rule names its key (TrainConfigError is a SpecError: a study's loader reports `training.lr`).
        for f in fields(self):
            value = getattr(self, f.name)
            ok, value = coerce(_TYPES[f.name], value)
            if not ok:
                raise TrainConfigError(f.name, f"must be {describe(_TYPES[f.name])}, got {getattr(self, f.name)!r}")
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, float) and not math.isfinite(v):
                    raise TrainConfigError(f.name, f"must be a finite number, got {v!r}")
            object.__setattr__(self, f.name, value)
        for name, high in (("steps", MAX_STEPS), ("batch_size", MAX_BATCH_SIZE), ("patch_size", MAX_PATCH_SIZE)):
            v = getattr(self, name)
            if not 1 <= v <= high:
                raise TrainConfigError(name, f"must be an integer in 1..{high:,}, got {v!r}")
        if not self.lr > 0:
            raise TrainConfigError("lr", f"must be a finite number > 0, got {self.lr!r}")
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("loss", self.loss, LOSSES)
        if not self.step_gamma > 0:
            raise TrainConfigError("step_gamma", f"must be a finite number > 0, got {self.step_gamma!r}")
        if not self.weight_decay >= 0:
            raise TrainConfigError("weight_decay", f"must be a finite number >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise TrainConfigError("grad_clip", f"must be a finite number > 0 or null, got {self.grad_clip!r}")
        if not self.max_grad_norm > 0:
            raise TrainConfigError("max_grad_norm", f"must be a finite number > 0, got {self.max_grad_norm!r}")
        for name in ("seed", "val_seed"):
            v = getattr(self, name)
            if not 0 <= v < MAX_SEED:
                raise TrainConfigError(name, f"must be an integer with 0 <= {name} < 2**31, got {v!r}")
        if not 0 <= self.val_every <= MAX_STEPS:
            raise TrainConfigError("val_every", f"must be an integer in 0..{MAX_STEPS:,} (0: at the end only), "
                                                f"got {self.val_every!r}")
        for i, m in enumerate(self.step_milestones):
            if not 0 < m < 1:
                raise TrainConfigError(f"step_milestones[{i}]", f"must be a fraction of the run in (0, 1), got {m!r}")
        for i, s in enumerate(self.report_steps):
            if not 1 <= s <= self.steps:
                raise TrainConfigError(f"report_steps[{i}]", f"must be a step in 1..steps ({self.steps}), got {s!r}")
        if self.val_crop is not None and not 1 <= self.val_crop <= MAX_PATCH_SIZE * 8:
            raise TrainConfigError("val_crop", f"must be an integer in 1..{MAX_PATCH_SIZE * 8:,} or null (no crop), "
                                               f"got {self.val_crop!r}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise TrainConfigError("ema", f"must be a decay in (0, 1), e.g. 0.999, or null (no average), got "
                                          f"{self.ema!r}")
        if not DEVICE.fullmatch(self.device):
            raise TrainConfigError("device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}"
                                             f"{did_you_mean(self.device, ('auto', 'cpu', 'cuda'))}")
        object.__setattr__(self, "report_steps", tuple(sorted(set(self.report_steps))))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["step_milestones"] = list(self.step_milestones)
        d["report_steps"] = list(self.report_steps)
        return d


_TYPES = typing.get_type_hints(TrainConfig)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`. ``status``: ``completed``, ``stopped`` (by the report callback) or
    ``diverged`` (``reason`` says why). ``losses`` holds the training loss of every step run."""

    status: str
    reason: str
    steps: int
    losses: tuple[float, ...]
    val_history: tuple[tuple[int, float], ...]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def final_val_psnr(self) -> float | None:
        return self.val_history[-1][1] if self.val_history else None

    @property
    def best_val_psnr(self) -> float | None:
        finite = [p for _, p in self.val_history if math.isfinite(p)]
        return max(finite) if finite else None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "steps": self.steps,
                "final_loss": self.losses[-1] if self.losses else None, "final_val_psnr": self.final_val_psnr,
                "best_val_psnr": self.best_val_psnr, "val_history": [list(v) for v in self.val_history],
                "seconds": round(self.seconds, 3), "steps_per_second": round(self.steps_per_second, 4)}


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------------
# patches
# --------------------------------------------------------------------------------------------------------
class PatchSampler:
    """Random (input, target) patch batches from preloaded images (see the module docstring).

    ``patch_size`` is the target's size; with a low-resolution-input SR model the input patch is
    ``patch_size // scale`` (``patch_size`` must be a multiple of the scale).
    """

    def __init__(self, task: Task, images: Sequence[Image], patch_size: int, *, scale: int = 1,
                 augment: bool = True, seed: int = 0):
        if not images:
            raise TrainError("empty training set: no images to draw patches from")
        self.task = task
        self.factor = f = task.input_factor(scale)
        if patch_size % f:
            raise TrainError(f"patch_size must be a multiple of the sr scale {f} for a low-resolution-input "
                             f"model, got {patch_size}")
        self.patch_size = patch_size
        self.in_patch = patch_size // f
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        groups: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor | None]]] = {}
        for image in images:
            if image.pixels.shape[0] != task.channels:
                raise TrainError(f"{image.source or image.name}: has {image.pixels.shape[0]} channel(s), the task "
                                 f"{task.channels}")
            target = task.prepare(image.pixels)
            h, w = target.shape[-2:]
            if h < patch_size or w < patch_size:
                raise TrainError(f"{image.source or image.name}: image is {h}x{w}, smaller than the "
                                 f"{patch_size}x{patch_size} training patch; lower patch_size or drop the image")
            degraded = task.degrade(target, model_scale=scale) if task.static else None
            groups.setdefault(tuple(target.shape), []).append((target, degraded))
        # stored channels-last (n, H, W, C) so that one advanced-indexing gather yields whole patches
        self.buckets = []
        weights = []
        for shape, items in groups.items():
            tgt = torch.stack([t for t, _ in items]).permute(0, 2, 3, 1).contiguous()
            deg = (torch.stack([d for _, d in items]).permute(0, 2, 3, 1).contiguous()
                   if task.static else None)
            self.buckets.append((tgt, deg))
            h, w = shape[-2] // f, shape[-1] // f
            weights.append(len(items) * (h - self.in_patch + 1) * (w - self.in_patch + 1))
        self.weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)  # patches uniform over positions

    @staticmethod
    def _gather(stack: torch.Tensor, n: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, p: int) -> torch.Tensor:
        ar = torch.arange(p)
        rows = (oy[:, None] + ar)[:, :, None]
        cols = (ox[:, None] + ar)[:, None, :]
        return stack[n[:, None, None], rows, cols]  # (B, p, p, C)

    def _augment(self, x: torch.Tensor, k: np.ndarray) -> torch.Tensor:
        out = x.clone()
        for t in range(1, 8):
            sel = torch.from_numpy(np.flatnonzero(k == t))
            if len(sel):
                y = x[sel]
                if t >= 4:
                    y = torch.flip(y, dims=(-1,))
                out[sel] = torch.rot90(y, t % 4, dims=(-2, -1))
        return out

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) float32 tensors of shape (B, C, h, w)."""
        rng, f, p = self.rng, self.factor, self.in_patch
        bucket_of = rng.choice(len(self.buckets), size=batch_size, p=self.weights)
        k = rng.integers(0, 8, size=batch_size) if self.augment else np.zeros(batch_size, dtype=np.int64)
        targets, inputs = [], []
        order = []
        for b, (tgt, deg) in enumerate(self.buckets):
            idx = np.flatnonzero(bucket_of == b)
            if not len(idx):
                continue
            order.append(idx)
            n_img, h, w = tgt.shape[0], tgt.shape[1] // f, tgt.shape[2] // f
            n = torch.from_numpy(rng.integers(0, n_img, size=len(idx)))
            oy = torch.from_numpy(rng.integers(0, h - p + 1, size=len(idx)))
            ox = torch.from_numpy(rng.integers(0, w - p + 1, size=len(idx)))
            targets.append(self._gather(tgt, n, oy * f, ox * f, p * f))
            if deg is not None:
                inputs.append(self._gather(deg, n, oy, ox, p))
        perm = np.argsort(np.concatenate(order), kind="stable")
        target = torch.cat(targets)[torch.from_numpy(perm)].permute(0, 3, 1, 2)
        if self.augment:
            target = self._augment(target, k)
        target = target.contiguous()
        if self.task.static:
            inp = torch.cat(inputs)[torch.from_numpy(perm)].permute(0, 3, 1, 2)
            inp = (self._augment(inp, k) if self.augment else inp).contiguous()
        else:
            inp = self.task.degrade_batch(target, self.generator)
        return inp, target


# --------------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------------
def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    steps = config.steps
    if config.schedule == "cosine":
        return lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps))
    if config.schedule == "step":
        marks = [m * steps for m in config.step_milestones]
        return lambda s: config.step_gamma ** sum(s >= m for m in marks)
    return lambda s: 1.0


def _centre_crop(images: Sequence[Image], size: int | None) -> list[Image]:
    if size is None:
        return list(images)
    out = []
    for im in images:
        h, w = im.size
        top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
        out.append(Image(im.name, im.pixels[:, top:top + size, left:left + size], im.source))
    return out


def uses_channels_last(model: nn.Module, config: TrainConfig) -> bool:
    """``config.channels_last`` resolved for ``model``. ``"auto"``: on when a module of the model sets
    ``prefers_channels_last = True`` and none sets it ``False`` -- a block family states it only where
    benchmarks/bench_throughput.py measured the gain (or the loss) and the PSNR parity; unmarked modules (plain
    convs, BN, ReLU) are neutral."""
    if config.channels_last != "auto":
        return bool(config.channels_last)
    prefs = {getattr(m, "prefers_channels_last", None) for m in model.modules()}
    return True in prefs and False not in prefs


def _intermediates(model: nn.Module) -> list[torch.Tensor]:
    preds: list[torch.Tensor] = []
    for m in model.modules():
        inter = getattr(m, "intermediate", None)
        if isinstance(inter, list) and inter:
            preds.extend(inter)
            m.intermediate = []  # free them with the graph
    return preds


def _compiled(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training forward through torch.compile (inductor). A module that keeps Python state between calls
    (MemNet's multi-supervision list) compiles with graph breaks; that is correct, only slower."""
    return torch.compile(model, dynamic=False)


@dataclass
class StepSetup:
    """A model prepared for :func:`train_step` exactly as :func:`train` prepares it: moved to the resolved
    ``device`` in the resolved ``memory_format`` (:func:`uses_channels_last`), ``forward`` the module or its
    torch.compile'd wrapper (``config.compile``), Adam over the trainable ``params`` with the learning-rate
    schedule, the loss and the AMP, clipping and explosion settings of ``config``. Build it with
    :func:`prepare_step`."""

    model: nn.Module
    task: Task
    config: TrainConfig
    device: torch.device
    memory_format: torch.memory_format
    forward: Callable[[torch.Tensor], torch.Tensor]
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    @property
    def channels_last(self) -> bool:
        return self.memory_format is torch.channels_last


@dataclass(frozen=True)
class StepOutcome:
    """What one :func:`train_step` did. ``applied``: the optimiser and schedule stepped; ``False`` when the loss
    was non-finite (``grad_norm`` is then ``None``: no backward ran) or the gradient norm was non-finite or above
    ``max_grad_norm`` (the weights are left as they were)."""

    loss: float
    grad_norm: float | None
    applied: bool

    def divergence(self, step: int, config: TrainConfig) -> str:
        """Why the run diverged at ``step`` ("" when it did not)."""
        if self.applied:
            return ""
        if self.grad_norm is None:
            return f"non-finite loss ({self.loss}) at step {step}"
        return (f"exploding gradients: norm {self.grad_norm:.4g} at step {step} "
                f"(max_grad_norm {config.max_grad_norm:.4g})")


def prepare_step(model: nn.Module, task: Task, config: TrainConfig) -> StepSetup:
    """Prepare ``model`` (in place: it is moved and, with ``channels_last``, converted) for :func:`train_step`
    with ``config``'s device, memory format, compile, optimiser, schedule and loss -- what :func:`train` does
    before its first step. Consumes no random numbers."""
    device = select_device(config.device)
    memory_format = torch.channels_last if uses_channels_last(model, config) else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    forward = _compiled(model) if config.compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config))
    loss_fn = F.l1_loss if config.loss == "l1" else F.mse_loss
    return StepSetup(model, task, config, device, memory_format, forward, params, opt, sched, loss_fn)


def train_step(setup: StepSetup, inp: torch.Tensor, target: torch.Tensor) -> StepOutcome:
    """One optimisation step of the trainer on one batch (``inp``, ``target``: (B, C, h, w) tensors on any
    device, as :meth:`PatchSampler.batch` draws them): the batch to the device and memory format, the forward
    (under bfloat16 autocast with ``amp``), the loss -- with MemNet's multi-supervision (module docstring) --,
    backward, the gradient norm (clipped with ``grad_clip``), then Adam and the schedule unless the loss or the
    norm says the run diverged (see :class:`StepOutcome`). The model must be in training mode; run it under
    :func:`deterministic_mode` for the trainer's determinism. :func:`train` runs exactly this per step, and
    ``archsearch run --plan`` times it."""
    config, model, task, loss_fn = setup.config, setup.model, setup.task, setup.loss_fn
    inp = inp.to(setup.device, non_blocking=True).contiguous(memory_format=setup.memory_format)
    target = target.to(setup.device, non_blocking=True)
    with torch.autocast(setup.device.type, dtype=torch.bfloat16, enabled=config.amp):
        out = task.restore(setup.forward(inp), inp)
        loss = loss_fn(out.float(), target)
        inter = _intermediates(model)
        if inter:
            alpha = 1.0 / (len(inter) + 1)
            extra = sum(loss_fn(task.restore(y, inp).float(), target) for y in inter) / len(inter)
            loss = alpha * loss + (1 - alpha) * extra
    value = float(loss.detach())
    if not math.isfinite(value):
        return StepOutcome(value, None, False)
    setup.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = setup.params
    if config.grad_clip is not None:
        norm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
    else:
        grads = [p.grad for p in params if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
    if not math.isfinite(norm) or norm > config.max_grad_norm:
        return StepOutcome(value, norm, False)
    setup.optimizer.step()
    setup.scheduler.step()
    return StepOutcome(value, norm, True)


class WeightAverage:
    """An exponential moving average of a model's weights (``TrainConfig.ema``), as BasicSR's ``model_ema``: after
    every applied step, ``avg = d * avg + (1 - d) * weights`` with the decay warmed up as ``d_t = min(d, (1 + t) /
    (10 + t))`` (TensorFlow's ExponentialMovingAverage with ``num_updates``), so a short run is not dominated by
    its initial weights. Buffers (batch-norm running statistics) are copied, not averaged: they already are
    running averages of the current weights' activations."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        avg = list(self.module.parameters())
        torch._foreach_lerp_(avg, [p.detach() for p in model.parameters()], 1 - d)
        for a, b in zip(self.module.buffers(), model.buffers()):
            a.copy_(b)

    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged weights into ``model`` (the trained model then is the average)."""
        model.load_state_dict(self.module.state_dict())


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """The trainer's determinism setting (``TrainConfig.deterministic``) for the body; the previous state after."""
    previous_det = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every new empty tensor with NaN (to expose reads of uninitialised
        # memory); that is a full write of each activation and gradient buffer, 10-15% of a CPU training step
        # (bench_throughput: MemNet 111 -> 95 ms), and changes no result. The algorithms stay deterministic.
        torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_det)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill


def train(model: nn.Module, task: Task, train_images: Sequence[Image], val_images: Sequence[Image] = (),
          config: TrainConfig | None = None, report: Callable[[int, float], bool | None] | None = None
          ) -> TrainResult:
    """Train ``model`` in place for ``config.steps`` steps (it is left on ``config.device`` in eval mode); see the
    module docstring. Never raises for a diverging run: the result says ``diverged`` and why."""
    config = config or TrainConfig()
    check_fit(model, task)
    scale = model_scale(model)
    seed_everything(config.seed)
    sampler = PatchSampler(task, train_images, config.patch_size, scale=scale, augment=config.augment,
                           seed=config.seed)
    val_images = _centre_crop(val_images, config.val_crop)
    setup = prepare_step(model, task, config)
    report_at = set(config.report_steps)
    show = sys.stderr.isatty() if config.progress is None else config.progress

    bar = tqdm(total=config.steps, disable=not show, file=sys.stderr, desc=f"train {task.kind}", unit="step",
               dynamic_ncols=True)
    losses: list[float] = []
    history: list[tuple[int, float]] = []
    status, reason = "completed", ""
    average = WeightAverage(model, config.ema) if config.ema is not None else None
    scored = average.module if average is not None else model  # what validation (and the result) use
    start = time.perf_counter()
    try:
        with deterministic_mode(config.deterministic):
            model.train()
            for step in range(1, config.steps + 1):
                inp, target = sampler.batch(config.batch_size)
                outcome = train_step(setup, inp, target)
                losses.append(outcome.loss)
                if not outcome.applied:
                    status, reason = "diverged", outcome.divergence(step, config)
                    break
                if average is not None:
                    average.update(model)
                if show and (step % 10 == 0 or step == config.steps):
                    bar.set_postfix(loss=f"{outcome.loss:.3g}", lr=f"{setup.scheduler.get_last_lr()[0]:.2g}",
                                    refresh=False)
                bar.update(1)
                due = (step == config.steps or step in report_at
                       or (config.val_every and step % config.val_every == 0))
                if val_images and due:
                    val = evaluate(scored, task, val_images, seed=config.val_seed, scale=scale).psnr
                    model.train()
                    history.append((step, val))
                    if not math.isfinite(val):
                        status, reason = "diverged", f"non-finite validation PSNR ({val}) at step {step}"
                        break
                    if report is not None and report(step, val):
                        status, reason = "stopped", f"stopped by the report callback at step {step}"
                        break
    finally:
        bar.close()
        if average is not None and status != "diverged":
            average.copy_to(model)
        model.eval()
    steps_done = len(losses) if status != "diverged" else len(losses) - 1
    return TrainResult(status=status, reason=reason, steps=steps_done, losses=tuple(losses),
                       val_history=tuple(history), seconds=time.perf_counter() - start,
                       config={**config.to_dict(), "channels_last": setup.channels_last})
