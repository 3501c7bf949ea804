"""Parametric design families: functions from a few hyperparameters to a :class:`GraphSpec`.

Each family declares its integer *knobs* (name, range, step) -- the values the budget solver may free. The zoo is
a set of named calls of these families. Parameters and MACs are monotone in every knob (they grow, except NSR's
MACs, which fall as sparsity groups rise at the same size), which the solver relies on (``tests/test_solver.py``
checks it on each family).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .blocks import (
    Add,
    BatchNorm,
    Conv,
    MeanShift,
    MemNetRecon,
    MemoryBlock,
    NSRResBlock,
    PixelShuffle,
    ReLU,
    ResidualBlock,
    Upsampler,
    WNConv,
    XUnit,
)
from .errors import SpecError, did_you_mean
from .registry import Registry
from .spec import INPUT, GraphSpec, SpecBuilder


@dataclass(frozen=True)
class Knob:
    """An integer hyperparameter with its allowed range (``low``..``high`` inclusive, in ``step``s)."""

    name: str
    low: int
    high: int
    step: int = 1

    def values(self, low: int | None = None, high: int | None = None) -> range:
        lo = self.low if low is None else max(self.low, low)
        if (lo - self.low) % self.step:
            lo += self.step - (lo - self.low) % self.step
        hi = self.high if high is None else min(self.high, high)
        return range(lo, hi + 1, self.step)


@dataclass(frozen=True)
class Family:
    name: str
    fn: Callable[..., GraphSpec]
    knobs: dict[str, Knob]
    doc: str

    @property
    def defaults(self) -> dict[str, Any]:
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}

    def __call__(self, **kwargs: Any) -> GraphSpec:
        allowed = self.defaults
        for key in kwargs:
            if key not in allowed:
                raise SpecError(key, f"unknown argument of family {self.name!r}{did_you_mean(key, allowed)}; "
                                     f"allowed: {', '.join(allowed)}")
        for key, knob in self.knobs.items():
            v = kwargs.get(key, allowed[key])
            if isinstance(v, bool) or not isinstance(v, int) or not (knob.low <= v <= knob.high) or \
                    (v - knob.low) % knob.step:
                raise SpecError(key, f"must be an integer in {knob.low}..{knob.high}"
                                     f"{f' in steps of {knob.step}' if knob.step > 1 else ''}, got {v!r}")
        return self.fn(**kwargs)

    def knob(self, name: str) -> Knob:
        if name not in self.knobs:
            raise SpecError("knob", f"{name!r} is not a knob of family {self.name!r}{did_you_mean(name, self.knobs)}; "
                                    f"knobs: {', '.join(self.knobs)}")
        return self.knobs[name]


#: The family registry: name -> :class:`Family` (:func:`register_family` adds to it).
FAMILIES: Registry[Family] = Registry("family")


def register_family(name: str, **knobs: tuple[int, int] | tuple[int, int, int]):
    def deco(fn: Callable[..., GraphSpec]) -> Callable[..., GraphSpec]:
        FAMILIES.add(name, Family(name, fn, {k: Knob(k, *v) for k, v in knobs.items()}, (fn.__doc__ or "").strip()))
        return fn

    return deco


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def families() -> dict[str, Family]:
    return FAMILIES.as_dict()


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


@register_family("xnet", depth=(2, 200), width=(1, 1024), xunit_kernel_size=(1, 31, 2))
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


@register_family("srcnn", n1=(1, 512), n2=(1, 512), xunit_kernel_size=(1, 31, 2))
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


@register_family("memnet", n_blocks=(1, 64), recursions=(1, 64), channels=(1, 512))
def memnet(n_blocks: int = 6, recursions: int = 6, channels: int = 64, long_term: bool = True,
           short_term: bool = True, multi_supervised: bool = False, share_weights: bool = True,
           bias: bool = True, fenet_norm: bool = True, gate_order: str = "long_first", in_channels: int = 1,
           out_channels: int = 1, name: str = "") -> GraphSpec:
    """MemNet (Tai et al. ICCV 2017) as the Caffe model (github tyshiwo/MemNet, M6R6 prototxts): FENet
    BN+Scale -> ReLU -> conv (``bn_conv1``, ``relu1``, ``conv1``), M memory blocks (dense long-term links), ReconNet
    BN+Scale -> ReLU -> conv, plus the input. ``multi_supervised`` is the deploy prototxt's graph: every block's
    output through its own BN+Scale and ReLU, one shared conv, plus the input, and a learned weighted sum of the M
    predictions. Convs with biases as in Caffe (``bias: false`` drops them); ``fenet_norm: false`` makes the FENet
    a bare conv (the paper's text); ``gate_order`` as in :class:`~archsearch.blocks.MemoryBlock`."""
    b = SpecBuilder()
    if fenet_norm:
        b.add(BatchNorm(in_channels), name="fenet_bn")
        b.add(ReLU(in_channels), name="fenet_relu")
    fe = b.add(Conv(in_channels, channels, 3, bias=bias), name="fenet")
    states = [fe]
    for m in range(1, n_blocks + 1):
        inputs = states if long_term else states[-1:]
        blk = MemoryBlock(channels, recursions, len(inputs), long_term, short_term, share_weights, bias=bias,
                          gate_order=gate_order)  # type: ignore[arg-type]
        states.append(b.add(blk, inputs, name=f"memory{m}"))
    suffix = ("_nl" if not long_term else "") + ("_ns" if not short_term else "") + ("_ms" if multi_supervised else "")
    spec_name = name or f"memnet_m{n_blocks}r{recursions}{suffix}"
    if multi_supervised:
        b.add(MemNetRecon(channels, out_channels, n_blocks, bias=bias), [INPUT] + states[1:], name="recon")
        return b.spec(spec_name, in_channels, out_channels)
    b.add(BatchNorm(channels), name="recon_bn")
    b.add(ReLU(channels), name="recon_relu")
    b.add(Conv(channels, out_channels, 3, bias=bias), name="recon")
    return b.spec(spec_name, in_channels, out_channels, global_residual="add")


def _head_tail(b: SpecBuilder, in_channels: int, out_channels: int, channels: int, upscale: int) -> None:
    if upscale == 1:
        b.add(Conv(channels, out_channels, 3), name="tail")
    else:
        b.add(Upsampler(channels, out_channels, upscale), name="tail")


@register_family("resnet", n_blocks=(1, 256), channels=(1, 1024), expansion=(1, 16))
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
    _head_tail(b, in_channels, out_channels, channels, upscale)
    gr = global_residual or ("subtract" if upscale == 1 else "none")
    return b.spec(name or f"resnet_b{n_blocks}_c{channels}_e{expansion}", in_channels, out_channels,
                  global_residual=gr)


def _wdsr_nsr(n_blocks: int, channels: int, expansion: int, sparsity_groups: int, cardinality: int, upscale: int,
              in_channels: int, out_channels: int, image_mean: float, name: str) -> GraphSpec:
    """The network of pt_ir ``models/wdsr_nsr.py`` (``MODEL``, commit bb6933c), node by node: ``x - mean``;
    body = weight-normed head conv, n NSR blocks (reference layout, weight norm, each of the k groups as wide as
    the hidden layer ``channels * expansion`` -- the code's ``out_channels *= num_sparsity_groups``, i.e. our
    same_flops regime; conv2's gain initialised to 1/sqrt(n_blocks)), weight-normed tail conv to
    ``upscale^2 * out`` channels; plus a weight-normed 5x5 skip conv from the shifted input (when the channel counts
    differ; else the identity); pixel shuffle; ``+ mean``."""
    b = SpecBuilder()
    shifted = b.add(MeanShift(in_channels, -image_mean), name="sub_mean")
    b.add(WNConv(in_channels, channels, 3), name="head")
    for i in range(n_blocks):
        b.add(NSRResBlock(channels, channels * expansion, 3, sparsity_groups, cardinality, "same_flops",
                          weight_norm=True, branch_scale=1 / math.sqrt(n_blocks)), name=f"nsr{i}")
    n_out = out_channels * upscale * upscale
    tail = b.add(WNConv(channels, n_out, 3), name="tail")
    if in_channels != n_out:
        skip = b.add(WNConv(in_channels, n_out, 5), [shifted], name="skip")
        b.add(Add(n_out), [skip, tail], name="sum")
    else:
        b.add(Add(n_out), [shifted, tail], name="sum")
    if upscale > 1:
        b.add(PixelShuffle(n_out, upscale), name="shuffle")
    b.add(MeanShift(out_channels, image_mean), name="add_mean")
    return b.spec(name, in_channels, out_channels)


# channels in steps of 16: the reference's 16 cardinal groups must divide conv2's output channels
@register_family("wdsr_nsr", n_blocks=(1, 256), channels=(16, 1024, 16), expansion=(1, 16), sparsity_groups=(1, 64))
def wdsr_nsr(n_blocks: int = 16, channels: int = 32, expansion: int = 4, sparsity_groups: int = 4,
             cardinality: int = 16, upscale: int = 2, in_channels: int = 3, out_channels: int = 3,
             image_mean: float = 0.5, name: str = "") -> GraphSpec:
    """WDSR with NSR blocks as in the authors' code (pt_ir ``models/wdsr_nsr.py``); defaults = that file's argparse
    defaults (16 blocks, 32 residual units, width multiplier 4, 4 sparsity groups, 16 cardinals). ``image_mean``:
    the constant subtracted before and added after the network (0.5, pt_ir's DIV2K setting)."""
    return _wdsr_nsr(n_blocks, channels, expansion, sparsity_groups, cardinality, upscale, in_channels,
                     out_channels, image_mean,
                     name or f"wdsr_nsr_b{n_blocks}_c{channels}_e{expansion}_k{sparsity_groups}_x{upscale}")


@register_family("edsr_nsr", n_blocks=(1, 256), channels=(16, 1024, 16), sparsity_groups=(1, 64))
def edsr_nsr(n_blocks: int = 16, channels: int = 64, sparsity_groups: int = 4, cardinality: int = 16,
             upscale: int = 2, in_channels: int = 3, out_channels: int = 3, image_mean: float = 0.5,
             name: str = "") -> GraphSpec:
    """"EDSR+NSR" of the NSR README (github ychfan/nsr): the same ``wdsr_nsr`` code run with 64 residual units and
    width multiplier 1 (``--num_residual_units 64 --width_multiplier 1 --num_sparsity_groups 4``)."""
    return _wdsr_nsr(n_blocks, channels, 1, sparsity_groups, cardinality, upscale, in_channels, out_channels,
                     image_mean, name or f"edsr_nsr_b{n_blocks}_c{channels}_k{sparsity_groups}_x{upscale}")


@register_family("nsr_resnet", n_blocks=(1, 256), channels=(1, 1024), expansion=(1, 16), sparsity_groups=(1, 64))
def nsr_resnet(n_blocks: int = 16, channels: int = 32, expansion: int = 2, sparsity_groups: int = 2,
               cardinality: int = 1, regime: str = "same_size", pool: int = 0, temperature: float = 1.0,
               selection: str = "softmax", shared_selection: bool = False, layout: str = "reference",
               weight_norm: bool = False, upscale: int = 1, in_channels: int = 1, out_channels: int = 1,
               global_residual: str = "", name: str = "") -> GraphSpec:
    """Residual network of NSR blocks (Fan et al. NeurIPS 2020): head conv, n sparse residual blocks of hidden
    width ``channels * expansion``, tail conv or upsampler. ``regime`` same_size / same_flops as in Tables 2/3;
    ``layout`` and ``weight_norm`` as in :class:`~archsearch.blocks.NSRResBlock` (the reference layout by default).
    A generic search family with plain convs around the blocks; the authors' full SR network is ``wdsr_nsr``."""
    b = SpecBuilder()
    b.add(Conv(in_channels, channels, 3), name="head")
    for i in range(n_blocks):
        b.add(NSRResBlock(channels, channels * expansion, 3, sparsity_groups, cardinality, regime, pool,  # type: ignore[arg-type]
                          temperature, selection, shared_selection, layout=layout,  # type: ignore[arg-type]
                          weight_norm=weight_norm), name=f"nsr{i}")
    _head_tail(b, in_channels, out_channels, channels, upscale)
    gr = global_residual or ("subtract" if upscale == 1 else "none")
    return b.spec(name or f"nsr_resnet_b{n_blocks}_c{channels}_e{expansion}_k{sparsity_groups}_{regime}",
                  in_channels, out_channels, global_residual=gr)


# ---------------------------------------------------------------------------------------------------------
# Designs from classical priors (issue 12): unfolded convolutional sparse coding (blocks/csc.py)
# ---------------------------------------------------------------------------------------------------------
from .blocks import CSC  # noqa: E402  (this section is appended; the imports above belong to the others)


@register_family("cscnet", filters=(1, 1024), unfoldings=(1, 64), kernel_size=(1, 31), stride=(1, 16))
def cscnet(filters: int = 175, unfoldings: int = 12, kernel_size: int = 11, stride: int = 8, tied: bool = False,
           average_shifts: bool = True, threshold: float = 0.01, channels: int = 1, global_residual: str = "none",
           name: str = "") -> GraphSpec:
    """CSCNet (Simon & Elad, NeurIPS 2019): one convolutional-LISTA block on the image, ``unfoldings``
    iterations of ``filters`` k x k atoms at ``stride``, the stride^2 shifted copies averaged. The network
    outputs the clean image (``global_residual: none``, the authors' convention: images in [0, 1], no mean
    removal); ``global_residual: subtract`` is a departure that makes it predict the noise instead.

    Parameters grow with filters and kernel size, do not depend on the stride and, past 2, not on the unfoldings
    (LISTA shares its matrices across iterations); MACs grow with each knob (per pixel ``2K m k^2 + s^2``). A
    stride above the kernel size is refused (the solver skips it).
    """
    b = SpecBuilder()
    b.add(CSC(channels, filters, kernel_size, stride, unfoldings, tied, average_shifts, threshold), name="csc")
    return b.spec(name or f"cscnet_m{filters}_k{kernel_size}_s{stride}_u{unfoldings}{'_tied' if tied else ''}",
                  channels, channels, global_residual=global_residual)


@register_family("csc_hybrid", filters=(1, 1024), unfoldings=(1, 64), cnn_depth=(2, 64), cnn_width=(1, 512))
def csc_hybrid(filters: int = 64, unfoldings: int = 6, kernel_size: int = 7, stride: int = 4, cnn_depth: int = 3,
               cnn_width: int = 32, tied: bool = False, average_shifts: bool = True, channels: int = 1,
               name: str = "") -> GraphSpec:
    """A CSC stage followed by a CNN refinement: the convolutional-LISTA estimate of the clean image, then a
    plain ConvNet (conv+ReLU, (cnn_depth - 2) x conv+ReLU, conv; 3x3, biases) that predicts a correction added to
    it -- a classical prior first, learned residual detail second. Output: the clean image."""
    b = SpecBuilder()
    csc = b.add(CSC(channels, filters, kernel_size, stride, unfoldings, tied, average_shifts), name="csc")
    b.add(Conv(channels, cnn_width, 3), name="cnn0")
    b.add(ReLU(cnn_width), name="cnn0_relu")
    for i in range(1, cnn_depth - 1):
        b.add(Conv(cnn_width, cnn_width, 3), name=f"cnn{i}")
        b.add(ReLU(cnn_width), name=f"cnn{i}_relu")
    branch = b.add(Conv(cnn_width, channels, 3), name=f"cnn{cnn_depth - 1}")
    b.add(Add(channels), [csc, branch], name="refine")
    return b.spec(name or f"csc_hybrid_m{filters}_u{unfoldings}_d{cnn_depth}_w{cnn_width}", channels, channels)


@register_family("deep_ksvd", atoms=(1, 1024), iterations=(0, 32), patch_size=(2, 16))
def deep_ksvd(atoms: int = 256, iterations: int = 5, patch_size: int = 8, mlp_hidden: tuple[int, ...] = (128, 64, 32),
              clamp: bool = True, channels: int = 1, name: str = "") -> GraphSpec:
    """Deep K-SVD (Scetbon, Elad & Milanfar 2021): one patch-LISTA block (blocks/deep_ksvd.py) on all fully
    overlapping patches, an MLP-predicted threshold per patch, learned weighted patch averaging; outputs the clean
    image. Defaults: the reference code's configuration (8 x 8 patches, 256 atoms, T = 5, MLP 64-128-64-32-1).
    Parameters grow with atoms and patch size and do not depend on the iterations; MACs grow with each knob."""
    from .blocks import PatchLISTA

    b = SpecBuilder()
    b.add(PatchLISTA(channels, patch_size, atoms, iterations, tuple(mlp_hidden), clamp), name="patch_lista")
    return b.spec(name or f"deep_ksvd_p{patch_size}_m{atoms}_t{iterations}", channels, channels)
