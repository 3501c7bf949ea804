"""Evaluate a restoration model on whole images: per-image and mean PSNR/SSIM under a named protocol.

Protocols (``protocol=`` / ``--protocol``):

* ``default`` -- the toolboxes' convention (KAIR, BasicSR): the restored image is clamped to [0, 1] and rounded
  to 8 bits before scoring; SR crops a border of ``scale`` pixels and scores colour on Y. Test noise is
  seeded **per image** from ``(seed, crc32(image name))`` with NumPy's PCG64, so every trial, every model and
  every order of the images sees the same noisy inputs. ``draws=N`` scores N noise draws per image, draw ``d``
  seeded with ``seed + d`` (draw 0 is the one-draw input, so one-draw numbers do not move); the means are over
  images and draws.
* ``dncnn`` -- the DnCNN authors' ``main_test.py`` (denoising only): x in [0, 1] as float32,
  ``np.random.seed(0)`` before each image, ``y = float32(x + np.random.normal(0, sigma / 255, x.shape))``
  (float64 noise from the legacy Mersenne-Twister generator, no clipping), and PSNR/SSIM of the raw float
  output (no clamping, no rounding). With the official DnCNN-S sigma=25 weights this gives Set12 30.456 dB and
  BSD68 29.243 dB (published: 30.44 / 29.23). One fixed draw: ``draws > 1`` is refused.

:func:`evaluate_baseline` scores a task's trivial baseline (:meth:`~archsearch.tasks.Task.baseline`: the noisy
input, bicubic upsampling, the compressed input) on the same images and draws, exactly as a model's output is
scored; a model that does not beat it restored nothing (:mod:`archsearch.study.validity`).

Inference runs on the full image (``model.eval()``, so batch norm uses its running statistics). Images larger
than ``auto_tile_pixels``, or any image when ``tile`` is given, are processed in ``tile`` x ``tile`` cores each
computed from a window enlarged by ``overlap`` pixels per side; the result equals full-image inference when
the model's receptive-field radius is at most ``overlap`` (``tests/test_evaluate.py``).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import Image
from .errors import ArchsearchError, did_you_mean
from .metrics import psnr, ssim
from .tasks import DenoiseTask, Task


@dataclass(frozen=True)
class Protocol:
    """How test inputs are made and outputs scored. ``noise``: ``seeded`` (per image, PCG64) or ``dncnn``."""

    name: str
    clamp: bool = True
    quantize: bool = True
    noise: str = "seeded"


PROTOCOLS: dict[str, Protocol] = {
    "default": Protocol("default", clamp=True, quantize=True, noise="seeded"),
    "dncnn": Protocol("dncnn", clamp=False, quantize=False, noise="dncnn"),
}


def get_protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        raise ArchsearchError(f"unknown protocol {name!r}{did_you_mean(name, PROTOCOLS)}; allowed: "
                              f"{', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ArchsearchError(f"device {device!r} requested but CUDA is not available; use auto or cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ArchsearchError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return torch.device(device)


def model_scale(model: nn.Module) -> int:
    """The output/input scale of a built spec (``model.spec.scale``), 1 for other modules."""
    spec = getattr(model, "spec", None)
    return int(getattr(spec, "scale", 1)) if spec is not None else 1


def check_fit(model: nn.Module, task: Task) -> None:
    """Raise :class:`~archsearch.tasks.TaskError` when a built spec does not fit the task (channels, scale)."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        task.check_model(spec.in_channels, spec.out_channels, spec.scale, spec.global_residual)


def make_test_input(task: Task, clean: torch.Tensor, name: str, *, protocol: str | Protocol = "default", seed: int = 0,
               scale: int = 1) -> torch.Tensor:
    """The degraded test input of one prepared clean image under a protocol (same for every caller)."""
    proto = get_protocol(protocol)
    if proto.noise == "dncnn":
        if not isinstance(task, DenoiseTask):
            raise ArchsearchError(f"the dncnn protocol is defined for the denoise task only, got {task.kind}")
        # DnCNN main_test.py: np.random.seed(seed=0); y = x + np.random.normal(0, sigma/255.0, x.shape); float32
        x = clean.numpy()
        noise = np.random.RandomState(0).normal(0, task.sigma / 255.0, x.shape)  # == np.random.seed(0); normal
        y = (x + noise).astype(np.float32)
        return torch.from_numpy(y)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return task.degrade(clean, model_scale=scale, rng=rng)


def infer(model: nn.Module, x: torch.Tensor, *, tile: int | None = None, overlap: int = 32, scale: int = 1
          ) -> torch.Tensor:
    """``model(x)`` for a (N, C, H, W) input, tiled when ``tile`` is set (see the module docstring)."""
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return model(x)
    if tile < 1 or overlap < 0:
        raise ArchsearchError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    out: torch.Tensor | None = None
    s = scale
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(y0 - overlap, 0), max(x0 - overlap, 0)
            yb, xb = min(y1 + overlap, h), min(x1 + overlap, w)
            o = model(x[..., ya:yb, xa:xb])
            if out is None:
                out = o.new_zeros((x.shape[0], o.shape[1], h * s, w * s))
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = o[..., (y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
    assert out is not None
    return out


@dataclass(frozen=True)
class ImageScore:
    """One image at one noise draw (``draw`` 0 for a single-draw evaluation)."""

    name: str
    psnr: float
    ssim: float
    seconds: float
    draw: int = 0


@dataclass(frozen=True)
class EvalResult:
    """Mean and per-image scores. ``psnr``/``ssim`` are means over the images and the noise draws (dB /
    unitless); ``per_image`` holds one score per image and draw (draw-major: every image at draw 0 first)."""

    psnr: float
    ssim: float
    n_images: int
    per_image: tuple[ImageScore, ...]
    protocol: str
    task: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    draws: int = 1

    @property
    def images_per_second(self) -> float:
        return len(self.per_image) / self.seconds if self.seconds > 0 else float("inf")

    def rows(self) -> list[list[Any]]:
        """``[image name, draw, psnr, ssim]`` per image and draw (how the ledger stores per-image results)."""
        return [[s.name, s.draw, s.psnr, s.ssim] for s in self.per_image]

    def by_image(self) -> dict[str, list[tuple[float, float]]]:
        """Each image's (PSNR, SSIM) over the draws (:func:`rows_by_image` of :meth:`rows`)."""
        return rows_by_image(self.rows())

    def to_dict(self, per_image: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"psnr": self.psnr, "ssim": self.ssim, "n_images": self.n_images,
                               "draws": self.draws, "protocol": self.protocol, "task": self.task,
                               "seconds": round(self.seconds, 3)}
        if per_image:
            out["per_image"] = [{"name": s.name, "draw": s.draw, "psnr": s.psnr, "ssim": s.ssim}
                                for s in self.per_image]
        return out


def rows_by_image(rows) -> dict[str, list[tuple[float, float]]]:
    """Per-image rows ``[image, draw, psnr, ssim]`` (:meth:`EvalResult.rows`, a ledger's ``per_image_per_seed``)
    grouped by image, in the order the images first appear: image -> [(psnr, ssim), ...], one pair per draw."""
    out: dict[str, list[tuple[float, float]]] = {}
    for row in rows or []:
        if isinstance(row, (list, tuple)) and len(row) >= 4:
            out.setdefault(str(row[0]), []).append((row[2], row[3]))
    return out


def check_draws(draws: Any, proto: Protocol) -> int:
    """``draws`` as an integer >= 1; the dncnn protocol has one fixed draw (its noise ignores the seed)."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ArchsearchError(f"draws must be an integer >= 1 (noise draws per test image), got {draws!r}")
    if proto.noise == "dncnn" and draws > 1:
        raise ArchsearchError(f"the dncnn protocol has one fixed noise draw (np.random.seed(0) per image), got "
                              f"draws={draws}; use draws=1 or the default protocol")
    return draws


def _score(task: Task, images: Sequence[Image], proto: Protocol, *, seed: int, draws: int, scale: int,
           produce) -> EvalResult:
    """Every image at every draw: its test input made as :func:`make_test_input` makes it, ``produce(x)`` (a
    (1, C, h, w) input -> the restored (1, C, H, W) image) scored against the target under ``proto``."""
    scores = []
    start = time.perf_counter()
    kw = dict(clamp=proto.clamp, quantize=proto.quantize, y_channel=task.y_channel, border=task.border)
    for draw in range(draws):
        for image in images:
            t0 = time.perf_counter()
            target = task.prepare(image.pixels)
            degraded = make_test_input(task, target, image.name, protocol=proto, seed=seed + draw, scale=scale)
            out = produce(degraded[None])[0].float().cpu()
            scores.append(ImageScore(image.name, psnr(out, target, **kw), ssim(out, target, **kw),
                                     time.perf_counter() - t0, draw))
    return EvalResult(
        psnr=float(np.mean([s.psnr for s in scores])), ssim=float(np.mean([s.ssim for s in scores])),
        n_images=len(images), per_image=tuple(scores), protocol=proto.name, task=task.to_dict(),
        seconds=time.perf_counter() - start, draws=draws)


def evaluate(model: nn.Module, task: Task, images: Sequence[Image], *, protocol: str | Protocol = "default",
             seed: int = 0, draws: int = 1, tile: int | None = None, overlap: int = 32,
             auto_tile_pixels: int = 1 << 22, device: str | torch.device | None = None, scale: int | None = None
             ) -> EvalResult:
    """Score ``model`` on ``images`` (clean originals) for ``task`` at ``draws`` noise draws; see the module
    docstring.

    ``device`` defaults to the model's; ``scale`` (output/input) defaults to ``model.spec.scale``.
    """
    proto = get_protocol(protocol)
    draws = check_draws(draws, proto)
    if not images:
        raise ArchsearchError("evaluate: empty list of images")
    if scale is None:
        check_fit(model, task)
        scale = model_scale(model)
    param = next(model.parameters(), None)
    dev = select_device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))

    def produce(degraded: torch.Tensor) -> torch.Tensor:
        x = degraded.to(dev)
        big = x.shape[-2] * x.shape[-1] > auto_tile_pixels
        t = tile if tile is not None else (512 if big else None)
        return task.restore(infer(model, x, tile=t, overlap=overlap, scale=scale), x)

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _score(task, images, proto, seed=seed, draws=draws, scale=scale, produce=produce)
    finally:
        model.train(was_training)


def evaluate_baseline(task: Task, images: Sequence[Image], *, protocol: str | Protocol = "default", seed: int = 0,
                      draws: int = 1) -> EvalResult:
    """Score the task's trivial baseline (:meth:`~archsearch.tasks.Task.baseline`) on ``images`` at ``draws``
    noise draws, as :func:`evaluate` scores a model: the same test inputs, clamping, rounding, Y channel and
    border. The baseline does not depend on a model: SR always upsamples the low-resolution image by bicubic
    (the input a scale-1 model receives, so the inputs are made at model scale 1)."""
    proto = get_protocol(protocol)
    draws = check_draws(draws, proto)
    if not images:
        raise ArchsearchError("evaluate_baseline: empty list of images")
    return _score(task, images, proto, seed=seed, draws=draws, scale=1,
                  produce=lambda x: task.baseline(x, model_scale=1))
