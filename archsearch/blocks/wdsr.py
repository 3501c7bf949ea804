"""The WDSR/EDSR+NSR network pieces of the NSR authors' code (github ychfan/pt_ir ``models/wdsr_nsr.py``, commit
bb6933c; Yu, Fan et al., "Wide activation for efficient and accurate image super-resolution", 2018).

The reference network (its ``MODEL``) is: subtract the image mean, a body (head conv, NSR residual blocks, tail
conv to ``scale^2 x out`` channels) plus a 5x5 skip conv from the input to the same channels, pixel shuffle, add
the image mean back. Every conv there is weight-normalised (``torch.nn.utils.weight_norm``) with a bias.

* ``wn_conv`` -- a conv with weight normalisation: ``W = gain * V / ||V||`` per output channel (one gain each),
  plus a bias. Parameters: V, the gains and the biases. MACs: the conv, plus once per forward pass the squared
  norm of V (1 MAC per weight; the rescaling is elementwise). Role ``conv``.
* ``pixel_shuffle`` -- sub-pixel rearrangement (Shi et al. CVPR 2016): no parameters, no MACs (data movement).
* ``mean_shift`` -- adds a constant (``-mean`` before the body, ``+mean`` after it). The reference subtracts
  ``params.image_mean``, a Python float of the dataset settings: a constant, neither parameter nor buffer, so it
  counts 0 parameters; the addition is elementwise, 0 MACs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..spec import Block, BlockExample, register_block
from ._common import SameChannels, odd_kernel, positive


class WNConvModule(nn.Module):
    def __init__(self, spec: WNConv):
        super().__init__()
        cin, cout, k = spec.in_channels, spec.out_channels, spec.kernel_size
        self.padding = k // 2
        # V as nn.Conv2d's default init; gain and bias initialised as the reference (ones_, zeros_).
        self.weight_v = nn.Parameter(torch.empty(cout, cin, k, k))
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        self.weight_g = nn.Parameter(torch.full((cout, 1, 1, 1), float(spec.gain_init)))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.weight_v
        w = v * (self.weight_g / torch.linalg.vector_norm(v, dim=(1, 2, 3), keepdim=True))
        return F.conv2d(x, w, self.bias, padding=self.padding)


@register_block
@dataclass(frozen=True)
class WNConv(Block):
    """Weight-normalised conv with bias ('same' padding); parameter names as torch's weight_norm (weight_g,
    weight_v)."""

    type = "wn_conv"
    paper = "Salimans & Kingma NIPS 2016 (weight normalization), as used in WDSR / pt_ir models/wdsr_nsr.py"

    in_channels: int
    out_channels: int
    kernel_size: int = 3
    gain_init: float = 1.0  # the reference: init.ones_(conv.weight_g)

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("3x3", WNConv(8, 8)),
            BlockExample("5x5-gain", WNConv(3, 12, kernel_size=5, gain_init=0.25)),
        ]

    def check(self) -> None:
        positive(self, "in_channels", "out_channels")
        odd_kernel(self)

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.in_channels,)

    def _weights(self) -> int:
        return self.out_channels * self.in_channels * self.kernel_size**2

    def params_by_role(self) -> dict[str, int]:
        return {"conv": self._weights() + 2 * self.out_channels}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(self._weights())

    def macs(self, h: int, w: int) -> int:
        return self._weights() * h * w + self._weights()  # + the squared norms, once per forward pass

    def build(self) -> nn.Module:
        return WNConvModule(self)

    def export(self, ctx) -> str:
        return f"{ctx.need(WNConvModule)}({self.namespace()})"


@register_block
@dataclass(frozen=True)
class PixelShuffle(Block):
    """``channels`` input channels -> ``channels / factor^2`` at ``factor`` x the resolution."""

    type = "pixel_shuffle"
    paper = "Shi et al. CVPR 2016 (sub-pixel convolution)"

    channels: int
    factor: int = 2

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("x2", PixelShuffle(8)),
            BlockExample("x3", PixelShuffle(9, factor=3)),
        ]

    def check(self) -> None:
        positive(self, "channels", "factor")
        if self.channels % (self.factor**2):
            raise SpecError("channels", f"must be divisible by factor^2 = {self.factor**2}, got {self.channels}")

    @property
    def scale(self) -> int:  # type: ignore[override]
        return self.factor

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.channels,)

    @property
    def out_channels(self) -> int:
        return self.channels // self.factor**2

    def params_by_role(self) -> dict[str, int]:
        return {}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(0)

    def build(self) -> nn.Module:
        return nn.PixelShuffle(self.factor)

    def export(self, ctx) -> str:
        return f"nn.PixelShuffle({self.factor})"


class MeanShiftModule(nn.Module):
    def __init__(self, shift: float):
        super().__init__()
        self.shift = shift  # a constant: no parameter, no buffer (the reference's params.image_mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


@register_block
@dataclass(frozen=True)
class MeanShift(SameChannels, Block):
    """``x + shift``: ``shift = -image_mean`` on the input, ``+image_mean`` on the output (pt_ir ``MODEL``)."""

    type = "mean_shift"
    paper = "pt_ir models/wdsr_nsr.py MODEL.forward (x -= image_mean ... x += image_mean)"

    channels: int
    shift: float = -0.5

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("sub", MeanShift(8)),
            BlockExample("add-rgb", MeanShift(3, shift=0.4488)),
        ]

    def check(self) -> None:
        positive(self, "channels")

    def params_by_role(self) -> dict[str, int]:
        return {}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(0)

    def build(self) -> nn.Module:
        return MeanShiftModule(self.shift)

    def export(self, ctx) -> str:
        return f"{ctx.need(MeanShiftModule)}({self.shift!r})"
