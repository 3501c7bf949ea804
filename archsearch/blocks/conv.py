"""Plain layers: convolution, batch normalization, ReLU / PReLU / identity.

MAC conventions (docs/counting.md): a k x k conv costs ``out * in/groups * k^2`` MACs per
output pixel (bias additions are not MACs, as in fvcore); BatchNorm at inference is a per-channel affine
``a*x + b``: one MAC per element; ReLU, PReLU and identity are elementwise and cost no MACs.

Also here: the ``convnet`` family (the xUnit paper's ConvNet / DnCNN layout), the ``dncnn_s`` zoo model and the
DnCNN authors' weight layout (``dncnn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from torch import nn

from ..errors import SpecError
from ..families import register_family
from ..spec import Block, BlockExample, GraphSpec, SpecBuilder, register_block
from ..weights import WeightsError, load_weights, register_layout
from ..zoo import ZooEntry, register_zoo
from ._common import SameChannels, divisible, odd_kernel, positive


@register_block
@dataclass(frozen=True)
class Conv(Block):
    """k x k convolution, stride 1, 'same' zero padding."""

    type = "conv"
    paper = "standard convolution"

    in_channels: int
    out_channels: int
    kernel_size: int = 3
    bias: bool = True
    groups: int = 1

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("3x3", Conv(8, 8)),
            BlockExample("1x1-nobias", Conv(4, 16, kernel_size=1, bias=False)),
            BlockExample("5x5-groups4", Conv(8, 12, kernel_size=5, groups=4)),
            BlockExample("depthwise", Conv(8, 8, groups=8)),
        ]

    def check(self) -> None:
        positive(self, "in_channels", "out_channels", "groups")
        odd_kernel(self)
        divisible(self, "in_channels", self.in_channels, self.groups, "groups")
        divisible(self, "out_channels", self.out_channels, self.groups, "groups")

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.in_channels,)

    def params_by_role(self) -> dict[str, int]:
        w = self.out_channels * (self.in_channels // self.groups) * self.kernel_size**2
        return {"conv": w + (self.out_channels if self.bias else 0)}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(self.out_channels * (self.in_channels // self.groups) * self.kernel_size**2)

    def build(self) -> nn.Module:
        return nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, padding=self.kernel_size // 2,
                         bias=self.bias, groups=self.groups)

    def export(self, ctx) -> str:
        return (f"nn.Conv2d({self.in_channels}, {self.out_channels}, {self.kernel_size}, "
                f"padding={self.kernel_size // 2}, bias={self.bias}, groups={self.groups})")


@register_block
@dataclass(frozen=True)
class BatchNorm(SameChannels, Block):
    """BatchNorm2d. ``eps`` is a field because checkpoints depend on it (DnCNN's official model uses 1e-4)."""

    type = "batchnorm"
    paper = "Ioffe & Szegedy 2015"

    channels: int
    affine: bool = True
    eps: float = 1e-5
    momentum: float = 0.1

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("affine", BatchNorm(8, eps=1e-4)),
            BlockExample("plain", BatchNorm(8, affine=False)),
        ]

    def check(self) -> None:
        positive(self, "channels")
        if not self.eps > 0:
            raise SpecError("eps", f"must be > 0, got {self.eps}")
        if not 0 < self.momentum <= 1:
            raise SpecError("momentum", f"must be in (0, 1], got {self.momentum}")

    def params_by_role(self) -> dict[str, int]:
        return {"normalization": 2 * self.channels if self.affine else 0}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(self.channels)

    def build(self) -> nn.Module:
        return nn.BatchNorm2d(self.channels, eps=self.eps, momentum=self.momentum, affine=self.affine)

    def export(self, ctx) -> str:
        return f"nn.BatchNorm2d({self.channels}, eps={self.eps!r}, momentum={self.momentum!r}, affine={self.affine})"


@dataclass(frozen=True)
class _Pointwise(SameChannels, Block):
    """A parameter-free elementwise map on ``channels`` channels."""

    channels: int

    def check(self) -> None:
        positive(self, "channels")

    def params_by_role(self) -> dict[str, int]:
        return {}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(0)


@register_block
@dataclass(frozen=True)
class ReLU(_Pointwise):
    type = "relu"
    paper = "Nair & Hinton 2010"

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("default", ReLU(8)),
        ]

    def build(self) -> nn.Module:
        return nn.ReLU(inplace=False)

    def export(self, ctx) -> str:
        return "nn.ReLU(inplace=False)"


@register_block
@dataclass(frozen=True)
class Identity(_Pointwise):
    """No activation (the 'linear' point of an ablation)."""

    type = "identity"
    paper = "-"

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("default", Identity(8)),
        ]

    def build(self) -> nn.Module:
        return nn.Identity()

    def export(self, ctx) -> str:
        return "nn.Identity()"


@register_block
@dataclass(frozen=True)
class PReLU(SameChannels, Block):
    """Parametric ReLU (He et al. 2015); one slope per channel or one shared slope (SRResNet uses per-channel)."""

    type = "prelu"
    paper = "He et al. ICCV 2015"

    channels: int
    slopes: Literal["channel", "shared"] = "channel"

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("channel", PReLU(8)),
            BlockExample("shared", PReLU(8, slopes="shared")),
        ]

    def check(self) -> None:
        positive(self, "channels")

    def params_by_role(self) -> dict[str, int]:
        return {"activation": self.channels if self.slopes == "channel" else 1}

    def macs_per_pixel(self) -> Fraction:
        return Fraction(0)

    def build(self) -> nn.Module:
        return nn.PReLU(self.channels if self.slopes == "channel" else 1)

    def export(self, ctx) -> str:
        return f"nn.PReLU({self.channels if self.slopes == 'channel' else 1})"


# ---------------------------------------------------------------------------------------------------------
# the ConvNet / DnCNN family, its zoo model and the DnCNN authors' weight layout
# ---------------------------------------------------------------------------------------------------------
@register_family("convnet", depth=(2, 200), width=(1, 1024))
def convnet(depth: int = 5, width: int = 64, in_channels: int = 1, out_channels: int = 1, kernel_size: int = 3,
            bn_eps: float = 1e-5, global_residual: str = "subtract", name: str = "") -> GraphSpec:
    """ConvNet of the xUnit paper's Fig. 3 / DnCNN layout: conv+ReLU, (depth-2) x conv+BN+ReLU, conv.

    ``depth`` counts conv layers. Biases only on the first conv (the others feed a BN or are the output), as in
    the official DnCNN PyTorch model. ``global_residual: subtract`` = residual learning (predict the noise).
    """
    b = SpecBuilder()
    b.add(Conv(in_channels, width, kernel_size, bias=True))
    b.add(ReLU(width))
    for _ in range(depth - 2):
        b.add(Conv(width, width, kernel_size, bias=False))
        b.add(BatchNorm(width, eps=bn_eps))
        b.add(ReLU(width))
    b.add(Conv(width, out_channels, kernel_size, bias=False))
    return b.spec(name or f"convnet_d{depth}_w{width}", in_channels, out_channels, global_residual=global_residual)


# 17 convs, 64 ch; bias only on the first conv, BN (affine, eps 1e-4) after the 15 inner convs; output = input -
# body (residual learning). The official PyTorch layout: 556,096 parameters.
register_zoo(ZooEntry("dncnn_s", "convnet", dict(depth=17, width=64, bn_eps=1e-4),
                      "Zhang et al. TIP 2017 (DnCNN-S)", "555K (xUnit Table 1); 556,096 official PyTorch", "denoise"))


def official_dncnn_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Map the DnCNN authors' keys (``dncnn.<i>.<param>``, an ``nn.Sequential`` named ``dncnn``) onto
    ``dncnn_s``'s (``blocks.<i>.<param>``): the zoo spec names its nodes 0..47 in the same order."""
    out = {}
    for key, value in state.items():
        if not key.startswith("dncnn."):
            raise WeightsError(f"unexpected key {key!r} in a DnCNN state_dict (expected 'dncnn.<i>.<param>')")
        out["blocks." + key[len("dncnn."):]] = value
    return out


register_layout("dncnn", lambda sd: bool(sd) and all(isinstance(k, str) and k.startswith("dncnn.") for k in sd),
                official_dncnn_state_dict, "github cszn/DnCNN (PyTorch model_zoo, nn.Sequential 'dncnn')")


def load_official_dncnn(module, path: str) -> None:
    """Load the official DnCNN-S weights (a plain state_dict, read without unpickling code) into a built
    ``dncnn_s``; every key must match (the key mapping is the ``dncnn`` layout above, which
    :func:`archsearch.weights.load_weights` recognises)."""
    load_weights(module, path)
