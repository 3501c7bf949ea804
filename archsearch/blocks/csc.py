"""Unfolded convolutional sparse coding: convolutional LISTA with stride and shift averaging (CSCNet).

Simon & Elad, "Rethinking the CSC Model for Natural Images", NeurIPS 2019 (CSCNet; reference code github
drorsimon/CSCNet, ``model/modules.py`` ``ConvLista_T``), built on Gregor & LeCun, "Learning Fast Approximations
of Sparse Coding" (LISTA), ICML 2010; presented in Elad & Milanfar's talk on designing architectures from
classical priors (``../shared/papers/elad_design_of_architectures_talk.txt``, "Paper #3: Rethinking CSC").

The model: an image x (``channels`` channels) is a sum of ``filters`` atoms of size k x k placed every ``stride``
pixels, ``x = A gamma`` with A a transposed convolution of stride s. K unfoldings of ISTA with untied matrices
(LISTA):

    gamma_0 = S_t(B x),   gamma_{k+1} = S_t(gamma_k - B(A gamma_k - x)),   output = C gamma_{K-1}

with B a strided convolution (the encoder), A and C strided transposed convolutions (decoder and output
dictionary) and S_t the soft threshold with one learned threshold per filter. ``tied: true`` uses one
dictionary D for all three (A = C = D, B = D^T: plain unfolded ISTA with a learned step folded into D).

"CSC with stride" (the paper's Sec. 4, the talk's "Observation 3"): with stride s > 1 the pursuit is solved for
each of the s^2 shifts of the image and the s^2 reconstructions are averaged -- an MMSE-like estimate; stride 1
is the classical convolutional model, stride = kernel size is patch averaging as in K-SVD denoising.

Padding and cropping (exactly the reference's ``calc_pad_sizes`` and ``_split_image``): for stride s > 1 the
image is reflect-padded by s on the top/left and on the bottom/right by s plus what makes ``size + s - k`` a
multiple of s; shift (i, j) moves that window up/left by (i, j) pixels (pads ``s - i`` on top, ``bottom + i``
below, the same for columns); each copy's output is cropped back to the image and the s^2 crops are averaged.
Stride 1 uses no padding (the reference's special case): a valid convolution B and a full transposed one A, C.
Reflect padding here is the *iterated* mirror (period 2(n - 1)); on every size where the reference's
``F.pad(mode='reflect')`` is defined (pads smaller than the image) it is identical, and it also serves images
smaller than the pads (the reference raises there).

Initialisation (the reference's): A ~ N(0, 1) scaled by 1 / sqrt(lambda_max(A^T A)) estimated with the power
method, B = C = A (copies, trained apart), thresholds 0.01 (``threshold``; the reference's ``ConvLista_T``
default, used by its ``train.py``). Departure, for speed: the power method runs 50 iterations on a
(4k + 2s)-pixel square image instead of 200 on 512 x 512 (``model/utils.py`` ``conv_power_method``): for the
sigma=25 configuration (175 filters 11 x 11, stride 8) the estimate is about 1224 vs 1246, 2 % lower (a 1 %
larger initial dictionary), at tens of milliseconds instead of 2.4 s per build.

Soft threshold: ``relu(x - t) - relu(-x - t)``, which equals the reference's ``(x > t)(x - t) + (x < -t)(x + t)``
for every t, negative thresholds included (the authors' sigma=25 weights have four).

Implementation: A and C run as one matrix product and an overlap-add (``F.fold``; the same numbers as
``conv_transpose2d``, 4x faster on CPU); when traced (TorchScript, ONNX, fvcore) as ``conv_transpose2d``, which
ONNX opset 17 supports. The shifted copies are gathered with tensor index operations on the image size, so a
traced model keeps a dynamic height and width.

Roles: the dictionaries ``conv``; the thresholds ``activation`` (the soft threshold is the network's
nonlinearity, as PReLU slopes are).

MACs (exact, :meth:`CSC.macs`): per shifted copy, each application of A, B or C costs ``filters x channels x k^2``
MACs per code position (fvcore's convention for transposed convolutions: per *input* position), and there are
2K applications (K of B, K - 1 of A, one of C) on a code of ``((H_pad - k)/s + 1) x ((W_pad - k)/s + 1)``
positions; the s^2 copies multiply this by s^2, and averaging them costs one MAC per averaged value
(s^2 x channels x H x W, as average pooling). Per pixel the s^2 copies cancel the stride's 1/s^2: the rate is
``2K m c k^2 + s^2 c`` for any stride, plus a padding overhead that vanishes for large images (so exact MACs
exceed rate x pixels). ``average_shifts: false`` keeps only shift (0, 0) (1/s^2 of the cost, no averaging).
The soft thresholds, the residual ``A gamma - x`` and ``gamma - B r`` are elementwise and excluded.

Also here: the ``cscnet`` and ``csc_hybrid`` families, the ``cscnet`` zoo model and the CSCNet authors' weight
layout (``cscnet``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..families import register_family
from ..spec import Block, BlockExample, ExportLimits, GraphSpec, SpecBuilder, register_block
from ..weights import WeightsError, register_layout
from ..zoo import ZooEntry, register_zoo
from ._common import SameChannels, positive, traced
from .conv import Conv, ReLU
from .merge import Add


def csc_pads(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one image side for stride > 1 (the reference's ``calc_pad_sizes``): ``stride``
    before; after, ``stride`` plus what makes ``size + stride - kernel_size`` a multiple of the stride."""
    rest = (size + stride - kernel_size) % stride
    return stride, (0 if rest == 0 else stride - rest) + stride


def reflect_index(i: int, n: int) -> int:
    """Index into a side of length n of position i of its mirror extension (no edge repeat, period 2(n - 1));
    equals ``F.pad(mode='reflect')`` wherever that is defined."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i %= period
    return period - i if i >= n else i


def csc_reflect(positions: torch.Tensor, n) -> torch.Tensor:
    """:func:`reflect_index` of a tensor of positions (``n`` an int, or a traced image size)."""
    period = 2 * n - 2
    period = period.clamp(min=1) if isinstance(period, torch.Tensor) else max(period, 1)
    p = torch.remainder(positions, period)
    return torch.where(p >= n, period - p, p)


def csc_synthesis(code: torch.Tensor, weight: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """``F.conv_transpose2d(code, weight, stride=stride)`` as one matrix product (``filters`` x ``channels k^2``
    per code position) and an overlap-add (``F.fold``): the same numbers, 4x faster than PyTorch's CPU transposed
    convolution for CSCNet's shapes, and the same MAC count (the products; the overlap-add is sums). Traced
    (TorchScript / ONNX export, fvcore), it is the transposed convolution itself: ONNX opset 17 has no col2im."""
    if traced():
        return F.conv_transpose2d(code, weight, stride=stride)
    n, m, hc, wc = code.shape
    k = kernel_size
    cols = torch.matmul(code.flatten(2).transpose(1, 2), weight.reshape(m, -1)).transpose(1, 2)
    return F.fold(cols, ((hc - 1) * stride + k, (wc - 1) * stride + k), k, stride=stride)


def csc_power_norm(weight: torch.Tensor, stride: int, iterations: int = 50) -> torch.Tensor:
    """lambda_max(D^T D) of the strided synthesis operator D (``conv_transpose2d`` with ``weight``) by the power
    method, on a (4k + 2s)-pixel square image (see the module docstring)."""
    k = weight.shape[-1]
    side = 4 * k + 2 * stride
    code = (side - k) // stride + 1
    x = torch.randn(1, weight.shape[0], code, code, dtype=weight.dtype)
    for _ in range(iterations):
        x = x / torch.linalg.vector_norm(x)
        x = F.conv2d(csc_synthesis(x, weight, k, stride), weight, stride=stride)
    return torch.linalg.vector_norm(x)


class CSCModule(nn.Module):
    def __init__(self, spec: CSC):
        super().__init__()
        m, c, k, s = spec.filters, spec.channels, spec.kernel_size, spec.stride
        self.stride, self.kernel_size, self.unfoldings = s, k, spec.unfoldings
        self.average_shifts = spec.average_shifts
        init = torch.randn(m, c, k, k)
        with torch.no_grad():
            init = init / torch.sqrt(csc_power_norm(init, s))
        self.tied = spec.tied
        if spec.tied:
            self.dictionary = nn.Parameter(init)
        else:
            # A (decoder inside the iterations) exists only when there is an iteration to use it.
            self.decoder = nn.Parameter(init.clone()) if spec.unfoldings > 1 else None
            self.encoder = nn.Parameter(init.clone())
            self.output = nn.Parameter(init.clone())
        self.threshold = nn.Parameter(torch.full((1, m, 1, 1), float(spec.threshold)))

    def _shrink(self, z: torch.Tensor) -> torch.Tensor:
        t = self.threshold
        return F.relu(z - t) - F.relu(-z - t)

    def _weights(self) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        if self.tied:
            return self.dictionary, self.dictionary, self.dictionary
        return self.decoder, self.encoder, self.output

    def _copies(self, x: torch.Tensor) -> torch.Tensor:
        """The padded shifted copies, (N * copies, C, H_pad, W_pad), copy number ``i * s + j`` for shift (i, j).

        Written with tensor operations on the image size (no Python lists), so that a traced model (TorchScript,
        ONNX) keeps a dynamic height and width."""
        n, c, h, w = x.shape
        s, k = self.stride, self.kernel_size
        shifts = s if self.average_shifts else 1
        hp, wp = h + 2 * s + (k - h) % s, w + 2 * s + (k - w) % s  # csc_pads: s before, s + (k - size) % s after
        shift = torch.arange(shifts, device=x.device)[:, None]
        rows = csc_reflect(torch.arange(hp, device=x.device)[None, :] - s + shift, h).flatten()
        cols = csc_reflect(torch.arange(wp, device=x.device)[None, :] - s + shift, w).flatten()
        y = x.index_select(2, rows).index_select(3, cols)  # (N, C, shifts * Hp, shifts * Wp)
        return y.reshape(n, c, shifts, hp, shifts, wp).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, hp, wp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c_out = self._weights()
        s = self.stride
        n, ch, h, w = x.shape
        y = x if s == 1 else self._copies(x)
        gamma = self._shrink(F.conv2d(y, b, stride=s))
        for _ in range(self.unfoldings - 1):
            gamma = self._shrink(gamma - F.conv2d(csc_synthesis(gamma, a, self.kernel_size, s) - y, b, stride=s))
        out = csc_synthesis(gamma, c_out, self.kernel_size, s)
        if s == 1:
            return out
        if not self.average_shifts:
            return out[:, :, s:s + h, s:s + w]
        out = out.reshape(n, s, s, ch, out.shape[-2], out.shape[-1])
        crops = [out[:, i, j, :, s - i:s - i + h, s - j:s - j + w] for i in range(s) for j in range(s)]
        return torch.stack(crops, dim=1).mean(dim=1)


@register_block
@dataclass(frozen=True)
class CSC(SameChannels, Block):
    """Convolutional LISTA on ``channels`` image channels (in = out); defaults are CSCNet's sigma=25 model."""

    type = "csc"
    paper = "Simon & Elad, CSCNet, NeurIPS 2019 (ConvLista_T); Gregor & LeCun, LISTA, ICML 2010"

    channels: int = 1
    filters: int = 175
    kernel_size: int = 11
    stride: int = 8  # the talk: "q = 9/10 performs best" for n = 11; the released sigma=25 model uses 8
    unfoldings: int = 12
    tied: bool = False
    average_shifts: bool = True
    threshold: float = 0.01

    @classmethod
    def examples(cls) -> list[BlockExample]:
        base = dict(filters=8, kernel_size=5, unfoldings=3)
        return [
            BlockExample("s2", CSC(**base, stride=2)),
            BlockExample("s3-tied", CSC(**base, stride=3, tied=True), (13, 11)),
            BlockExample("s1", CSC(**base, stride=1)),
            BlockExample("s4-k4-patches", CSC(filters=8, kernel_size=4, stride=4, unfoldings=2), (9, 14)),
            BlockExample("s2-one-shift", CSC(**base, stride=2, average_shifts=False)),
            BlockExample("s3-u1", CSC(filters=8, kernel_size=5, stride=3, unfoldings=1)),  # no decoder A
            BlockExample("rgb", CSC(channels=3, filters=8, kernel_size=3, stride=2, unfoldings=2), (16, 12)),
            BlockExample("tiny-image", CSC(filters=4, kernel_size=7, stride=4, unfoldings=2), (5, 6)),  # pads > image
        ]

    def check(self) -> None:
        positive(self, "channels", "filters", "kernel_size", "stride", "unfoldings")
        if self.stride > self.kernel_size:
            raise SpecError("stride", f"must be <= kernel_size {self.kernel_size} (stride = kernel size is patch "
                                      f"averaging; a larger stride leaves pixels without atoms), got {self.stride}")
        if self.threshold < 0:
            raise SpecError("threshold", f"(the initial soft threshold) must be >= 0, got {self.threshold}")

    @property
    def copies(self) -> int:
        """Shifted copies the pursuit runs on: stride^2, or 1 (stride 1, or ``average_shifts: false``)."""
        return self.stride**2 if self.average_shifts else 1

    def params_by_role(self) -> dict[str, int]:
        n_dict = 1 if self.tied else (3 if self.unfoldings > 1 else 2)
        return {"conv": n_dict * self.filters * self.channels * self.kernel_size**2, "activation": self.filters}

    def _per_code_position(self) -> int:
        return 2 * self.unfoldings * self.filters * self.channels * self.kernel_size**2

    def macs_per_pixel(self) -> Fraction:
        s2 = self.stride**2
        rate = Fraction(self._per_code_position() * self.copies, s2)
        return rate + (self.copies * self.channels if self.copies > 1 else 0)

    def code_size(self, h: int, w: int) -> tuple[int, int]:
        """Code positions (rows, columns) of one copy for an h x w image."""
        k, s = self.kernel_size, self.stride
        if s == 1:
            return h - k + 1, w - k + 1
        hp, wp = h + sum(csc_pads(h, k, s)), w + sum(csc_pads(w, k, s))
        return (hp - k) // s + 1, (wp - k) // s + 1

    def macs(self, h: int, w: int) -> int:
        ch, cw = self.code_size(h, w)
        total = self.copies * self._per_code_position() * ch * cw
        if self.copies > 1:
            total += self.copies * self.channels * h * w  # the average over the copies
        return total

    def build(self) -> nn.Module:
        return CSCModule(self)

    def export_limits(self) -> ExportLimits:
        if self.stride == 1:
            return ExportLimits()
        # the reference's padding, s + (k - size) % s after the image: torch.export cannot prove for a free size
        # that the strided pursuit's code positions tile it; for multiples of the stride the padding is a constant
        return ExportLimits(size_multiple=self.stride,
                            reason=f"height and width multiples of the stride {self.stride} (the reference's "
                                   "padding depends on the size modulo the stride)",
                            onnx_legacy="the reflect padding's remainder by the symbolic image size "
                                        "(aten.remainder.Scalar with a SymInt) has no dynamo-exporter translation "
                                        "(onnxscript 0.7); the legacy exporter traces it as a tensor op")

    def export(self, ctx) -> str:
        for helper in (traced, csc_reflect, csc_synthesis, csc_power_norm):
            ctx.need(helper)
        return f"{ctx.need(CSCModule)}({self.namespace()})"


# ---------------------------------------------------------------------------------------------------------
# the CSCNet families, zoo model and the CSCNet authors' weight layout
# ---------------------------------------------------------------------------------------------------------
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


# CSCNet sigma=25 (Simon & Elad 2019): one convolutional LISTA block, 3 x 175 x 11 x 11 dictionaries + 175
# thresholds = 63,700 parameters; outputs the clean image (no global residual).
register_zoo(ZooEntry("cscnet", "cscnet", dict(filters=175, kernel_size=11, stride=8, unfoldings=12),
                      "Simon & Elad NeurIPS 2019 (CSCNet sigma=25: 175 filters 11x11, stride 8, 12 unfoldings)", "63K",
                      "denoise"))


#: CSCNet's ``ConvLista_T`` keys -> the ``csc`` block's (node ``csc`` of the ``cscnet`` zoo spec, blocks/csc.py).
CSCNET_KEYS = {
    "apply_A.weight": "blocks.csc.decoder",  # A: transposed conv inside the iterations
    "apply_B.weight": "blocks.csc.encoder",  # B: strided conv, image -> code
    "apply_C.weight": "blocks.csc.output",  # C: transposed conv, code -> output image
    "soft_threshold.threshold": "blocks.csc.threshold",  # (1, filters, 1, 1), one per filter
}


def official_cscnet_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Map the CSCNet authors' keys (github drorsimon/CSCNet, ``model/modules.py`` ``ConvLista_T``) onto
    ``cscnet``'s. The weight tensors keep their shapes: A and C are ``ConvTranspose2d(filters, 1)`` weights and B
    a ``Conv2d(1, filters)`` weight, all (filters, 1, k, k), which is how the ``csc`` block stores them."""
    unknown = sorted(set(state) - set(CSCNET_KEYS))
    if unknown:
        raise WeightsError(f"unexpected key {unknown[0]!r} in a CSCNet state_dict (expected {', '.join(CSCNET_KEYS)})")
    return {CSCNET_KEYS[k]: v for k, v in state.items()}


register_layout("cscnet", lambda sd: bool(sd) and set(sd) == set(CSCNET_KEYS), official_cscnet_state_dict,
                "github drorsimon/CSCNet (trained_models/sigma_*.model, ConvLista_T)")
