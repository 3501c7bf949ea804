"""Small shared pieces of the block files (not a block family)."""

from __future__ import annotations

from ..errors import SpecError


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
