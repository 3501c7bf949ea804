"""xUnit: a learnable spatial activation (Kligvasser, Rott Shaham & Michaeli, CVPR 2018).

Paper, Eq. (3)-(4) and Fig. 2(b): ``d = H * ReLU(BN(z))`` with H a depthwise r x r conv, gate
``g = exp(-BN(d)^2)``, output ``z * g``. Overhead per xUnit on C channels: ``(r^2 + 4) C`` (r^2 C depthwise weights
without bias, 2C per BN) -- the paper's count, reproduced exactly by the default fields.

Every design of the paper's Fig. 6 is a choice of stages in the pipeline BN -> ReLU -> depthwise -> BN -> gate
(see :data:`XUNIT_DESIGNS`). The official code (github kligvasser/xUnit ``*/models/modules/activations.py``,
commit 1643cd6) gates with a sigmoid, gives the depthwise conv a bias, defaults to **7x7** kernels and **no BN**
(``batch_norm=False``: its BNs become identities), and has three modules: ``xUnit`` ([BN] -> ReLU -> depthwise ->
[BN] -> sigmoid), ``xUnitS`` -- *slim* (depthwise -> [BN] -> sigmoid; the one its xSRResNet/xSRGAN generator uses,
without BN, and its xDnCNN uses with BN) -- and ``xUnitD`` -- *dense* (1x1 conv -> [BN] -> ReLU -> depthwise -> [BN]
-> sigmoid). The designs ``official``, ``slim`` and ``dense`` are those modules with the official defaults (no BN,
7x7); ``official_bn``, ``slim_bn`` and ``dense_bn`` the same with ``batch_norm=True``.

All parameters of an xUnit, its BNs included, have role ``activation``: that is the quantity of the paper's
Fig. 4 ("percentage of parameters invested in the activations").

MACs per pixel: each BN C (folded affine), the depthwise conv r^2 C, the dense variant's 1x1 conv C^2. The
ReLU, the gate nonlinearity and the product ``z * g`` are elementwise and excluded.

Also here: the paper's families ``xnet`` (Fig. 3) and ``srcnn`` (SRCNN and its xSRCNN variants, Table 3) and their
zoo models (``xdncnn``, ``convnet_fig4``, ``xnet_fig4``, ``srcnn``, ``xsrcnn_f``, ``xsrcnn_c``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
from torch import nn

from ..errors import SpecError, did_you_mean
from ..families import register_family
from ..spec import Block, BlockExample, GraphSpec, SpecBuilder, register_block
from ..zoo import ZooEntry, register_zoo
from ._common import SameChannels, odd_kernel, positive, traced
from .conv import BatchNorm, Conv, ReLU

#: Named designs: Fig. 6 of the paper (stage names as in the figure) plus the official code's variants.
XUNIT_DESIGNS: dict[str, dict[str, object]] = {
    "BN+RL+CD+BN+GS": dict(pre_bn=True, relu=True, post_bn=True, gate="gaussian"),  # the paper's xUnit
    "RL+CD+GS": dict(pre_bn=False, relu=True, post_bn=False, gate="gaussian"),
    "BN+RL+CD": dict(pre_bn=True, relu=True, post_bn=False, gate="none"),
    "CD+GS": dict(pre_bn=False, relu=False, post_bn=False, gate="gaussian"),
    "RL+CD": dict(pre_bn=False, relu=True, post_bn=False, gate="none"),
}
# The official code's modules (kernel_size=7, batch_norm=False by default), and their batch_norm=True forms.
for _name, _stages in (("official", dict(relu=True)), ("slim", dict(relu=False)),
                       ("dense", dict(relu=True, pointwise=True))):
    XUNIT_DESIGNS[_name] = dict(pre_bn=False, post_bn=False, gate="sigmoid", depthwise_bias=True, kernel_size=7,
                                **_stages)
    # official_bn/dense_bn: BN before the ReLU; slim_bn: BN after the depthwise conv only (xUnitS has no pre-BN)
    XUNIT_DESIGNS[f"{_name}_bn"] = {**XUNIT_DESIGNS[_name], "pre_bn": _name != "slim", "post_bn": True}


class _DepthwiseScale(nn.Conv2d):
    """A 1x1 depthwise conv (an xUnit with r = 1) computed as what it is, a per-channel scale and shift: oneDNN's
    NHWC depthwise kernel trained the r = 1 xNet of the main study at 46 steps/s against 77 for r = 3 (one thread,
    8 x 24x24). Same parameters, state-dict keys and MACs as the conv; traced (export, fvcore) it is the conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if traced() or torch.jit.is_scripting():
            return super().forward(x)
        w = self.weight.view(1, -1, 1, 1)
        return torch.addcmul(self.bias.view(1, -1, 1, 1), x, w) if self.bias is not None else x * w


class XUnitModule(nn.Module):
    # The trainer's channels_last "auto" turns NHWC on for models with xUnits: oneDNN's NHWC depthwise kernels
    # train xnet_fig4 1.9x faster than NCHW (bench_throughput.py), 1,000-step PSNR within 0.001 dB of NCHW.
    prefers_channels_last = True

    def __init__(self, spec: XUnit):
        super().__init__()
        c, r = spec.channels, spec.kernel_size
        stages: list[nn.Module] = []
        if spec.pointwise:
            stages.append(nn.Conv2d(c, c, 1, bias=True))
        if spec.pre_bn:
            stages.append(nn.BatchNorm2d(c))
        if spec.relu:
            stages.append(nn.ReLU())
        depthwise = _DepthwiseScale if r == 1 else nn.Conv2d
        stages.append(depthwise(c, c, r, padding=r // 2, groups=c, bias=spec.depthwise_bias))
        if spec.post_bn:
            stages.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*stages)
        self.gate = spec.gate

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        d = self.features(z)
        if self.gate == "gaussian":
            g = torch.exp(-d * d)  # in [0, 1]; "regulates training" (paper, Sec. 4)
        elif self.gate == "sigmoid":
            g = torch.sigmoid(d)
        else:
            g = d  # BN+RL+CD: weights may go negative; gradients explode for deep nets (paper, Fig. 6)
        return z * g


@register_block
@dataclass(frozen=True)
class XUnit(SameChannels, Block):
    """xUnit on ``channels`` channels; defaults are the paper's design with 9x9 depthwise filters."""

    type = "xunit"
    paper = "Kligvasser et al., xUnit, CVPR 2018, Eq. (4), Fig. 2(b), Fig. 6"

    channels: int
    kernel_size: int = 9  # 9x9: the paper's choice "in all applications" (Sec. 5)
    pre_bn: bool = True
    relu: bool = True
    post_bn: bool = True
    gate: Literal["gaussian", "sigmoid", "none"] = "gaussian"
    depthwise_bias: bool = False  # the paper's (r^2 + 4) C count has no bias; the official code has one
    pointwise: bool = False  # the official "dense" variant's leading 1x1 conv

    @classmethod
    def examples(cls) -> list[BlockExample]:
        out = [BlockExample("default-r3", XUnit(8, kernel_size=3)), BlockExample("r1", XUnit(8, kernel_size=1))]
        return out + [BlockExample(name, XUnit.design(name, 8, kernel_size=3)) for name in XUNIT_DESIGNS]

    @classmethod
    def design(cls, name: str, channels: int, kernel_size: int | None = None) -> XUnit:
        """An xUnit of a named design (keys of :data:`XUNIT_DESIGNS`); ``kernel_size`` None: the design's own
        default (7 for the official code's designs, else the paper's 9)."""
        if name not in XUNIT_DESIGNS:
            raise SpecError("design", f"unknown xUnit design {name!r}{did_you_mean(name, XUNIT_DESIGNS)}; "
                                      f"allowed: {', '.join(XUNIT_DESIGNS)}")
        fields = {"kernel_size": 9, **XUNIT_DESIGNS[name]}
        if kernel_size is not None:
            fields["kernel_size"] = kernel_size
        return cls(channels=channels, **fields)  # type: ignore[arg-type]

    def check(self) -> None:
        positive(self, "channels")
        odd_kernel(self)

    def params_by_role(self) -> dict[str, int]:
        c = self.channels
        n = c * self.kernel_size**2 + (c if self.depthwise_bias else 0)
        n += 2 * c * (int(self.pre_bn) + int(self.post_bn))
        n += (c * c + c) if self.pointwise else 0
        return {"activation": n}

    def macs_per_pixel(self) -> Fraction:
        c = self.channels
        m = c * self.kernel_size**2 + c * (int(self.pre_bn) + int(self.post_bn))
        m += c * c if self.pointwise else 0
        return Fraction(m)

    def build(self) -> nn.Module:
        return XUnitModule(self)

    def export(self, ctx) -> str:
        ctx.need(traced)
        ctx.need(_DepthwiseScale)
        return f"{ctx.need(XUnitModule)}({self.namespace()})"


# ---------------------------------------------------------------------------------------------------------
# the xUnit paper's families (xNet, xSRCNN) and zoo models
# ---------------------------------------------------------------------------------------------------------
@register_family("xnet", depth=(2, 200), width=(1, 1024), xunit_kernel_size=(1, 31, 2),
                 labels={"xunit_kernel_size": "r"}, variants=("xunit_kernel_size", "xunit_design"))
def xnet(depth: int = 4, width: int = 64, xunit_kernel_size: int = 9, xunit_design: str = "BN+RL+CD+BN+GS",
         batch_norm: bool = False, in_channels: int = 1, out_channels: int = 1, kernel_size: int = 3,
         global_residual: str = "subtract", name: str = "") -> GraphSpec:
    """xNet of the xUnit paper's Fig. 3: (depth-1) x conv+xUnit, then conv; ``depth`` counts conv layers.

    ``batch_norm: true`` keeps DnCNN's BN after the inner convs (the xDnCNN layout: DnCNN with every ReLU
    replaced by an xUnit). Biases only on the first conv, as in the ConvNet.
    """
    b = SpecBuilder()
    b.add(Conv(in_channels, width, kernel_size, bias=True))
    b.add(XUnit.design(xunit_design, width, xunit_kernel_size))
    for _ in range(depth - 2):
        b.add(Conv(width, width, kernel_size, bias=False))
        if batch_norm:
            b.add(BatchNorm(width))
        b.add(XUnit.design(xunit_design, width, xunit_kernel_size))
    b.add(Conv(width, out_channels, kernel_size, bias=False))
    return b.spec(name or f"xnet_d{depth}_w{width}_r{xunit_kernel_size}", in_channels, out_channels,
                  global_residual=global_residual)


@register_family("srcnn", n1=(1, 512), n2=(1, 512), xunit_kernel_size=(1, 31, 2),
                 labels={"xunit_kernel_size": "r"}, variants=("xunit_kernel_size", "activation"))
def srcnn(n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 5, f3: int = 5, activation: str = "relu",
          xunit_kernel_size: int = 9, in_channels: int = 1, out_channels: int = 1, name: str = "") -> GraphSpec:
    """SRCNN (Dong et al. 2016): f1 x f1 x n1 -> f2 x f2 x n2 -> f3 x f3 x out on the bicubic-upsampled input,
    all convs with bias, 'same' padding. ``activation: xunit`` gives the xUnit paper's xSRCNN variants."""
    if activation not in ("relu", "xunit"):
        raise SpecError("activation", f"must be one of relu, xunit, got {activation!r}")

    def act(c: int):
        return ReLU(c) if activation == "relu" else XUnit(c, kernel_size=xunit_kernel_size)

    b = SpecBuilder()
    b.add(Conv(in_channels, n1, f1))
    b.add(act(n1))
    b.add(Conv(n1, n2, f2))
    b.add(act(n2))
    b.add(Conv(n2, out_channels, f3))
    return b.spec(name or f"srcnn_{n1}_{n2}_{activation}", in_channels, out_channels)


# DnCNN with every ReLU replaced by a 9x9 xUnit (paper design) and 17 -> 9 convs, BN kept after the inner convs:
# 303,680 parameters (paper: 303K).
register_zoo(ZooEntry("xdncnn", "xnet", dict(depth=9, width=64, xunit_kernel_size=9, batch_norm=True),
                      "Kligvasser et al. CVPR 2018, Table 1", "303K", "denoise"))
# The ConvNet of the paper's Fig. 3/4 (the xNet's baseline; family ``convnet`` of conv.py).
register_zoo(ZooEntry("convnet_fig4", "convnet", dict(depth=4, width=64),
                      "xUnit paper Fig. 3/4 ConvNet (4 layers)", "-", "denoise"))
register_zoo(ZooEntry("xnet_fig4", "xnet", dict(depth=4, width=64, xunit_kernel_size=9),
                      "xUnit paper Fig. 3/4 xNet (4 layers, 9x9 xUnits)", "-", "denoise"))
# 9-5-5, 64/32 channels, biases: 57,281 parameters (paper: 57K).
register_zoo(ZooEntry("srcnn", "srcnn", dict(n1=64, n2=32, f2=5),
                      "Dong et al. TPAMI 2016 (9-5-5)", "57K", "sr"))
# SRCNN with 9x9 xUnits instead of ReLUs and the middle filter 5x5 -> 3x3: 32,673 (paper: 32K).
register_zoo(ZooEntry("xsrcnn_f", "srcnn", dict(n1=64, n2=32, f2=3, activation="xunit"),
                      "Kligvasser et al. CVPR 2018, Table 3 (xSRCNNf)", "32K", "sr"))
# SRCNN with 9x9 xUnits and 64 -> 42 channels in the first layer (the second layer's input): 44,167 (paper: 44K).
register_zoo(ZooEntry("xsrcnn_c", "srcnn", dict(n1=42, n2=32, f2=5, activation="xunit"),
                      "Kligvasser et al. CVPR 2018, Table 3 (xSRCNNc)", "44K", "sr"))
