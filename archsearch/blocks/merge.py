"""Graph joins: residual/skip addition and channel concatenation (MemNet-style dense links use the memory
block's own multi-input form; ``concat`` is the general one). Both cost no MACs (elementwise / data movement).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from ..errors import SpecError
from ..spec import Block, BlockExample, register_block
from ._common import positive


class _AddModule(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        # EDSR-style residual scaling applies to the branch (the last input), not the skip.
        out = xs[-1] * self.scale if self.scale != 1.0 else xs[-1]
        for x in xs[:-1]:
            out = out + x
        return out


class _ConcatModule(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


@register_block
@dataclass(frozen=True)
class Add(Block):
    """Sum of ``n_inputs`` tensors of equal shape; the last input (the branch) is scaled by ``branch_scale``."""

    type = "add"
    paper = "He et al. CVPR 2016 (residual learning)"

    channels: int
    n_inputs: int = 2
    branch_scale: float = 1.0

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("2", Add(8)),
            BlockExample("3-scaled", Add(8, n_inputs=3, branch_scale=0.5)),
        ]

    def check(self) -> None:
        positive(self, "channels")
        if self.n_inputs < 2:
            raise SpecError("n_inputs", f"must be >= 2, got {self.n_inputs}")

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.channels,) * self.n_inputs

    @property
    def out_channels(self) -> int:
        return self.channels

    def params_by_role(self) -> dict[str, int]:
        return {}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(0)

    def build(self) -> nn.Module:
        return _AddModule(self.branch_scale)

    def export(self, ctx) -> str:
        return f"{ctx.need(_AddModule)}({self.branch_scale!r})"


@register_block
@dataclass(frozen=True)
class Concat(Block):
    """Channel concatenation of inputs with the given channel counts."""

    type = "concat"
    paper = "Huang et al. CVPR 2017 (dense links)"

    channels: tuple[int, ...]

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("2", Concat((4, 8))),
            BlockExample("3", Concat((2, 3, 4))),
        ]

    def check(self) -> None:
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise SpecError("channels", f"must list >= 2 positive channel counts, got {list(self.channels)}")

    @property
    def input_channels(self) -> tuple[int, ...]:
        return self.channels

    @property
    def out_channels(self) -> int:
        return sum(self.channels)

    def params_by_role(self) -> dict[str, int]:
        return {}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(0)

    def build(self) -> nn.Module:
        return _ConcatModule()

    def export(self, ctx) -> str:
        return f"{ctx.need(_ConcatModule)}()"
