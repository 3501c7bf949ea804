"""NSR: neural sparse representation residual block (Fan, Yu, Liu, Huang et al., NeurIPS 2020).

The hidden layer of a residual block ``x + conv2(ReLU(conv1(x)))`` is split into k *sparsity groups*; ideally one
group is active per patch. Relaxed (paper Sec. 3.2-3.3): an MLP on pooled features predicts weights beta over the
k groups, and since ReLU is piecewise linear the weighted sum of neurons is approximated by a weighted sum of
**kernels**, ``W_hat = sum_i beta_i W_i``; then one conv with W_hat runs on the image (the paper's efficient form
-- not k convs). *Cardinality* d splits each group into d cardinal groups, each with its own softmax over k
(gamma in R^{d x k}, Sec. 3.4).

Regimes (paper Tables 2 and 3):

* ``same_size`` -- the k groups together are the dense hidden layer (each ``hidden_channels / k`` wide):
  parameters ~ the dense block's, conv MACs ~ 1/k of them;
* ``same_flops`` -- each group is as wide as the dense hidden layer: conv MACs ~ the dense block's, parameters
  ~ k x.

Selection: softmax with temperature tau, sigmoid, or none (raw MLP output), as in the Table 1 ablation; separate
MLPs for the two convs around the ReLU (the paper's better choice, 34.87 vs 34.85 dB) or one shared. Pooling:
``pool: 0`` is global average pooling (the reference code, github ychfan/pt_ir ``models/wdsr_nsr.py``);
``pool: p`` pools p x p patches, each with its own kernels (the paper's per-patch selection). With patches the
image is padded to a multiple of p, and each patch's conv reads a halo of (kernel_size - 1) / 2 pixels from its
neighbours, so the result equals a per-pixel choice of kernel by the pixel's patch.

Roles: grouped conv weights ``conv``; the selection MLP(s) ``selection``.
MACs for one image (exact, :meth:`NSRResBlock.macs`): conv1 + conv2 on the (padded) pixels with the aggregated
kernels, one average pooling (1 MAC per pooled input value), and per selection unit (the image, or each patch):
the MLP(s) and the kernel aggregation (k MACs per aggregated weight or bias). ReLU, softmax/sigmoid and the
residual addition are elementwise and excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..spec import Block, register_block
from ._common import odd_kernel, positive


def _mlp(c: int, hidden: int, out: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(c, out)  # one Linear layer, as the reference code
    return nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, out))


class NSRResBlockModule(nn.Module):
    def __init__(self, spec: NSRResBlock):
        super().__init__()
        c, g, k, d, ks = spec.channels, spec.group_width, spec.sparsity_groups, spec.cardinality, spec.kernel_size
        self.c, self.g, self.k, self.d, self.ks = c, g, k, d, ks
        self.pool, self.temperature, self.selection = spec.pool, spec.temperature, spec.selection
        self.branch_scale = spec.branch_scale
        # Kernels laid out by (group, cardinal group, ...) so that aggregation is one bmm per conv.
        self.weight1 = nn.Parameter(torch.empty(k, d, g // d, c, ks, ks))
        self.weight2 = nn.Parameter(torch.empty(k, d, c, g // d, ks, ks))
        self.bias1 = nn.Parameter(torch.empty(k, d, g // d)) if spec.bias else None
        self.bias2 = nn.Parameter(torch.empty(c)) if spec.bias else None
        # Same bounds as nn.Conv2d's default init (kaiming_uniform with a=sqrt(5) -> U(+-1/sqrt(fan_in))).
        for p, fan_in in ((self.weight1, c * ks * ks), (self.weight2, g * ks * ks),
                          (self.bias1, c * ks * ks), (self.bias2, g * ks * ks)):
            if p is not None:
                nn.init.uniform_(p, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.select1 = _mlp(c, spec.mlp_hidden, d * k)
        self.select2 = None if spec.shared_selection else _mlp(c, spec.mlp_hidden, d * k)

    def _beta(self, mlp: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
        logits = mlp(pooled).view(-1, self.d, self.k)
        if self.selection == "softmax":
            return torch.softmax(logits / self.temperature, dim=-1)
        if self.selection == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    @staticmethod
    def _aggregate(beta: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """sum_i beta[n, j, i] * weight[i, j, ...] for every unit n and cardinal group j -> (n, d, rest)."""
        k, d = weight.shape[:2]
        out = torch.bmm(beta.permute(1, 0, 2), weight.reshape(k, d, -1).permute(1, 0, 2))
        return out.permute(1, 0, 2)

    def _kernels(self, beta1: torch.Tensor, beta2: torch.Tensor):
        n, c, g, ks = beta1.shape[0], self.c, self.g, self.ks
        w1 = self._aggregate(beta1, self.weight1).reshape(n * g, c, ks, ks)
        w2 = self._aggregate(beta2, self.weight2).reshape(n, self.d, c, g // self.d, ks, ks)
        w2 = w2.permute(0, 2, 1, 3, 4, 5).reshape(n * c, g, ks, ks)
        b1 = self._aggregate(beta1, self.bias1).reshape(n * g) if self.bias1 is not None else None
        b2 = self.bias2.repeat(n) if self.bias2 is not None else None
        return w1, b1, w2, b2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.pool == 0:
            pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
            beta1 = self._beta(self.select1, pooled)
            beta2 = beta1 if self.select2 is None else self._beta(self.select2, pooled)
            w1, b1, w2, b2 = self._kernels(beta1, beta2)
            # Batched grouped conv: every image has its own aggregated kernel (groups = batch).
            y = F.conv2d(x.reshape(1, b * c, h, w), w1, b1, padding=self.ks // 2, groups=b)
            y = F.conv2d(F.relu(y), w2, b2, padding=self.ks // 2, groups=b).view(b, c, h, w)
        else:
            p = self.pool
            hp, wp = -(-h // p) * p, -(-w // p) * p
            xp = F.pad(x, (0, wp - w, 0, hp - h)) if (hp, wp) != (h, w) else x
            pooled = F.avg_pool2d(xp, p).permute(0, 2, 3, 1).reshape(-1, c)  # (b * nh * nw, c)
            beta1 = self._beta(self.select1, pooled)
            beta2 = beta1 if self.select2 is None else self._beta(self.select2, pooled)
            w1, b1, w2, b2 = self._kernels(beta1, beta2)
            y = F.relu(self._patch_conv(xp, w1, b1, self.g))
            if (hp, wp) != (h, w):  # the second conv must see zeros outside the image, as a full conv would
                y = F.pad(y[:, :, :h, :w], (0, wp - w, 0, hp - h))
            y = self._patch_conv(y, w2, b2, c)[:, :, :h, :w]
        return x + (y * self.branch_scale if self.branch_scale != 1.0 else y)

    def _patch_conv(self, x: torch.Tensor, weight: torch.Tensor, bias, cout: int) -> torch.Tensor:
        """Each p x p patch convolved with its own kernel; patches read a halo so edges match a full conv."""
        b, cin, hp, wp = x.shape
        p, a = self.pool, self.ks // 2
        nh, nw = hp // p, wp // p
        win = p + 2 * a
        cols = F.unfold(F.pad(x, (a, a, a, a)), kernel_size=win, stride=p)  # (b, cin*win*win, nh*nw)
        cols = cols.view(b, cin, win, win, nh * nw).permute(0, 4, 1, 2, 3).reshape(1, -1, win, win)
        out = F.conv2d(cols, weight, bias, groups=b * nh * nw)  # (1, b*nh*nw*cout, p, p)
        return out.view(b, nh, nw, cout, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, cout, hp, wp)


@register_block
@dataclass(frozen=True)
class NSRResBlock(Block):
    """Sparse residual block; ``hidden_channels`` is the dense block's hidden width N."""

    type = "nsr_residual"
    family = "nsr"
    paper = "Fan et al., Neural Sparse Representation for Image Restoration, NeurIPS 2020, Sec. 3, Tables 1-3"

    channels: int
    hidden_channels: int
    kernel_size: int = 3
    sparsity_groups: int = 4
    cardinality: int = 1
    regime: Literal["same_size", "same_flops"] = "same_size"
    pool: int = 0  # 0: global average pooling (reference code); p: p x p patches
    temperature: float = 1.0  # tau = 1 was best in Table 1 (34.87 dB)
    selection: Literal["softmax", "sigmoid", "none"] = "softmax"
    shared_selection: bool = False  # separate selection for the two convs was better (paper Sec. 4.1)
    mlp_hidden: int = 0  # 0: a single Linear layer (reference code)
    bias: bool = True
    branch_scale: float = 1.0

    def check(self) -> None:
        positive(self, "channels", "hidden_channels", "sparsity_groups", "cardinality")
        odd_kernel(self)
        if self.regime == "same_size" and self.hidden_channels % self.sparsity_groups:
            raise SpecError("hidden_channels", f"must be divisible by sparsity_groups {self.sparsity_groups} "
                                               f"in the same_size regime, got {self.hidden_channels}")
        if self.group_width % self.cardinality:
            raise SpecError("cardinality", f"must divide the group width {self.group_width} "
                                           f"(hidden_channels / sparsity_groups for same_size), got {self.cardinality}")
        if self.pool < 0:
            raise SpecError("pool", f"must be 0 (global) or a patch size >= 1, got {self.pool}")
        if not self.temperature > 0:
            raise SpecError("temperature", f"must be > 0, got {self.temperature}")
        if self.mlp_hidden < 0:
            raise SpecError("mlp_hidden", f"must be >= 0, got {self.mlp_hidden}")

    @property
    def group_width(self) -> int:
        """Width of one sparsity group = hidden width after kernel aggregation."""
        if self.regime == "same_size":
            return self.hidden_channels // self.sparsity_groups
        return self.hidden_channels

    @property
    def input_channels(self) -> tuple[int, ...]:
        return (self.channels,)

    @property
    def out_channels(self) -> int:
        return self.channels

    # -- counting -------------------------------------------------------------------------------------
    def _n_mlp(self) -> int:
        return 1 if self.shared_selection else 2

    def _mlp_params(self) -> tuple[int, int]:
        """(parameters, MACs) of one selection MLP for one selection unit."""
        c, dk, h = self.channels, self.cardinality * self.sparsity_groups, self.mlp_hidden
        if h == 0:
            return c * dk + dk, c * dk
        return c * h + h + h * dk + dk, c * h + h * dk

    def _conv_params(self) -> int:
        c, g, k, kk = self.channels, self.group_width, self.sparsity_groups, self.kernel_size**2
        return k * (g * c * kk + (g if self.bias else 0)) + k * c * g * kk + (c if self.bias else 0)

    def _unit_macs(self) -> int:
        """MACs paid once per selection unit (image or patch): MLP(s) and kernel aggregation."""
        c, g, k, kk = self.channels, self.group_width, self.sparsity_groups, self.kernel_size**2
        agg = k * (g * c * kk + (g if self.bias else 0)) + k * c * g * kk
        return self._n_mlp() * self._mlp_params()[1] + agg

    def params_by_role(self) -> dict[str, int]:
        return {"conv": self._conv_params(), "selection": self._n_mlp() * self._mlp_params()[0]}

    def macs_per_pixel(self) -> Fraction:
        c, g, kk = self.channels, self.group_width, self.kernel_size**2
        per_pixel = Fraction(2 * g * c * kk + c)  # conv1 + conv2 with aggregated kernels, + pooling
        if self.pool:
            per_pixel += Fraction(self._unit_macs(), self.pool**2)
        return per_pixel

    def macs(self, h: int, w: int) -> int:
        c, g, kk = self.channels, self.group_width, self.kernel_size**2
        if self.pool == 0:
            return (2 * g * c * kk + c) * h * w + self._unit_macs()
        p = self.pool
        nh, nw = -(-h // p), -(-w // p)
        return (2 * g * c * kk + c) * nh * nw * p * p + nh * nw * self._unit_macs()

    def build(self) -> nn.Module:
        return NSRResBlockModule(self)

    def export(self, ctx) -> str:
        ctx.need(_mlp)
        return f"{ctx.need(NSRResBlockModule)}({self.namespace('group_width')})"
