"""Measured inference latency, in milliseconds per output megapixel (ms/MP).

MACs are not time: a 9x9 depthwise conv costs 7x fewer MACs than a full 3x3 conv of the same width but about as
much wall time on a CPU (see ``../shared/docs/papers.md``, "Reference numbers measured here"), and NSR's Fig. 5
measures CPU time for the same reason. :func:`measure_latency` times one forward pass of a network on the current
device; :mod:`archsearch.study.latency` measures a study's trials with it.

Protocol: eval mode, ``torch.inference_mode``, batch 1, a random input of ``size`` (the *input* size; an SR
network's output is ``scale`` times larger), ``warmup`` untimed passes (allocator, cuDNN autotuning, caches),
then ``repeats`` timed passes, each bracketed by ``torch.cuda.synchronize`` on CUDA; the median is reported and
divided by the number of output megapixels. Weights are freshly initialised: the architecture, not the trained
values, sets the time (every seed of a design point shares one measurement).
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import torch

from .builder import build
from .errors import ArchsearchError
from .evaluate import select_device
from .spec import GraphSpec


def cpu_model() -> str:
    """The CPU's model name (``model name`` in /proc/cpuinfo where there is one, else what ``platform`` says); the
    one reader of it for latency records, the run record (``study.layout.machine_name``) and the benchmarks."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device) -> str:
    """A human-readable name of a torch device, e.g. ``cpu: Intel Xeon ... (2 threads)`` or ``cuda: NVIDIA H100``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model()} ({torch.get_num_threads()} threads)"


def measure_latency(spec_or_model, *, device: str = "auto", size: tuple[int, int] = (256, 256), warmup: int = 3,
                    repeats: int = 10, in_channels: int | None = None) -> dict[str, Any]:
    """Median inference time of one forward pass, per output megapixel.

    ``spec_or_model`` is a :class:`~archsearch.spec.GraphSpec` (built with fresh weights) or an ``nn.Module``
    (then ``in_channels`` is read from ``module.spec`` or must be given). Returns ``ms_per_mp`` (median ms per
    output megapixel), ``median_ms``, ``min_ms``, ``times_ms`` (every timed pass), ``device`` (described),
    ``input_size``, ``output_size``, ``warmup``, ``repeats``.
    """
    if warmup < 0 or repeats < 1:
        raise ArchsearchError(f"latency: `warmup >= 0` and `repeats >= 1` must hold, got {warmup=}, {repeats=}")
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ArchsearchError(f"latency: size must be positive, got {h}x{w}")
    if isinstance(spec_or_model, GraphSpec):
        model = build(spec_or_model)
        in_channels = spec_or_model.in_channels
    else:
        model = spec_or_model
        spec = getattr(model, "spec", None)
        in_channels = in_channels or (spec.in_channels if spec is not None else None)
        if in_channels is None:
            raise ArchsearchError("latency: give in_channels for a module without a `spec`")
    dev = select_device(device)
    model = model.to(dev).eval()
    x = torch.randn(1, in_channels, h, w, device=dev)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            out = model(x)
        sync()
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            out = model(x)
            sync()
            times.append((time.perf_counter() - t0) * 1000.0)
    out_h, out_w = int(out.shape[-2]), int(out.shape[-1])
    median = statistics.median(times)
    return {"ms_per_mp": median / (out_h * out_w / 1e6), "median_ms": median, "min_ms": min(times),
            "times_ms": times, "device": describe_device(dev), "input_size": [h, w], "output_size": [out_h, out_w],
            "warmup": warmup, "repeats": repeats}
