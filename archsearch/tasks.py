"""Restoration tasks: how a clean image becomes a (degraded input, target) pair, and how the result is scored.

* :class:`DenoiseTask` -- additive white Gaussian noise, ``sigma`` on the 0-255 scale (DnCNN, xUnit, NSR).
  ``residual=True`` makes the model predict the noise (the restored image is ``y - model(y)``, DnCNN's residual
  learning) for specs without their own global residual.
* :class:`SRTask` -- single-image super-resolution x2/x3/x4 with bicubic degradation. The HR image is cropped
  to a multiple of the scale ("modcrop"), downscaled with bicubic interpolation and rounded to 8 bits (the LR
  image as stored by the benchmarks). Input style follows the model: a model with ``spec.scale == 1`` gets
  the LR image bicubic-upsampled back to the HR size (SRCNN, VDSR, MemNet); a model with
  ``spec.scale == task.scale`` gets the LR image itself (pixel-shuffle upsamplers: EDSR, WDSR).
  Bicubic = Pillow's ``BICUBIC`` (Keys kernel a = -0.5 with antialiasing when downscaling, like MATLAB's
  ``imresize``), computed with ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``, which gives
  the same numbers (checked in ``tests/test_tasks.py``). Scores skip a border of ``scale`` pixels and, for
  RGB, use the Y channel (the SR literature's convention).
* :class:`JPEGTask` -- JPEG deblocking: the image is rounded to 8 bits and encoded/decoded by Pillow at
  ``quality`` (RGB with Pillow's default 4:2:0 chroma subsampling); the ARCNN/DnCNN-3 setting.

Each task knows its trivial baseline (:meth:`Task.baseline`): what "restoring nothing" scores -- the noisy input,
bicubic upsampling of the LR image, the compressed input. A trained model that does not beat it is degenerate
(:mod:`archsearch.study.validity`).

Each task is frozen and validated at construction; :func:`make_task` builds one from a name and keywords
(the CLI's ``--task``, a study's ``task`` section).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage

from .data import Color
from .errors import ArchsearchError, SpecError, did_you_mean
from .registry import Registry

SR_SCALES = (2, 3, 4)
CHANNELS = (1, 3)


class TaskError(ArchsearchError, ValueError):
    """An invalid task setting, or a model that does not fit the task."""


def bicubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pillow-exact bicubic resize of a (C, H, W) or (N, C, H, W) float tensor (no clamping)."""
    batched = x.dim() == 4
    y = F.interpolate(x if batched else x[None], size=size, mode="bicubic", antialias=True, align_corners=False)
    return y if batched else y[0]


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid (what saving a PNG does)."""
    return x.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def _check_channels(channels: Any) -> None:
    if channels not in CHANNELS or isinstance(channels, bool):
        raise TaskError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


#: The task registry: a new task is one :class:`Task` subclass decorated with :func:`register_task`.
TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task class to the registry under its ``kind`` (and ``aliases``); names must be new."""
    return TASKS.add(cls.kind, cls, aliases=tuple(cls.aliases))


@dataclass(frozen=True)
class Task:
    """Base of the tasks. ``static`` tasks have a deterministic degradation, so training pairs are made once
    per training image and cropped together; non-static ones (noise) degrade each batch afresh."""

    kind: ClassVar[str] = ""
    static: ClassVar[bool] = True
    aliases: ClassVar[tuple[str, ...]] = ()
    #: One help line per setting (the CLI's ``--<setting>`` flags are made from these and the field types).
    setting_help: ClassVar[dict[str, str]] = {}
    channels: int = 1

    # --- conventions -------------------------------------------------------------------------------------
    @property
    def color(self) -> Color:
        return "rgb" if self.channels == 3 else "gray"

    @property
    def border(self) -> int:
        """Pixels cropped from each side before scoring."""
        return 0

    @property
    def y_channel(self) -> bool:
        """Score on the Y channel of YCbCr (colour SR) instead of all channels."""
        return False

    @property
    def residual(self) -> bool:
        return False

    # --- model fit --------------------------------------------------------------------------------------
    def check_model(self, in_channels: int, out_channels: int, scale: int, global_residual: str = "none") -> None:
        if in_channels != self.channels or out_channels != self.channels:
            raise TaskError(f"the {self.kind} task has {self.channels} channel(s) but the model maps {in_channels} "
                            f"-> {out_channels}; use --channels {in_channels} or a model with {self.channels}")
        if scale != 1:
            raise TaskError(f"the {self.kind} task needs a model of scale 1 (same size in and out), got scale {scale}")
        if self.residual and global_residual != "none":
            raise TaskError(f"residual=True makes the model predict the noise, but the model already has "
                            f"global_residual={global_residual!r}; use residual=False")

    def input_factor(self, model_scale: int) -> int:
        """Target size / input size for a model of this output/input scale."""
        return 1

    # --- pairs ------------------------------------------------------------------------------------------
    def prepare(self, clean: torch.Tensor) -> torch.Tensor:
        """The target for a clean image (SR crops it to a multiple of the scale)."""
        return clean

    def degrade(self, clean: torch.Tensor, *, model_scale: int = 1, rng: np.random.Generator | None = None
                ) -> torch.Tensor:
        """The degraded input for one prepared clean (C, H, W) image."""
        raise NotImplementedError

    def degrade_batch(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The degraded input of a (N, C, H, W) batch of clean patches (non-static tasks only)."""
        raise NotImplementedError

    def restore(self, model_output: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
        """The restored image from the model's output (``degraded - output`` under residual learning)."""
        return degraded - model_output if self.residual else model_output

    # --- the trivial baseline -----------------------------------------------------------------------------
    @property
    def baseline_name(self) -> str:
        """What :meth:`baseline` returns, in words (tables print it beside its PSNR)."""
        return "degraded input"

    def baseline(self, degraded: torch.Tensor, *, model_scale: int = 1) -> torch.Tensor:
        """The trivial restoration of a degraded test input (made for a model of ``model_scale``), at the
        target's size: what a model that restores nothing would give. Default: the input itself."""
        return degraded

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.kind, **asdict(self)}

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.to_dict().items())


@register_task
@dataclass(frozen=True)
class DenoiseTask(Task):
    """Additive white Gaussian noise of standard deviation ``sigma`` (0-255 scale), not clipped (the DnCNN and
    KAIR test convention; ``clip_noisy=True`` clamps the noisy image to [0, 1])."""

    kind: ClassVar[str] = "denoise"
    static: ClassVar[bool] = False
    aliases: ClassVar[tuple[str, ...]] = ("denoising",)
    setting_help: ClassVar[dict[str, str]] = {
        "sigma": "noise level on the 0-255 scale, in (0, 255] (default 25)",
        "residual_learning": "the model predicts the noise (output = input - model(input))",
        "clip_noisy": "clamp the noisy image to [0, 1] (default: not clipped, the DnCNN convention)"}
    sigma: float = 25.0
    residual_learning: bool = False
    clip_noisy: bool = False

    def __post_init__(self) -> None:
        _check_channels(self.channels)
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not 0 < self.sigma <= 255:
            raise TaskError(f"sigma must be in (0, 255] (the 0-255 scale, e.g. 15, 25, 50), got {self.sigma!r}")
        object.__setattr__(self, "sigma", float(self.sigma))

    @property
    def residual(self) -> bool:
        return self.residual_learning

    def _finish(self, noisy: torch.Tensor) -> torch.Tensor:
        return noisy.clamp_(0.0, 1.0) if self.clip_noisy else noisy

    def degrade(self, clean, *, model_scale=1, rng=None):
        rng = rng if rng is not None else np.random.default_rng(0)
        noise = rng.standard_normal(tuple(clean.shape), dtype=np.float32) * np.float32(self.sigma / 255.0)
        return self._finish(clean + torch.from_numpy(noise))

    @property
    def baseline_name(self) -> str:
        return "noisy input"

    def degrade_batch(self, clean, generator):
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
        return self._finish(clean + noise.mul_(self.sigma / 255.0))


@register_task
@dataclass(frozen=True)
class SRTask(Task):
    """Bicubic super-resolution by ``scale``. ``y_channel_eval`` (default: on for RGB) scores the Y channel."""

    kind: ClassVar[str] = "sr"
    aliases: ClassVar[tuple[str, ...]] = ("super-resolution", "superres")
    setting_help: ClassVar[dict[str, str]] = {
        "scale": "2, 3 or 4 (default: the model's scale if > 1, else 2)",
        "y_channel_eval": "score PSNR/SSIM on the Y channel (default: on for RGB)"}
    scale: int = 2
    y_channel_eval: bool | None = None

    def __post_init__(self) -> None:
        _check_channels(self.channels)
        if self.scale not in SR_SCALES or isinstance(self.scale, bool):
            raise TaskError(f"scale must be one of {', '.join(map(str, SR_SCALES))}, got {self.scale!r}")
        if self.y_channel_eval is None:
            object.__setattr__(self, "y_channel_eval", self.channels == 3)

    @property
    def color(self) -> Color:
        # single-channel SR works on the Y of YCbCr (SRCNN, VDSR, MemNet)
        return "rgb" if self.channels == 3 else "y"

    @property
    def border(self) -> int:
        return self.scale

    @property
    def y_channel(self) -> bool:
        return bool(self.y_channel_eval) and self.channels == 3

    def check_model(self, in_channels, out_channels, scale, global_residual="none"):
        if in_channels != self.channels or out_channels != self.channels:
            raise TaskError(f"the sr task has {self.channels} channel(s) but the model maps {in_channels} -> "
                            f"{out_channels}; use --channels {in_channels} or a model with {self.channels}")
        if scale not in (1, self.scale):
            raise TaskError(f"an x{self.scale} sr task needs a model of scale 1 (bicubic pre-upsampled input) or "
                            f"{self.scale} (low-resolution input), got a model of scale {scale}")

    def input_factor(self, model_scale: int) -> int:
        return self.scale if model_scale == self.scale else 1

    def prepare(self, clean):
        h, w = clean.shape[-2:]
        return clean[..., : h - h % self.scale, : w - w % self.scale]

    def degrade(self, clean, *, model_scale=1, rng=None):
        h, w = clean.shape[-2:]
        if h % self.scale or w % self.scale:
            raise TaskError(f"sr x{self.scale}: the clean image must be prepared (size a multiple of the scale), "
                            f"got {h}x{w}")
        lr = quantize(bicubic_resize(clean, (h // self.scale, w // self.scale)))
        if model_scale == self.scale:
            return lr
        return bicubic_resize(lr, (h, w))  # pre-upsampled input, float (SRCNN's test code does not round it)

    @property
    def baseline_name(self) -> str:
        return f"bicubic x{self.scale}"

    def baseline(self, degraded, *, model_scale=1):
        # bicubic upsampling of the LR image, whatever input style the model has: a scale-1 model's input already
        # is that image; an LR input is upsampled here exactly as degrade() upsamples it for a scale-1 model
        if model_scale == self.scale:
            h, w = degraded.shape[-2:]
            return bicubic_resize(degraded, (h * self.scale, w * self.scale))
        return degraded


@register_task
@dataclass(frozen=True)
class JPEGTask(Task):
    """JPEG compression artefacts at ``quality`` (1-100), encoded and decoded by Pillow."""

    kind: ClassVar[str] = "jpeg"
    aliases: ClassVar[tuple[str, ...]] = ("deblock", "deblocking")
    setting_help: ClassVar[dict[str, str]] = {"quality": "JPEG quality 1-100 (default 10)"}
    quality: int = 10

    def __post_init__(self) -> None:
        _check_channels(self.channels)
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise TaskError(f"quality must be an integer in [1, 100] (the field uses 10, 20, 30, 40), "
                            f"got {self.quality!r}")

    def degrade(self, clean, *, model_scale=1, rng=None):
        arr = quantize(clean).mul(255.0).round().to(torch.uint8).numpy()
        im = PILImage.fromarray(arr[0] if self.channels == 1 else arr.transpose(1, 2, 0),
                                mode="L" if self.channels == 1 else "RGB")
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=self.quality)
        buf.seek(0)
        with PILImage.open(buf) as dec:
            out = np.asarray(dec.convert("L" if self.channels == 1 else "RGB"))
        out = out[None] if self.channels == 1 else out.transpose(2, 0, 1)
        return torch.from_numpy(np.array(out)).to(torch.float32).div_(255.0)

    @property
    def baseline_name(self) -> str:
        return f"JPEG q{self.quality} input"


def task_settings(kind: str) -> dict[str, Any]:
    """A registered task's settings (its dataclass fields but ``channels``) and their types."""
    return {f.name: f.type for f in fields(TASKS[kind]) if f.name != "channels"}


def make_task(name: str, *, channels: int = 1, **settings: Any) -> Task:
    """A task from its registered name (or an alias) and settings; ``None`` settings are ignored, a setting of
    another task is refused (e.g. ``sigma`` for ``sr``)."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}{did_you_mean(str(name), TASKS)}; allowed: {', '.join(TASKS)}")
    key = TASKS.canonical(name)
    given = {k: v for k, v in settings.items() if v is not None}
    own = task_settings(key)
    for k in given:
        if k not in own:
            owner = next((t for t in TASKS if k in task_settings(t)), None)
            hint = f" (it belongs to the {owner} task)" if owner else ""
            raise TaskError(f"setting {k!r} does not apply to the {key} task{hint}; its settings: "
                            f"{', '.join(own)}")
    if key == "sr" and "scale" in given and isinstance(given["scale"], float) and given["scale"].is_integer():
        given["scale"] = int(given["scale"])
    return TASKS[key](channels=channels, **given)


def task_from_dict(data: dict[str, Any]) -> Task:
    """Inverse of :meth:`Task.to_dict` (used for checkpoints)."""
    data = dict(data)
    return make_task(data.pop("task"), **data)


def task_error(err: Exception, keys, where) -> SpecError:
    """A task's error (``sigma must be in (0, 255], got 300``) at the setting that caused it: ``where(key)`` for
    the first word when it is one of ``keys`` (``task.sigma``, ``--sigma``), else ``where("")``."""
    text = str(err)
    key, _, rest = text.partition(" ")
    if key in keys and rest:
        return SpecError(where(key), rest)
    return SpecError(where(""), text)
