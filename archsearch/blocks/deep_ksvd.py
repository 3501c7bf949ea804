"""Patch-based LISTA with an adaptive threshold and weighted patch averaging (Deep K-SVD).

Scetbon, Elad & Milanfar, "Deep K-SVD Denoising", IEEE TIP 2021 (arXiv:1909.13164; reference code github
meyerscetbon/Deep-K-SVD, ``Deep_KSVD.py`` ``DenoisingNet_MLP``), the unfolded form of Elad & Aharon's K-SVD
denoiser (TIP 2006); Elad & Milanfar's talk, "Paper #1: Deep K-SVD": all fully overlapping patches go through the
same pursuit in parallel, LISTA (Gregor & LeCun 2010) instead of OMP, an adaptive threshold per patch from a
small network, and the patches averaged back with learned weights.

For every p x p patch y_i (all positions, no padding) with n = channels x p^2 values:

    lambda_i = MLP(y_i)                         (n -> h_1 -> ... -> 1, ReLU between)
    z_0 = S_{lambda_i / c}(D^T y_i),   z_{t+1} = S_{lambda_i / c}((I - D^T D / c) z_t + D^T y_i / c),  t < T
    x_i = clamp(D z_T),   out = sum_i R_i^T (w . x_i) / sum_i R_i^T w

with D the n x atoms dictionary, c a learned step (initialised to ||D||_2^2), S the soft threshold
``sign(z) relu(|z| - l)`` and w a learned p x p weight of the patch pixels. The reference works on images
rescaled to [-1, 1] and clamps the patch estimates to that range; the block does the same inside (input in
[0, 1] -> 2x - 1, output back to [0, 1]), so it keeps archsearch's [0, 1] convention. Initialisation as the
reference: D the overcomplete 2-D DCT (Kronecker square of a 1-D DCT with sqrt(atoms) atoms, columns
normalised; for a non-square ``atoms`` the first ``atoms`` columns of the next square's DCT), c = ||D||_2^2,
w ~ N(1, 0.1^2), the MLP with PyTorch's default Linear initialisation. The reference's configuration is
p = 8, 256 atoms, T = 5, MLP 64-128-64-32-1 (35,138 parameters; the talk quotes 45K).

Roles: the dictionary ``conv``; the threshold MLP ``activation`` (it sets the soft threshold, the network's
nonlinearity; as CSC's thresholds); the step c and the averaging weights w ``other``.

MACs (exact, :meth:`PatchLISTA.macs`): per patch position, the MLP (its Linear layers), D^T y (n x atoms),
T iterations of the atoms x atoms matrix (I - D^T D / c), and D z (atoms x n); once per forward pass, D^T D
(atoms x n x atoms; not needed when T = 0). There are (H - p + 1)(W - p + 1) patch positions, so the per-pixel rate is the per-patch
cost. Excluded: soft thresholds, clamps, the weighting by w and the overlap-add (elementwise, and data movement).

Also here: the ``deep_ksvd`` family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..families import register_family
from ..spec import Block, BlockExample, ExportLimits, GraphSpec, SpecBuilder, register_block
from ._common import SameChannels, positive


def overcomplete_dct(patch_size: int, atoms: int) -> torch.Tensor:
    """The reference's ``init_dct``: a 1-D overcomplete DCT with ceil(sqrt(atoms)) atoms, its Kronecker square
    (columns normalised), rows in C (row-major) pixel order; the first ``atoms`` columns. (patch_size^2, atoms)."""
    side = math.isqrt(atoms - 1) + 1 if atoms > 1 else 1
    k = torch.arange(side, dtype=torch.float64)
    v = torch.cos(torch.arange(patch_size, dtype=torch.float64)[:, None] * k[None, :] * math.pi / side)
    v[:, 1:] -= v[:, 1:].mean(dim=0, keepdim=True)  # all atoms but the DC one are zero-mean
    v /= torch.linalg.vector_norm(v, dim=0, keepdim=True)
    d = torch.kron(v, v)
    d /= torch.linalg.vector_norm(d, dim=0, keepdim=True)
    # the reference reorders the rows from Fortran to C order: a transpose of every 2-D atom
    order = torch.arange(patch_size * patch_size).reshape(patch_size, patch_size).t().reshape(-1)
    return d[order, :atoms].float()


class PatchLISTAModule(nn.Module):
    def __init__(self, spec: PatchLISTA):
        super().__init__()
        p, c = spec.patch_size, spec.channels
        n = c * p * p
        self.patch_size, self.iterations = p, spec.iterations
        d = overcomplete_dct(p, spec.atoms)
        self.dictionary = nn.Parameter(d.repeat(c, 1) / math.sqrt(c) if c > 1 else d)  # (n, atoms)
        self.step = nn.Parameter(torch.linalg.matrix_norm(self.dictionary.detach(), ord=2).square().reshape(1))
        widths = (n, *spec.mlp_hidden, 1)
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.threshold_mlp = nn.Sequential(*layers)
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(n))  # w ~ N(1, 0.1^2), as the reference
        self.clamp = spec.clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.patch_size
        patches = F.unfold(2 * x - 1, p).transpose(1, 2)  # (N, positions, n), values in the reference's [-1, 1]
        lam = self.threshold_mlp(patches) / self.step  # (N, positions, 1)
        d = self.dictionary
        dty = torch.matmul(patches, d)  # (N, positions, atoms)
        z = torch.sign(dty) * F.relu(dty.abs() - lam)
        if self.iterations:
            gram = torch.mm(d.t(), d)  # once per forward pass
            s = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device) - gram / self.step
        for _ in range(self.iterations):
            u = torch.matmul(z, s) + dty / self.step
            z = torch.sign(u) * F.relu(u.abs() - lam)
        est = torch.matmul(z, d.t())
        if self.clamp:
            est = est.clamp(-1.0, 1.0)
        num = F.fold((est * self.weight).transpose(1, 2), (h, w), p)
        den = F.fold(self.weight.expand_as(est).transpose(1, 2), (h, w), p)
        return (num / den + 1) / 2


@register_block
@dataclass(frozen=True)
class PatchLISTA(SameChannels, Block):
    """Deep K-SVD on ``channels`` image channels (in = out); defaults are the reference code's configuration."""

    type = "patch_lista"
    paper = "Scetbon, Elad & Milanfar, Deep K-SVD Denoising, TIP 2021 (DenoisingNet_MLP)"

    channels: int = 1
    patch_size: int = 8
    atoms: int = 256
    iterations: int = 5  # T: LISTA steps after the first thresholding (the reference's training script)
    mlp_hidden: tuple[int, ...] = (128, 64, 32)
    clamp: bool = True  # clamp the patch estimates to the data range, as the reference

    @classmethod
    def examples(cls) -> list[BlockExample]:
        return [
            BlockExample("p4", PatchLISTA(patch_size=4, atoms=16, iterations=2, mlp_hidden=(8, 4))),
            BlockExample("p5-nonsquare-T0", PatchLISTA(patch_size=5, atoms=12, iterations=0, mlp_hidden=(6,))),
            BlockExample("p3-rgb-noclamp", PatchLISTA(channels=3, patch_size=3, atoms=9, iterations=1, mlp_hidden=(4,),
                                                      clamp=False), (9, 11)),
        ]

    def check(self) -> None:
        positive(self, "channels", "patch_size", "atoms")
        if self.iterations < 0:
            raise SpecError("iterations", f"must be >= 0, got {self.iterations}")
        for i, h in enumerate(self.mlp_hidden):
            if h < 1:
                raise SpecError(f"mlp_hidden[{i}]", f"must be >= 1, got {h}")

    @property
    def patch_values(self) -> int:
        return self.channels * self.patch_size**2

    def _mlp_widths(self) -> tuple[int, ...]:
        return (self.patch_values, *self.mlp_hidden, 1)

    def params_by_role(self) -> dict[str, int]:
        n, widths = self.patch_values, self._mlp_widths()
        mlp = sum(a * b + b for a, b in zip(widths, widths[1:]))
        return {"conv": n * self.atoms, "activation": mlp, "other": 1 + n}

    def _per_patch(self) -> int:
        n, m, widths = self.patch_values, self.atoms, self._mlp_widths()
        return sum(a * b for a, b in zip(widths, widths[1:])) + 2 * n * m + self.iterations * m * m

    def macs_per_pixel(self) -> Fraction:
        return Fraction(self._per_patch())

    def macs(self, h: int, w: int) -> int:
        p = self.patch_size
        gram = self.atoms * self.patch_values * self.atoms if self.iterations else 0
        return (h - p + 1) * (w - p + 1) * self._per_patch() + gram

    def build(self) -> nn.Module:
        return PatchLISTAModule(self)

    def export_limits(self) -> ExportLimits:
        # torch.export specialises a patch grid of one row or column: at least two patches each way
        return ExportLimits(min_size=self.patch_size + 1,
                            reason=f"height and width >= {self.patch_size + 1} (at least two {self.patch_size}x"
                                   f"{self.patch_size} patches each way)")

    def export(self, ctx) -> str:
        ctx.need(overcomplete_dct)
        return f"{ctx.need(PatchLISTAModule)}({self.namespace()})"


# ---------------------------------------------------------------------------------------------------------
# the Deep K-SVD family
# ---------------------------------------------------------------------------------------------------------
@register_family("deep_ksvd", atoms=(1, 1024), iterations=(0, 32), patch_size=(2, 16))
def deep_ksvd(atoms: int = 256, iterations: int = 5, patch_size: int = 8, mlp_hidden: tuple[int, ...] = (128, 64, 32),
              clamp: bool = True, channels: int = 1, name: str = "") -> GraphSpec:
    """Deep K-SVD (Scetbon, Elad & Milanfar 2021): one patch-LISTA block (blocks/deep_ksvd.py) on all fully
    overlapping patches, an MLP-predicted threshold per patch, learned weighted patch averaging; outputs the clean
    image. Defaults: the reference code's configuration (8 x 8 patches, 256 atoms, T = 5, MLP 64-128-64-32-1).
    Parameters grow with atoms and patch size and do not depend on the iterations; MACs grow with each knob."""
    b = SpecBuilder()
    b.add(PatchLISTA(channels, patch_size, atoms, iterations, tuple(mlp_hidden), clamp), name="patch_lista")
    return b.spec(name or f"deep_ksvd_p{patch_size}_m{atoms}_t{iterations}", channels, channels)
