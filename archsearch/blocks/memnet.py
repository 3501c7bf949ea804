"""MemNet memory block and multi-supervised reconstruction (Tai, Yang, Liu & Xu, ICCV 2017).

Memory block m (paper Eq. (5)-(10), Fig. 2): a *recursive unit* applies R times one pre-activation residual
block ``H <- H + W2 t(W1 t(H))`` with ``t`` = BN then ReLU (Eq. (6)); in the original Caffe model the R recursions
**share** the conv weights W1, W2 within the block while each recursion has its own BNs. The R outputs are the
short-term memory; the long-term memory is the list of earlier states ``[B_0, ..., B_{m-1}]`` (FENet output and
previous blocks), which the graph feeds to this node as its inputs (dense concatenation edges, last input =
current state). The *gate unit* is BN -> ReLU -> 1x1 conv over the concatenated memories back to ``channels``.

As the Caffe model (github tyshiwo/MemNet ``caffe_files/MemNet_M6R6_80C64/MemNet_M6R6_80C64_train.prototxt`` and
``test/MemNet_M6R6_80C64/MemNet_M6R6_80C64_deploy.prototxt``, commit 10b18e9): every conv has a bias (Caffe's
default ``bias_term``; BN comes *before* each conv here, so a bias is not redundant); a Caffe ``BatchNorm`` +
``Scale`` pair is one affine ``nn.BatchNorm2d`` (eps 1e-5 in both); the recursions of block m share
``conv0m_wa/ba`` and ``conv0m_wb/bb`` (train prototxt param names) while each has its own BN+Scale; the gate's
``concat0m`` reads the **long-term memories first** (``conv1``, ``conv_transition_01`` .. ``_0{m-1}``), then the
recursions' outputs ``eltwise0m_01`` .. ``_0R`` (``gate_order: long_first``). ``gate_order: short_first`` is this
repository's earlier order (short-term first), kept only so that its checkpoints still load; use
:func:`gate_weight_permutation` to carry gate weights between the two orders.

Ablations of Table 1: ``long_term=False`` (MemNet_NL) -- the node reads only B_{m-1} and the gate sees the
short-term memory only; ``short_term=False`` (MemNet_NS) -- the gate sees only the last recursion's output.

Roles: the recursions' convs ``conv``, their BNs ``normalization``, the gate's BN and 1x1 conv ``gate``.
MACs per pixel: R x (2 convs + 2 BNs) + gate BN + gate 1x1 conv; conv bias additions, residual additions and
ReLUs excluded (the convention of every conv here).

Also here: the ``memnet`` family and its zoo models (M6R6 and the Table 1 ablations).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from ..families import register_family
from ..spec import INPUT, Block, BlockExample, GraphSpec, SpecBuilder, register_block
from ..zoo import ZooEntry, register_zoo
from ._common import odd_kernel, positive
from .conv import BatchNorm, Conv, ReLU


# The ReLU after each BN runs in place: the BN's output is read by nothing else (BN's backward needs its input, not
# its output), so the unit writes one activation fewer -- the M2R2 32-channel training step (batch 16 x 40 x 40,
# bench_throughput.py's model) took 4-6% less time in interleaved runs on a 2-core EPYC (2026-12-07). A custom
# autograd Function for the whole BN-ReLU-conv unit (its mask applied in place to the conv's input gradient)
# computed the same bits and measured no faster (118.6 vs 116.3 ms per step), so the units stay plain modules.
class _BNReLUConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, bias: bool):
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias))


class MemoryBlockModule(nn.Module):
    # channels_last "auto": NHWC for MemNet (BN-ReLU-conv units: 1.13-1.16x per training step at 1 and 2 threads,
    # 1,000-step PSNR within 0.005 dB of NCHW; bench_throughput.py).
    prefers_channels_last = True

    def __init__(self, spec: MemoryBlock):
        super().__init__()
        c, k, r = spec.channels, spec.kernel_size, spec.recursions
        n_conv = 1 if spec.share_weights else r
        self.conv1 = nn.ModuleList(nn.Conv2d(c, c, k, padding=k // 2, bias=spec.bias) for _ in range(n_conv))
        self.conv2 = nn.ModuleList(nn.Conv2d(c, c, k, padding=k // 2, bias=spec.bias) for _ in range(n_conv))
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(r))
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(r))
        self.gate = _BNReLUConv(spec.gate_in_channels, c, 1, spec.bias)
        self.short_term = spec.short_term
        self.long_term = spec.long_term
        self.long_first = spec.gate_order == "long_first"
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *memories: torch.Tensor) -> torch.Tensor:
        h = memories[-1]
        short = []
        for i in range(len(self.bn1)):
            j = 0 if len(self.conv1) == 1 else i
            h = h + self.conv2[j](self.relu(self.bn2[i](self.conv1[j](self.relu(self.bn1[i](h))))))
            short.append(h)
        parts = short if self.short_term else short[-1:]
        if self.long_term:
            parts = list(memories) + parts if self.long_first else parts + list(memories)
        return self.gate(torch.cat(parts, dim=1))


@register_block
@dataclass(frozen=True)
class MemoryBlock(Block):
    """One memory block; ``n_memories`` = number of long-term memories it reads (block m reads m)."""

    type = "memory_block"
    paper = "Tai et al., MemNet, ICCV 2017, Eq. (5)-(10), Table 1 (NL/NS)"

    channels: int = 64
    recursions: int = 6
    n_memories: int = 1
    long_term: bool = True
    short_term: bool = True
    share_weights: bool = True  # the original Caffe model shares the convs across recursions of a block
    kernel_size: int = 3
    bias: bool = True  # Caffe's convs have biases (BN precedes each conv, so a bias is not redundant)
    gate_order: Literal["long_first", "short_first"] = "long_first"  # Caffe's concat0m: long-term first

    @classmethod
    def examples(cls) -> list[BlockExample]:
        out = []
        for n in (1, 3):
            out += [
                BlockExample(f"m{n}", MemoryBlock(8, 2, n_memories=n)),
                BlockExample(f"m{n}-unshared", MemoryBlock(8, 2, n_memories=n, share_weights=False)),
                BlockExample(f"m{n}-ns", MemoryBlock(8, 3, n_memories=n, short_term=False)),
            ]
        return out + [
            BlockExample("nl", MemoryBlock(8, 2, n_memories=1, long_term=False)),
            BlockExample("nl-ns-nobias", MemoryBlock(8, 2, long_term=False, short_term=False, bias=False)),
            BlockExample("m2-short-first", MemoryBlock(8, 2, n_memories=2, gate_order="short_first")),
            BlockExample("m2-ns-short-first-nobias", MemoryBlock(8, 2, n_memories=2, short_term=False,
                                                                 gate_order="short_first", bias=False)),
        ]

    def check(self) -> None:
        positive(self, "channels", "recursions", "n_memories")
        odd_kernel(self)
        if not self.long_term and self.n_memories != 1:
            raise SpecError("n_memories", f"must be 1 without long-term links (long_term: false), got {self.n_memories}")

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.channels,) * self.n_memories

    @property
    def out_channels(self) -> int:
        return self.channels

    @property
    def gate_in_channels(self) -> int:
        c = self.channels
        return (self.recursions if self.short_term else 1) * c + (self.n_memories * c if self.long_term else 0)

    def params_by_role(self) -> dict[str, int]:
        c, k, r = self.channels, self.kernel_size, self.recursions
        n_conv = 1 if self.share_weights else r
        conv = n_conv * 2 * (c * c * k * k + (c if self.bias else 0))
        g = self.gate_in_channels
        return {
            "conv": conv,
            "normalization": r * 2 * 2 * c,
            "gate": 2 * g + g * c + (c if self.bias else 0),
        }

    def macs_per_pixel(self) -> Fraction:
        c, k, r = self.channels, self.kernel_size, self.recursions
        g = self.gate_in_channels
        return Fraction(r * (2 * c * c * k * k + 2 * c) + g + g * c)

    def build(self) -> nn.Module:
        return MemoryBlockModule(self)

    def export(self, ctx) -> str:
        ctx.need(_BNReLUConv)
        return f"{ctx.need(MemoryBlockModule)}({self.namespace('gate_in_channels')})"


def gate_weight_permutation(block: MemoryBlock, order_from: str, order_to: str) -> list[int]:
    """Index map for the gate's input channels (its BN parameters/statistics and its 1x1 conv's input axis) from
    one ``gate_order`` to the other: ``new[..., j] = old[..., perm[j]]``."""
    c = block.channels
    short = (block.recursions if block.short_term else 1) * c
    long = block.n_memories * c if block.long_term else 0
    spans = {"short_first": {"short": (0, short), "long": (short, short + long)},
             "long_first": {"long": (0, long), "short": (long, long + short)}}
    if order_from not in spans or order_to not in spans:
        raise SpecError("gate_order", f"must be long_first or short_first, got {order_from!r} -> {order_to!r}")
    perm: list[int] = []
    for part in ("long", "short") if order_to == "long_first" else ("short", "long"):
        a, b = spans[order_from][part]
        perm.extend(range(a, b))
    return perm


class MemNetReconModule(nn.Module):
    def __init__(self, spec: MemNetRecon):
        super().__init__()
        n_norms = 1 if spec.shared_norm else spec.n_outputs
        self.norms = nn.ModuleList(nn.BatchNorm2d(spec.channels) for _ in range(n_norms))
        self.relu = nn.ReLU()
        k = spec.kernel_size
        self.conv = nn.Conv2d(spec.channels, spec.out_channels, k, padding=k // 2, bias=spec.bias)  # shared
        # w_m initialised to 1/M: the ensemble starts as a plain average of the intermediate predictions (Caffe's
        # Scale filler would start at 1; only the initialisation differs).
        self.weights = nn.Parameter(torch.full((spec.n_outputs,), 1.0 / spec.n_outputs))
        self.intermediate: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> torch.Tensor:
        # y_m = x + f_rec(B_m), Eq. (11): Caffe's bn/scale_conv_end_0m -> relu -> conv_end_0m (shared Recon_w/b)
        preds = [x + self.conv(self.relu(self.norms[0 if len(self.norms) == 1 else i](b)))
                 for i, b in enumerate(states)]
        if self.training:
            self.intermediate = preds  # read by the trainer for the multi-supervised loss, Eq. (12)
        out = preds[0] * self.weights[0]
        for i in range(1, len(preds)):
            out = out + self.weights[i] * preds[i]
        return out


@register_block
@dataclass(frozen=True)
class MemNetRecon(Block):
    """Multi-supervised output (paper Sec. 3.3, Eq. (11)-(12)), as the Caffe deploy prototxt: for every block
    state B_m its own BN+Scale (``bn_conv_end_0m``), ReLU, then *one shared* conv (``Recon_w``, ``Recon_b``), plus
    the input (``HR_recovery_0m``), times a learned weight (``weight_output_end_0m``), summed. Inputs: the network
    input, then B_1..B_M. ``shared_norm: true`` is this repository's earlier variant (one BN for all outputs).

    Roles: ReconNet conv ``conv``, its BNs ``normalization``, the M averaging weights ``gate``.
    MACs per pixel: M x (BN + conv); the weighted average (M multiply-adds per output value) is elementwise
    and excluded.
    """

    type = "memnet_recon"
    paper = "Tai et al., MemNet, ICCV 2017, Sec. 3.3; Caffe deploy prototxt of M6R6"

    channels: int
    out_channels: int
    n_outputs: int
    kernel_size: int = 3
    bias: bool = True  # Caffe's Recon_b
    shared_norm: bool = False  # Caffe: one BN+Scale per output

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("m1", MemNetRecon(8, out_channels=1, n_outputs=1)),
            BlockExample("m3-rgb", MemNetRecon(8, out_channels=3, n_outputs=3)),
            BlockExample("m3-shared-norm-nobias", MemNetRecon(8, out_channels=1, n_outputs=3, shared_norm=True,
                                                               bias=False)),
        ]

    def check(self) -> None:
        positive(self, "channels", "out_channels", "n_outputs")
        odd_kernel(self)

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.out_channels,) + (self.channels,) * self.n_outputs

    def params_by_role(self) -> dict[str, int]:
        c, o, k = self.channels, self.out_channels, self.kernel_size
        n_norms = 1 if self.shared_norm else self.n_outputs
        return {"conv": c * o * k * k + (o if self.bias else 0), "normalization": 2 * c * n_norms,
                "gate": self.n_outputs}

    def macs_per_pixel(self) -> Fraction:
        c, o, k = self.channels, self.out_channels, self.kernel_size
        return Fraction(self.n_outputs * (c + c * o * k * k))

    def build(self) -> nn.Module:
        return MemNetReconModule(self)

    def export(self, ctx) -> str:
        return f"{ctx.need(MemNetReconModule)}({self.namespace()})"


# ---------------------------------------------------------------------------------------------------------
# the MemNet family and zoo models
# ---------------------------------------------------------------------------------------------------------
# n and R: the paper's M (memory blocks) and R (recursions); R splits a design into lines (MemNet Table 6)
@register_family("memnet", n_blocks=(1, 64), recursions=(1, 64), channels=(1, 512),
                 labels={"n_blocks": "n", "recursions": "R"}, variants=("recursions",))
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


# The Caffe M6R6 deploy prototxt's graph (FENet BN-ReLU-conv, 6 memory blocks x 6 recursions with shared convs and
# per-recursion BN, gates reading long-term memories first, convs with biases, one BN per output and a shared
# ReconNet conv): 695,497 parameters = the prototxt's learnable blobs (676,992 conv weights; paper: 677K).
# ``memnet_m6r6`` is its single-output form: 694,851.
register_zoo(ZooEntry("memnet_m6r6", "memnet", dict(n_blocks=6, recursions=6),
                      "Tai et al. ICCV 2017 (M6R6, 80 layers)", "677K", "denoise"))
register_zoo(ZooEntry("memnet_m6r6_ms", "memnet", dict(n_blocks=6, recursions=6, multi_supervised=True),
                      "Tai et al. ICCV 2017, multi-supervised M6R6", "677K", "denoise"))
register_zoo(ZooEntry("memnet_m6r6_nl", "memnet", dict(n_blocks=6, recursions=6, long_term=False),
                      "Tai et al. ICCV 2017, Table 1 MemNet_NL", "-", "denoise"))
register_zoo(ZooEntry("memnet_m6r6_ns", "memnet", dict(n_blocks=6, recursions=6, short_term=False),
                      "Tai et al. ICCV 2017, Table 1 MemNet_NS", "-", "denoise"))
