"""Small shared pieces of the block files (not a block family)."""

from __future__ import annotations

import torch

from ..errors import SpecError


def traced() -> bool:
    """True while the model is traced or exported rather than run: ``torch.jit.trace`` (TorchScript, the legacy
    ONNX exporter, fvcore's count) or ``torch.export`` (``.pt2`` and the dynamo ONNX exporter). Blocks whose fast
    path is a custom autograd Function or a shape-specialised kernel take their plain-op form then, which every
    tracer knows and which keeps height, width (and, where the block allows, batch) symbolic."""
    if torch.jit.is_tracing():
        return True
    exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return bool(exporting is not None and exporting())


def positive(block, *names: str) -> None:
    for name in names:
        v = getattr(block, name)
        if v < 1:
            raise SpecError(name, f"must be >= 1, got {v}")


def odd_kernel(block, name: str = "kernel_size") -> None:
    """'Same' padding needs an odd kernel: (k - 1) / 2 pixels on each side keeps the image size."""
    k = getattr(block, name)
    if k < 1 or k % 2 == 0:
        raise SpecError(name, f"must be odd and >= 1 for 'same' padding (allowed: 1, 3, 5, 7, 9, ...), got {k}")


def divisible(block, name: str, value: int, by: int, by_name: str) -> None:
    if value % by:
        raise SpecError(name, f"must be divisible by {by_name} {by}, got {value}")


class SameChannels:
    """Mixin of the blocks whose one input and output have ``channels`` channels (activations, norms, residual
    bodies): the two channel properties every such block would otherwise repeat."""

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.channels,)

    @property
    def out_channels(self) -> int:
        return self.channels
