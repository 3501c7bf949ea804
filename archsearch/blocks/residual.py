"""Residual block (EDSR / WDSR / SRResNet style) and the pixel-shuffle upsampler.

Residual block: ``x + branch_scale * conv2(act(conv1(x)))`` with optional BN after each conv (SRResNet: Ledig
et al. CVPR 2017) and a width multiplier on the inner layer (WDSR: Yu et al. 2018, "wide activation"; EDSR: Lim
et al. 2017 uses ``expansion=1``, no BN and a residual scaling of 0.1). The activation can be ReLU, PReLU or an
xUnit (xSRResNet of the xUnit paper replaces SRResNet's PReLUs by xUnits).

Upsampler: a conv to ``out_channels * scale^2`` channels and ``PixelShuffle(scale)`` (Shi et al. CVPR 2016, as in
WDSR's tail). MACs are counted per *input* (low-resolution) pixel; pixel shuffle is data movement (no MACs).

Counts are the sum of the parts, which are the registered blocks themselves.

Also here: the ``resnet`` family (EDSR/WDSR style; the NSR paper's denoising baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from ..families import register_family
from ..spec import Block, BlockExample, GraphSpec, SpecBuilder, register_block
from ._common import SameChannels, odd_kernel, positive
from .conv import BatchNorm, Conv, PReLU, ReLU
from .xunit import XUnit


def _sum_roles(parts: list[Block]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        for role, n in p.params_by_role().items():
            out[role] = out.get(role, 0) + n
    return out


class _ResidualModule(nn.Module):
    def __init__(self, body: list[nn.Module], branch_scale: float):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.branch_scale = branch_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + (y * self.branch_scale if self.branch_scale != 1.0 else y)


@register_block
@dataclass(frozen=True)
class ResidualBlock(SameChannels, Block):
    type = "residual"
    paper = "He et al. 2016; EDSR (Lim et al. 2017); WDSR (Yu et al. 2018); SRResNet (Ledig et al. 2017)"

    channels: int
    kernel_size: int = 3
    expansion: int = 1
    activation: Literal["relu", "prelu", "xunit"] = "relu"
    xunit_kernel_size: int = 9
    batch_norm: bool = False
    bias: bool = True
    branch_scale: float = 1.0

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("relu", ResidualBlock(8)),
            BlockExample("prelu-bn", ResidualBlock(8, activation="prelu", batch_norm=True)),
            BlockExample("xunit-e2", ResidualBlock(8, activation="xunit", xunit_kernel_size=3, expansion=2)),
            BlockExample("xunit-bn-scale", ResidualBlock(8, activation="xunit", xunit_kernel_size=5, batch_norm=True,
                                                         branch_scale=0.1, bias=False)),
            BlockExample("relu-5x5", ResidualBlock(8, kernel_size=5)),
        ]

    def check(self) -> None:
        positive(self, "channels", "expansion")
        odd_kernel(self)
        odd_kernel(self, "xunit_kernel_size")
        if self.branch_scale == 0:
            raise SpecError("branch_scale", "must be non-zero (0 switches the block off)")

    def parts(self) -> list[Block]:
        c, h, k = self.channels, self.channels * self.expansion, self.kernel_size
        act: Block = {"relu": lambda: ReLU(h), "prelu": lambda: PReLU(h),
                      "xunit": lambda: XUnit(h, kernel_size=self.xunit_kernel_size)}[self.activation]()
        parts: list[Block] = [Conv(c, h, k, bias=self.bias)]
        if self.batch_norm:
            parts.append(BatchNorm(h))
        parts += [act, Conv(h, c, k, bias=self.bias)]
        if self.batch_norm:
            parts.append(BatchNorm(c))
        return parts

    def params_by_role(self) -> dict[str, int]:
        return _sum_roles(self.parts())

    def macs_per_pixel(self) -> Fraction:
        return sum((p.macs_per_pixel() for p in self.parts()), Fraction(0))

    def build(self) -> nn.Module:
        return _ResidualModule([p.build() for p in self.parts()], self.branch_scale)

    def export(self, ctx) -> str:
        parts = ", ".join(p.export(ctx) for p in self.parts())
        return f"{ctx.need(_ResidualModule)}([{parts}], {self.branch_scale!r})"


@register_block
@dataclass(frozen=True)
class Upsampler(Block):
    type = "upsampler"
    paper = "Shi et al. CVPR 2016 (sub-pixel convolution); WDSR tail"

    in_channels: int
    out_channels: int
    factor: int = 2
    kernel_size: int = 3
    bias: bool = True

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("x2", Upsampler(8, 3, factor=2)),
            BlockExample("x3", Upsampler(8, 1, factor=3, kernel_size=1)),
            BlockExample("x4-nobias", Upsampler(4, 1, factor=4, bias=False)),
        ]

    def check(self) -> None:
        positive(self, "in_channels", "out_channels")
        odd_kernel(self)
        if self.factor not in (2, 3, 4):
            raise SpecError("factor", f"must be one of 2, 3, 4, got {self.factor}")

    @property
    def scale(self) -> int:  # type: ignore[override]
        return self.factor

    def _conv(self) -> Conv:
        return Conv(self.in_channels, self.out_channels * self.factor**2, self.kernel_size, bias=self.bias)

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.in_channels,)

    def params_by_role(self) -> dict[str, int]:
        return self._conv().params_by_role()

    def macs_per_pixel(self) -> Fraction:
        return self._conv().macs_per_pixel()

    def build(self) -> nn.Module:
        return nn.Sequential(self._conv().build(), nn.PixelShuffle(self.factor))

    def export(self, ctx) -> str:
        return f"nn.Sequential({self._conv().export(ctx)}, nn.PixelShuffle({self.factor}))"


# ---------------------------------------------------------------------------------------------------------
# the residual-network family (EDSR/WDSR style)
# ---------------------------------------------------------------------------------------------------------
def add_tail(b: SpecBuilder, out_channels: int, channels: int, upscale: int) -> None:
    """The tail of a residual network: a 3x3 conv to ``out_channels``, or for ``upscale`` > 1 an upsampler."""
    if upscale == 1:
        b.add(Conv(channels, out_channels, 3), name="tail")
    else:
        b.add(Upsampler(channels, out_channels, upscale), name="tail")


@register_family("resnet", n_blocks=(1, 256), channels=(1, 1024), expansion=(1, 16),
                 labels={"n_blocks": "n", "xunit_kernel_size": "r"}, variants=("xunit_kernel_size", "activation"))
def resnet(n_blocks: int = 16, channels: int = 32, expansion: int = 2, activation: str = "relu",
           xunit_kernel_size: int = 9, batch_norm: bool = False, branch_scale: float = 1.0, upscale: int = 1,
           in_channels: int = 1, out_channels: int = 1, global_residual: str = "", name: str = "") -> GraphSpec:
    """Residual network (EDSR/WDSR style): head conv, n residual blocks with a width multiplier, tail conv (or a
    pixel-shuffle upsampler for ``upscale`` > 1, on low-resolution input). Global residual (subtract: predict the
    noise) by default when ``upscale`` is 1 -- the NSR paper's denoising baseline (Table 5)."""
    b = SpecBuilder()
    b.add(Conv(in_channels, channels, 3), name="head")
    for i in range(n_blocks):
        b.add(ResidualBlock(channels, 3, expansion, activation, xunit_kernel_size, batch_norm, True, branch_scale),
              name=f"res{i}")
    add_tail(b, out_channels, channels, upscale)
    gr = global_residual or ("subtract" if upscale == 1 else "none")
    return b.spec(name or f"resnet_b{n_blocks}_c{channels}_e{expansion}", in_channels, out_channels,
                  global_residual=gr)
