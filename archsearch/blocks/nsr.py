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

Layouts (``layout``):

* ``reference`` (default) -- the authors' code, github ychfan/pt_ir ``models/wdsr_nsr.py`` (commit bb6933c):
  *each* conv is a sparse conv with its own selection MLP reading the pooled *input of that conv* (conv1: the
  block input, c values; conv2: the hidden activation after ReLU, g values); the k groups and d cardinal groups
  lie on each conv's **output** channels (paper Eq. 10: "concat is concatenation along the axis of output
  channels"), and each of the k groups has its own bias, aggregated with the same weights as the kernels.
* ``hidden_groups`` -- the block as the paper's Eq. 4 and 9 write it, kept as an ablation: "the hidden neurons
  are divided into k groups" and ``W_2 = [W_2^1, ..., W_2^k]`` is split along the hidden neurons it reads, so
  conv2's groups and cardinal groups lie on its *input* channels, both MLPs read the pooled block input, and
  conv2 has one bias of c values. (It was this repository's only form before the reference layout was added.)

``weight_norm`` (reference layout): every conv's (k x out)-row weight is ``W = gain * V / ||V||`` with one gain per
row (``torch.nn.utils.weight_norm``, dim 0), *before* the aggregation, as in the reference. The reference
initialises conv1's gains to 2 and conv2's to ``res_scale`` (1/sqrt(#blocks)) with zero biases: its residual
scaling is conv2's learnable gain, so here ``branch_scale`` is that initial gain and no fixed multiplier is applied;
without ``weight_norm`` it multiplies the branch.

Selection: softmax over the k groups (``temperature`` tau; the reference has none, tau = 1), sigmoid, or none (raw
MLP output), as in the Table 1 ablation; the MLP's k x d outputs are read group-major (the reference's
``view(-1, k, d)``); separate MLPs for the two convs around the ReLU (the paper's better choice, 34.87 vs
34.85 dB) or one shared (both convs use conv1's weights beta). Pooling: ``pool: 0`` is global average pooling (the
reference code); ``pool: p`` pools p x p patches, each with its own kernels (the paper's per-patch selection).
With patches the image is padded to a multiple of p, and each patch's conv reads a halo of (kernel_size - 1) / 2
pixels from its neighbours, so the result equals a per-pixel choice of kernel by the pixel's patch.

Roles: grouped conv weights, biases and weight-norm gains ``conv``; the selection MLP(s) ``selection``.
MACs for one image (exact, :meth:`NSRResBlock.macs`): conv1 + conv2 on the (padded) pixels with the aggregated
kernels, the average poolings (1 MAC per pooled value: the input, and in the reference layout the hidden
activation), per selection unit (the image, or each patch) the MLP(s) and the kernel aggregation (k MACs per
aggregated weight or bias), and once per forward pass the weight-norm squared norms (1 MAC per weight; the
rescaling by gain / norm is elementwise). ReLU, softmax/sigmoid and the residual addition are elementwise and
excluded.

Also here: the families ``wdsr_nsr`` / ``edsr_nsr`` (the authors' network, pt_ir ``models/wdsr_nsr.py``) and
``nsr_resnet`` (a generic search family), the NSR zoo models, and :func:`pt_ir_nsr_state_dict` (the authors'
checkpoint keys mapped onto a built ``wdsr_nsr`` / ``edsr_nsr``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArchsearchError, SpecError
from ..families import register_family
from ..spec import Block, BlockExample, ExportLimits, GraphSpec, SpecBuilder, register_block
from ..zoo import ZooEntry, register_zoo
from ._common import SameChannels, odd_kernel, positive, traced
from .conv import Conv
from .merge import Add
from .residual import add_tail
from .wdsr import MeanShift, PixelShuffle, WNConv


def _mlp(c: int, hidden: int, out: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(c, out)  # one Linear layer, as the reference code
    return nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, out))


# -- per-image convolution ---------------------------------------------------------------------------------
# Every image has its own aggregated kernels (paper Sec. 3.3: "one conv with W_hat runs per image"). The
# straightforward form is one grouped conv with groups = batch (kept in the benchmark and the equality test as
# ``_grouped_conv``); on CPU it streams the whole batch through memory per op and tiles badly for the narrow
# group widths NSR is about (g = c / k output channels). Here each image is convolved on its own: on a CPU with
# oneDNN and images big enough (_onednn) by one oneDNN conv per image, its epilogue writing into the batch
# (_OneDnnImageConv, below), else (small images, CUDA, float64, oneDNN off) by the GEMM form _ImageConv, on a
# zero-padded, row-flattened copy that stays in cache: with the padded width wp = w + 2a (a = ks // 2), the pixel
# (y + dy, x + dx) of the padded image lies at flat index y * wp + x + dy * wp + dx, so tap (dy, dx) of the
# kernel reads the contiguous slice starting at dy * wp + dx and the whole conv is
#     out[:, y * wp + x] = sum_taps W[:, :, dy, dx] @ pad[:, y * wp + x + dy * wp + dx]
# on an h x wp output grid (the 2a extra columns per row wrap around and are dropped). Same function, same MACs
# (the aggregated-kernel conv the counts charge; the wrap-around columns add 2a / w). Sequential loop: the same
# summation order on every run (deterministic).
def _stacked(cin: int, ks: int) -> bool:
    """Whether one image's taps are stacked into one GEMM (K = cin * ks^2, a strided im2col of that image): when
    that im2col is small (cin <= 17 for 3 x 3), as for conv2 of a same-size block, whose narrow input would make
    K-thin GEMMs per tap; wider inputs accumulate one GEMM per tap (K = cin) instead of an im2col too big for the
    cache (measured on a 2-core AVX-512 CPU, 64 x 64 images)."""
    return cin * ks * ks <= 160


def _geometry(h: int, w: int, ks: int) -> tuple[int, int, int, int]:
    """(a, padded width, flat length of a padded image incl. the slack the last tap reads, output grid h * wp)."""
    a = ks // 2
    wp = w + 2 * a
    return a, wp, (h + 2 * a) * wp + 2 * a, h * wp


def _taps(w: torch.Tensor) -> torch.Tensor:
    """Per-image kernels (n, cout, cin, ks, ks) in the layout the loop reads: (n, cout, cin * ks^2) for stacked
    taps, else (ks^2, n, cout, cin)."""
    n, cout, cin, ks = w.shape[:3] + w.shape[-1:]
    if _stacked(cin, ks):
        return w.reshape(n, cout, cin * ks * ks)
    return w.permute(3, 4, 0, 1, 2).reshape(ks * ks, n, cout, cin).contiguous()


def _chunk(cin: int, cout: int, ks: int, p: int, m: int) -> int:
    """Images per batched GEMM: as many as keep the padded inputs, the im2col and the outputs within ~3 MiB of fp32
    (about the two cores' L2), so each op does enough work to amortise its dispatch and thread start-up (which
    dominate when the machine is shared and one per image is too many), while the data stays in cache."""
    per_image = cin * p + cout * m + (cin * ks * ks * m if _stacked(cin, ks) else 0)
    return max(1, (3 << 20) // (4 * per_image))


def _conv_grid(pad: torch.Tensor, wt: torch.Tensor, bias, out: torch.Tensor, ks: int, wp: int) -> None:
    """out (nc, cout, h * wp) = the convs of nc images on the output grid; pad (nc, cin, P) their padded flat
    images; wt their :func:`_taps` (images on dim 0 if stacked, else dim 1); bias (nc, cout) or None."""
    nc, cin, m = pad.shape[0], pad.shape[1], out.shape[2]
    if wt.dim() == 3:  # stacked taps: a strided im2col of these images only, one batched GEMM
        cols = pad.as_strided((nc, cin, ks, ks, m), (pad.stride(0), pad.stride(1), wp, 1, 1))
        cols = cols.reshape(nc, cin * ks * ks, m)
        torch.bmm(wt, cols, out=out) if bias is None else torch.baddbmm(bias[:, :, None], wt, cols, out=out)
        return
    for t in range(ks * ks):
        xs = pad[:, :, (t // ks) * wp + t % ks:][:, :, :m]
        if t:
            out.baddbmm_(wt[t], xs)
        elif bias is None:
            torch.bmm(wt[t], xs, out=out)
        else:
            torch.baddbmm(bias[:, :, None], wt[t], xs, out=out)


def _wchunk(wt: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return wt[i:j] if wt.dim() == 3 else wt[:, i:j]


class _ImageConv(torch.autograd.Function):
    """y[i] = epilogue(conv2d(x[i], w[i], b[i], padding=ks // 2)) for every image i, epilogue ReLU (conv1) or
    res[i] + scale * (.) (conv2 and the residual addition); fusing them saves a pass over the batch."""

    @staticmethod
    def forward(ctx, x, w, b, res, relu: bool, scale: float):
        n, cin, h, wd = x.shape
        cout, ks = w.shape[1], w.shape[-1]
        a, wp, p, m = _geometry(h, wd, ks)
        y = x.new_empty(n, cout, h, wd)
        step = min(n, _chunk(cin, cout, ks, p, m))
        pad = x.new_zeros(step, cin, p)
        inner = pad[:, :, :(h + 2 * a) * wp].view(step, cin, h + 2 * a, wp)[:, :, a:a + h, a:a + wd]
        acc = x.new_empty(step, cout, m)
        wt = _taps(w)
        for i in range(0, n, step):
            j = min(n, i + step)
            c = j - i
            inner[:c].copy_(x[i:j])
            _conv_grid(pad[:c], _wchunk(wt, i, j), None if b is None else b[i:j], acc[:c], ks, wp)
            grid = acc[:c].view(c, cout, h, wp)[:, :, :, :wd]
            if relu:
                torch.clamp_min(grid, 0, out=y[i:j])
            elif res is not None:
                torch.add(res[i:j], grid, alpha=scale, out=y[i:j])
            else:
                y[i:j].copy_(grid)
        ctx.relu, ctx.scale, ctx.has_bias, ctx.has_res = relu, scale, b is not None, res is not None
        ctx.save_for_backward(x, w, y if relu else None)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, y = ctx.saved_tensors
        n, cin, h, wd = x.shape
        cout, ks = w.shape[1], w.shape[-1]
        a, wp, p, m = _geometry(h, wd, ks)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = x.new_empty(x.shape) if need_x else None
        gb = x.new_empty(n, cout) if need_b and ctx.has_bias else None
        stacked = _stacked(cin, ks)
        gw = None
        if need_w:  # written in the layout of the loop, returned as (n, cout, cin, ks, ks)
            gw = x.new_empty(n, cout, cin * ks * ks) if stacked else x.new_empty(ks * ks, n, cout, cin)
        step = min(n, _chunk(cin, cout, ks, p, m), _chunk(cout, cin, ks, p, m))
        # The gradient on the output grid, zero-padded: (cout, P) whose slice from a * wp + a is the grid, so the
        # wrap-around columns are the padding -- the input gradient is then the conv of this padded flat image
        # with the flipped, transposed kernels (a transposed conv), on the input's grid.
        gpad = x.new_zeros(step, cout, p)
        gm = gpad[:, :, a * wp + a:][:, :, :m]
        gin = gm.view(step, cout, h, wp)[:, :, :, :wd]  # strided view: m = h * wp within a row-major buffer
        wflip = _taps(w.flip(-2, -1).transpose(1, 2)) if need_x else None
        pad = x.new_zeros(step, cin, p) if need_w else None
        inner = pad[:, :, :(h + 2 * a) * wp].view(step, cin, h + 2 * a, wp)[:, :, a:a + h, a:a + wd] if need_w else None
        acc = x.new_empty(step, cin, m) if need_x else None
        for i in range(0, n, step):
            j = min(n, i + step)
            c = j - i
            if ctx.relu:
                torch.mul(gy[i:j], y[i:j] > 0, out=gin[:c])
            elif ctx.scale != 1.0:
                torch.mul(gy[i:j], ctx.scale, out=gin[:c])
            else:
                gin[:c].copy_(gy[i:j])
            if gb is not None:
                torch.sum(gm[:c], 2, out=gb[i:j])
            if need_w:
                inner[:c].copy_(x[i:j])
                if stacked:
                    cols = pad[:c].as_strided((c, cin, ks, ks, m), (pad.stride(0), pad.stride(1), wp, 1, 1))
                    torch.bmm(gm[:c], cols.reshape(c, cin * ks * ks, m).transpose(1, 2), out=gw[i:j])
                else:
                    for t in range(ks * ks):
                        xs = pad[:c, :, (t // ks) * wp + t % ks:][:, :, :m]
                        torch.bmm(gm[:c], xs.transpose(1, 2), out=gw[t, i:j])
            if need_x:
                _conv_grid(gpad[:c], _wchunk(wflip, i, j), None, acc[:c], ks, wp)
                gx[i:j].copy_(acc[:c].view(c, cin, h, wp)[:, :, :, :wd])
        if gw is not None:
            gw = gw.view(n, cout, cin, ks, ks) if stacked else gw.view(ks, ks, n, cout, cin).permute(2, 3, 4, 0, 1)
        return gx, gw, gb, (gy if ctx.has_res else None), None, None


def _onednn(x: torch.Tensor, cin: int, cout: int) -> bool:
    """Whether :class:`_OneDnnImageConv` runs these per-image convs rather than the GEMM form :class:`_ImageConv`:
    fp32 on a CPU whose PyTorch has oneDNN enabled (``torch.backends.mkldnn``; not on CUDA, other dtypes, oneDNN
    off), and an image big enough for one oneDNN call each to pay: pixels x the narrow width (min(cin, cout), the
    c / k of a group) >= 40,960, or pixels x min(that width, 16) >= 32,768. Below that the GEMM form, which batches
    several small images per product, was faster. Measured on a 2-core AVX-512 EPYC (2026-12-07, one NSR block's
    forward + backward, batch 16, GEMM time / oneDNN time): width 16 -- 40 x 40 0.88-1.04, 48 x 48 1.28-1.36,
    64 x 64 1.43-1.45; width 8 -- 48 x 48 0.82, 64 x 64 1.07-1.08; width 4 -- 64 x 64 1.01, 96 x 96 1.10; width 32
    -- 32 x 32 0.77, 40 x 40 1.08; width 64 -- 24 x 24 1.09, 32 x 32 1.26 (the rule keeps the GEMM form only at
    24 x 24 there). The choice depends on shapes only, so a run repeats bit for bit."""
    if not _onednn_runs(x):
        return False
    pixels, width = x.shape[-2] * x.shape[-1], min(cin, cout)
    return pixels * width >= 40_960 or pixels * min(width, 16) >= 32_768


def _onednn_runs(x: torch.Tensor) -> bool:
    """Whether oneDNN can run per-image convs on ``x``: fp32 on a CPU, oneDNN present and enabled."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.enabled
            and torch.backends.mkldnn.is_available())


class _OneDnnImageConv(torch.autograd.Function):
    """:class:`_ImageConv`'s function (per-image kernels, ReLU or residual epilogue) as one oneDNN convolution per
    image (``aten.convolution``, which PyTorch hands to oneDNN for fp32 on a CPU), the epilogue writing each image's
    result into its slice of the batch's output: ``ReLU(conv)`` or ``res + scale * conv``. Backward: the weight and
    bias gradients by ``convolution_backward`` per image; the input gradient as the forward convolution of the
    (ReLU-masked) output gradient with the flipped, transposed kernels, copied into its slice (stride 1, padding
    ks // 2: a transposed conv is that conv). Against the GEMM form on a 2-core AVX-512 EPYC (2026-12-07,
    ``bench_nsr_sparse.py --quick --gemm``: one NSR block's training step, batch 32, 64 ch, 64 x 64, interleaved):
    same size k = 4 284 -> 155 ms, k = 8 215 -> 136 ms, same FLOPs 1.8-2.0x; the GEMM form's narrow (c / k rows)
    matrix products ran at ~40 GMAC/s where oneDNN's direct kernels reach 45-85. Same function, same MACs; float
    sums in another order (tests: equal to the grouped conv within 1e-5).

    The epilogues are separate ops on purpose. This Function used oneDNN's fused ``add`` / ReLU post-ops
    (``mkldnn::_convolution_pointwise_``, writing in place into a zeroed or cloned batch tensor); on NCHW images
    oneDNN ran them as a conv then an ``add_`` anyway, so the zero fill and the clone were extra passes over the
    batch. Without them: the same bits (outputs and all gradients compared with torch.equal when the change was
    made, NCHW and NHWC, ReLU and residual epilogues), no private op, and the block's training step (batch 32, 64 ch,
    64 x 64, 9 interleaved rounds, 2-core EPYC, 2026-12-07) k = 2 / 4 / 8 / 16 219 -> 216, 138 -> 134,
    118 -> 114, 150 -> 133 ms."""

    @staticmethod
    def forward(ctx, x, w, b, res, relu: bool, scale: float):
        n, cin, h, wd = x.shape
        cout, ks = w.shape[1], w.shape[-1]
        pad, one = [ks // 2] * 2, [1, 1]
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
            else torch.contiguous_format
        x, w = x.contiguous(memory_format=fmt), w.contiguous()
        y = torch.empty(n, cout, h, wd, dtype=x.dtype, memory_format=fmt)
        for i in range(n):
            o = torch.ops.aten.convolution(x[i:i + 1], w[i], None if b is None else b[i], one, pad, one, False,
                                           [0, 0], 1)
            if relu:
                torch.clamp_min(o, 0, out=y[i:i + 1])
            elif res is not None:
                torch.add(res[i:i + 1], o, alpha=scale, out=y[i:i + 1])
            else:
                y[i:i + 1].copy_(o)
        ctx.relu, ctx.scale, ctx.has_bias, ctx.has_res, ctx.fmt = relu, scale, b is not None, res is not None, fmt
        ctx.save_for_backward(x, w, y if relu else None)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, y = ctx.saved_tensors
        n, cout, ks = x.shape[0], w.shape[1], w.shape[-1]
        pad, one = [ks // 2] * 2, [1, 1]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        g_all = gy.contiguous(memory_format=ctx.fmt)
        gx = torch.empty(x.shape, dtype=x.dtype, memory_format=ctx.fmt) if need_x else None
        gw = torch.empty_like(w) if need_w else None
        gb = x.new_empty(n, cout) if need_b else None
        wt = w.flip(-2, -1).transpose(1, 2).contiguous() if need_x else None  # (n, cin, cout, ks, ks)
        for i in range(n):
            g = g_all[i:i + 1]
            if ctx.relu:
                g = g * (y[i:i + 1] > 0)
            elif ctx.scale != 1.0:
                g = g * ctx.scale
            if need_w or need_b:
                _, gwi, gbi = torch.ops.aten.convolution_backward(g, x[i:i + 1], w[i], [cout] if need_b else None,
                                                                  one, pad, one, False, [0, 0], 1,
                                                                  [False, need_w, need_b])
                if need_w:
                    gw[i].copy_(gwi)
                if need_b:
                    gb[i].copy_(gbi)
            if need_x:
                gx[i:i + 1].copy_(torch.ops.aten.convolution(g, wt[i], None, one, pad, one, False, [0, 0], 1))
        return gx, gw, gb, (gy if ctx.has_res else None), None, None


def _grouped_conv(x: torch.Tensor, w: torch.Tensor, b, padding: int) -> torch.Tensor:
    """The batch as one grouped conv with groups = batch (the former formulation): the traced form (TorchScript /
    ONNX export and fvcore count a plain conv; a custom autograd Function does not trace), the benchmark's and the
    equality test's baseline."""
    n, cin, h, wd = x.shape
    cout, ks = w.shape[1], w.shape[-1]
    y = F.conv2d(x.reshape(1, n * cin, h, wd), w.reshape(n * cout, cin, ks, ks),
                 None if b is None else b.reshape(n * cout), padding=padding, groups=n)
    return y.view(n, cout, h, wd)


class _GlobalMean(torch.autograd.Function):
    """Global average pooling (n, c, h, w) -> (n, c) for the selection MLPs. Its backward hands back a broadcast
    view (stride 0) of g / (h w) instead of materialising it: ``mean``'s own backward writes a full-size tensor
    that autograd then adds to the conv's input gradient, measured 18% of an NSR layer's training step (k = 8,
    batch 32 x 64 x 64, one thread); the view is read once, inside that addition. Same values as
    ``adaptive_avg_pool2d(x, 1)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.mean((2, 3))

    @staticmethod
    def backward(ctx, g):
        n, c, h, w = ctx.shape
        return (g / (h * w))[:, :, None, None].expand(n, c, h, w)


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """(n, c) means of ``x`` over its pixels: :class:`_GlobalMean` (traced: ``adaptive_avg_pool2d``, which the
    exporters know)."""
    if traced():
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
    return _GlobalMean.apply(x)


def _image_conv(x: torch.Tensor, w: torch.Tensor, b, res, relu: bool, scale: float) -> torch.Tensor:
    """Per-image convs, x (n, cin, h, w) with w (n, cout, cin, ks, ks) and b (n, cout), then ReLU or res + scale *
    (.): :class:`_OneDnnImageConv` where oneDNN runs and the images are big enough (:func:`_onednn`), else
    :class:`_ImageConv`. (Traced, the block runs the grouped conv itself: see ``NSRResBlockModule.forward``.)"""
    if _onednn(x, w.shape[2], w.shape[1]):
        return _OneDnnImageConv.apply(x, w, b, res, relu, scale)
    return _ImageConv.apply(x, w, b, res, relu, scale)

class NSRResBlockModule(nn.Module):
    # The trainer's channels_last "auto" keeps NCHW for NSR models (even with xUnits elsewhere): the per-image
    # GEMMs work on an NCHW padded copy, so NHWC adds two layout conversions per conv (measured 0.95x at 1 thread,
    # 0.97x at 2, batch 16 x 40x40).
    prefers_channels_last = False

    def __init__(self, spec: NSRResBlock):
        super().__init__()
        c, g, k, d, ks = spec.channels, spec.group_width, spec.sparsity_groups, spec.cardinality, spec.kernel_size
        self.c, self.g, self.k, self.d, self.ks = c, g, k, d, ks
        self.pool, self.temperature, self.selection = spec.pool, spec.temperature, spec.selection
        self.reference = spec.layout == "reference"
        self.weight_norm = spec.weight_norm
        self.branch_scale = 1.0 if spec.weight_norm else spec.branch_scale  # with weight norm: gain2's init
        # Kernels laid out (sparsity group, cardinal group, output channels of the cardinal group, ...): the row
        # order of the reference's (k * out, in, ks, ks) weight, so aggregation is one bmm per conv.
        self.weight1 = nn.Parameter(torch.empty(k, d, g // d, c, ks, ks))
        self.bias1 = nn.Parameter(torch.empty(k, d, g // d)) if spec.bias else None
        if self.reference:  # groups and cardinals on conv2's *output* channels, k biases aggregated (Eq. 10)
            self.weight2 = nn.Parameter(torch.empty(k, d, c // d, g, ks, ks))
            self.bias2 = nn.Parameter(torch.empty(k, d, c // d)) if spec.bias else None
        else:  # hidden_groups: groups and cardinals on conv2's *input* (hidden) channels, one bias
            self.weight2 = nn.Parameter(torch.empty(k, d, c, g // d, ks, ks))
            self.bias2 = nn.Parameter(torch.empty(c)) if spec.bias else None
        # Same bounds as nn.Conv2d's default init (kaiming_uniform with a=sqrt(5) -> U(+-1/sqrt(fan_in))).
        for p, fan_in in ((self.weight1, c * ks * ks), (self.weight2, g * ks * ks),
                          (self.bias1, c * ks * ks), (self.bias2, g * ks * ks)):
            if p is not None:
                nn.init.uniform_(p, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        if spec.weight_norm:
            # torch.nn.utils.weight_norm(dim=0) on each (k * out)-row weight: W = gain * V / ||V||, one gain per
            # row. Init as the reference Block: conv1's gain 2.0, conv2's gain the residual scale, zero biases.
            self.gain1 = nn.Parameter(torch.full((k, d, g // d), 2.0))
            self.gain2 = nn.Parameter(torch.full((k, d, c // d), float(spec.branch_scale)))
            for p in (self.bias1, self.bias2):
                if p is not None:
                    nn.init.zeros_(p)
        self.select1 = _mlp(c, spec.mlp_hidden, k * d)
        # the reference's conv2 MLP reads its own input, the pooled hidden activation (width g)
        self.select2 = None if spec.shared_selection else _mlp(g if self.reference else c, spec.mlp_hidden, k * d)

    def _beta(self, mlp: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
        """Selection weights (units, k, d): the MLP's outputs read group-major, as the reference's view."""
        logits = mlp(pooled).view(-1, self.k, self.d)
        if self.selection == "softmax":
            return torch.softmax(logits / self.temperature if self.temperature != 1.0 else logits, dim=1)
        if self.selection == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    @staticmethod
    def _aggregate(beta: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """sum_i beta[n, i, j] * weight[i, j, ...] for every unit n and cardinal group j -> (n, d, rest)."""
        k, d = weight.shape[:2]
        out = torch.bmm(beta.permute(2, 0, 1), weight.reshape(k, d, -1).permute(1, 0, 2))
        return out.permute(1, 0, 2)

    @staticmethod
    def _normed(v: torch.Tensor, gain) -> torch.Tensor:
        if gain is None:
            return v
        return v * (gain[..., None, None, None] / torch.linalg.vector_norm(v, dim=(-3, -2, -1), keepdim=True))

    def kernels1(self, beta1: torch.Tensor):
        """conv1's aggregated kernels and biases for every unit: (n * g, c, ks, ks), (n * g)."""
        n, ks = beta1.shape[0], self.ks
        w = self._normed(self.weight1, getattr(self, "gain1", None))
        w1 = self._aggregate(beta1, w).reshape(n * self.g, self.c, ks, ks)
        b1 = self._aggregate(beta1, self.bias1).reshape(n * self.g) if self.bias1 is not None else None
        return w1, b1

    def kernels2(self, beta2: torch.Tensor):
        """conv2's aggregated kernels and biases for every unit: (n * c, g, ks, ks), (n * c)."""
        n, c, g, ks = beta2.shape[0], self.c, self.g, self.ks
        w = self._normed(self.weight2, getattr(self, "gain2", None))
        if self.reference:
            w2 = self._aggregate(beta2, w).reshape(n * c, g, ks, ks)
            b2 = self._aggregate(beta2, self.bias2).reshape(n * c) if self.bias2 is not None else None
            return w2, b2
        w2 = self._aggregate(beta2, w).reshape(n, self.d, c, g // self.d, ks, ks)
        w2 = w2.permute(0, 2, 1, 3, 4, 5).reshape(n * c, g, ks, ks)
        b2 = self.bias2.repeat(n) if self.bias2 is not None else None
        return w2, b2

    def _beta2(self, beta1: torch.Tensor, pooled: torch.Tensor, pooled_hidden) -> torch.Tensor:
        if self.select2 is None:
            return beta1
        return self._beta(self.select2, pooled_hidden() if self.reference else pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.pool == 0:
            pooled = global_mean(x)
            beta1 = self._beta(self.select1, pooled)
            w1, b1 = self.kernels1(beta1)
            if traced():
                # Traced (TorchScript / ONNX export, fvcore's count): the grouped conv with groups = batch on the
                # (n * out, in, ks, ks) kernels, whose shape comes from the spec's integers -- a custom autograd
                # Function does not trace, and ONNX needs the kernel's shape static.
                y = F.relu(F.conv2d(x.reshape(1, b * c, h, w), w1, b1, padding=self.ks // 2, groups=b))
                y = y.view(b, self.g, h, w)
                beta2 = self._beta2(beta1, pooled, lambda: F.adaptive_avg_pool2d(y, 1).flatten(1))
                w2, b2 = self.kernels2(beta2)
                y = F.conv2d(y.reshape(1, b * self.g, h, w), w2, b2, padding=self.ks // 2, groups=b).view(b, c, h, w)
                scale = float(self.branch_scale)
                return x + (y * scale if scale != 1.0 else y)
            # Every image has its own aggregated kernels: per-image convs (_image_conv), ReLU applied by conv1
            # and the residual addition into conv2.
            y = _image_conv(x, w1.view(b, self.g, c, self.ks, self.ks), None if b1 is None else b1.view(b, -1),
                                 None, True, 1.0)
            beta2 = self._beta2(beta1, pooled, lambda: global_mean(y))
            w2, b2 = self.kernels2(beta2)
            return _image_conv(y, w2.view(b, c, self.g, self.ks, self.ks),
                                    None if b2 is None else b2.view(b, c), x, False, float(self.branch_scale))
        else:
            p = self.pool
            hp, wp = -(-h // p) * p, -(-w // p) * p
            xp = F.pad(x, (0, wp - w, 0, hp - h)) if (hp, wp) != (h, w) else x
            pooled = F.avg_pool2d(xp, p).permute(0, 2, 3, 1).reshape(-1, c)  # (b * nh * nw, c)
            beta1 = self._beta(self.select1, pooled)
            w1, b1 = self.kernels1(beta1)
            y = F.relu(self._patch_conv(xp, w1, b1, self.g))
            if (hp, wp) != (h, w):  # the second conv must see zeros outside the image, as a full conv would
                y = F.pad(y[:, :, :h, :w], (0, wp - w, 0, hp - h))
            beta2 = self._beta2(beta1, pooled,
                                lambda: F.avg_pool2d(y, p).permute(0, 2, 3, 1).reshape(-1, self.g))
            w2, b2 = self.kernels2(beta2)
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


def _grouped_forward(m: NSRResBlockModule, x: torch.Tensor) -> torch.Tensor:
    """The block's former forward pass (global pooling): both convs as grouped convs with groups = batch. Kept only
    as the baseline of ``benchmarks/bench_nsr_sparse.py`` and ``tests/test_nsr_sparse.py``."""
    assert m.pool == 0
    b, c, h, w = x.shape
    pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
    beta1 = m._beta(m.select1, pooled)
    w1, b1 = m.kernels1(beta1)
    y = F.relu(F.conv2d(x.reshape(1, b * c, h, w), w1, b1, padding=m.ks // 2, groups=b))
    beta2 = m._beta2(beta1, pooled, lambda: F.adaptive_avg_pool2d(y.view(b, m.g, h, w), 1).flatten(1))
    w2, b2 = m.kernels2(beta2)
    y = F.conv2d(y, w2, b2, padding=m.ks // 2, groups=b).view(b, c, h, w)
    return x + (y * m.branch_scale if m.branch_scale != 1.0 else y)


@register_block
@dataclass(frozen=True)
class NSRResBlock(SameChannels, Block):
    """Sparse residual block; ``hidden_channels`` is the dense block's hidden width N."""

    type = "nsr_residual"
    paper = "Fan et al., Neural Sparse Representation for Image Restoration, NeurIPS 2020, Sec. 3, Tables 1-3"

    channels: int
    hidden_channels: int
    kernel_size: int = 3
    sparsity_groups: int = 4
    cardinality: int = 1
    regime: Literal["same_size", "same_flops"] = "same_size"
    pool: int = 0  # 0: global average pooling (reference code); p: p x p patches
    temperature: float = 1.0  # tau = 1 was best in Table 1 (34.87 dB); the reference code has none (= 1)
    selection: Literal["softmax", "sigmoid", "none"] = "softmax"
    shared_selection: bool = False  # separate selection for the two convs was better (paper Sec. 4.1)
    mlp_hidden: int = 0  # 0: a single Linear layer (reference code)
    bias: bool = True
    branch_scale: float = 1.0  # fixed multiplier of the branch; with weight_norm: conv2's initial gain
    layout: Literal["reference", "hidden_groups"] = "reference"
    weight_norm: bool = False  # the reference wraps every conv in torch.nn.utils.weight_norm

    @classmethod
    def examples(cls) -> list[BlockExample]:
        base = dict(channels=8, hidden_channels=16)
        pooled = (20, 20)  # not divisible by 4: exercises the padding of the patch pooling
        return [
            BlockExample("pool0", NSRResBlock(**base)),
            BlockExample("pool4", NSRResBlock(**base, pool=4), pooled),
            BlockExample("pool4-nonsquare", NSRResBlock(**base, pool=4, sparsity_groups=2), (20, 18)),
            BlockExample("pool4-k1", NSRResBlock(**base, pool=4, kernel_size=1), pooled),
            BlockExample("shared", NSRResBlock(**base, shared_selection=True)),
            BlockExample("shared-pool4", NSRResBlock(**base, shared_selection=True, pool=4), pooled),
            BlockExample("card2", NSRResBlock(**base, cardinality=2)),
            BlockExample("card2-pool4", NSRResBlock(**base, cardinality=2, pool=4), pooled),
            BlockExample("same_flops", NSRResBlock(8, 8, sparsity_groups=2, regime="same_flops")),
            BlockExample("same_flops-card2-pool4", NSRResBlock(8, 8, sparsity_groups=3, regime="same_flops",
                                                               cardinality=2, pool=4), pooled),
            BlockExample("sigmoid", NSRResBlock(**base, selection="sigmoid")),
            BlockExample("none", NSRResBlock(**base, selection="none", temperature=0.5)),
            BlockExample("mlp-hidden-tau", NSRResBlock(**base, mlp_hidden=4, temperature=10.0)),
            BlockExample("nobias-scale", NSRResBlock(**base, bias=False, branch_scale=0.1)),
            # the reference (pt_ir) form with weight normalisation, cardinals on both convs' outputs
            BlockExample("wn-card4", NSRResBlock(8, 8, sparsity_groups=2, cardinality=4, regime="same_flops",
                                                 weight_norm=True, branch_scale=0.25)),
            BlockExample("wn-card2-pool4", NSRResBlock(**base, cardinality=2, weight_norm=True, pool=4), pooled),
            BlockExample("wn-shared-nobias", NSRResBlock(**base, weight_norm=True, shared_selection=True, bias=False)),
            # the paper's Eq. 4/9 form (W_2 split along the hidden neurons), a named option
            BlockExample("hidden-groups", NSRResBlock(**base, layout="hidden_groups", cardinality=2)),
            BlockExample("hidden-groups-pool4", NSRResBlock(**base, layout="hidden_groups", pool=4), pooled),
            BlockExample("hidden-groups-shared", NSRResBlock(**base, layout="hidden_groups", shared_selection=True)),
        ]

    def check(self) -> None:
        positive(self, "channels", "hidden_channels", "sparsity_groups", "cardinality")
        odd_kernel(self)
        if self.regime == "same_size" and self.hidden_channels % self.sparsity_groups:
            raise SpecError("hidden_channels", f"must be divisible by sparsity_groups {self.sparsity_groups} "
                                               f"in the same_size regime, got {self.hidden_channels}")
        if self.group_width % self.cardinality:
            raise SpecError("cardinality", f"must divide the group width {self.group_width} "
                                           f"(hidden_channels / sparsity_groups for same_size), got {self.cardinality}")
        if self.layout == "reference" and self.channels % self.cardinality:
            raise SpecError("cardinality", f"must divide channels {self.channels} (conv2's output channels carry "
                                           f"the cardinal groups in the reference layout), got {self.cardinality}")
        if self.weight_norm and self.layout != "reference":
            raise SpecError("weight_norm", "is defined for layout 'reference' only (one gain per output row of "
                                           "each conv's k groups), got layout 'hidden_groups'")
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

    # -- counting -------------------------------------------------------------------------------------
    @property
    def _reference(self) -> bool:
        return self.layout == "reference"

    def _mlp_inputs(self) -> tuple[int, ...]:
        """Input width of each selection MLP: conv1's reads the block input; conv2's its own input (hidden, g)
        in the reference layout, the block input in hidden_groups."""
        if self.shared_selection:
            return (self.channels,)
        return (self.channels, self.group_width if self._reference else self.channels)

    def _mlp_counts(self, cin: int) -> tuple[int, int]:
        """(parameters, MACs) of one selection MLP reading ``cin`` pooled values, for one selection unit."""
        dk, h = self.cardinality * self.sparsity_groups, self.mlp_hidden
        if h == 0:
            return cin * dk + dk, cin * dk
        return cin * h + h + h * dk + dk, cin * h + h * dk

    def _conv_weights(self) -> int:
        """Weights of one conv's k groups (both convs have g * c * ks^2 per group)."""
        return self.sparsity_groups * self.group_width * self.channels * self.kernel_size**2

    def _bias_counts(self) -> tuple[int, int]:
        """(conv1 biases, conv2 biases): k per-group biases each in the reference layout; one conv2 bias in
        hidden_groups."""
        if not self.bias:
            return 0, 0
        k = self.sparsity_groups
        return k * self.group_width, (k * self.channels if self._reference else self.channels)

    def _conv_params(self) -> int:
        k = self.sparsity_groups
        gains = k * (self.group_width + self.channels) if self.weight_norm else 0
        return 2 * self._conv_weights() + sum(self._bias_counts()) + gains

    def _pooled_per_pixel(self) -> int:
        """Values averaged per pixel: the block input, and the hidden activation for conv2's reference MLP."""
        return self.channels + (self.group_width if self._reference and not self.shared_selection else 0)

    def _unit_macs(self) -> int:
        """MACs paid once per selection unit (image or patch): MLP(s) and kernel aggregation (k MACs per
        aggregated weight; biases aggregated too where there are k of them)."""
        b1, b2 = self._bias_counts()
        agg = 2 * self._conv_weights() + b1 + (b2 if self._reference else 0)
        return sum(self._mlp_counts(cin)[1] for cin in self._mlp_inputs()) + agg

    def _image_macs(self) -> int:
        """MACs paid once per forward pass: weight normalisation's squared norms (1 MAC per weight)."""
        return 2 * self._conv_weights() if self.weight_norm else 0

    def params_by_role(self) -> dict[str, int]:
        return {"conv": self._conv_params(),
                "selection": sum(self._mlp_counts(cin)[0] for cin in self._mlp_inputs())}

    def _pixel_macs(self) -> int:
        c, g, kk = self.channels, self.group_width, self.kernel_size**2
        return 2 * g * c * kk + self._pooled_per_pixel()  # conv1 + conv2 with aggregated kernels, + pooling

    def macs_per_pixel(self) -> Fraction:
        per_pixel = Fraction(self._pixel_macs())
        if self.pool:
            per_pixel += Fraction(self._unit_macs(), self.pool**2)
        return per_pixel

    def macs(self, h: int, w: int) -> int:
        if self.pool == 0:
            return self._pixel_macs() * h * w + self._unit_macs() + self._image_macs()
        p = self.pool
        nh, nw = -(-h // p), -(-w // p)
        return self._pixel_macs() * nh * nw * p * p + nh * nw * self._unit_macs() + self._image_macs()

    def build(self) -> nn.Module:
        return NSRResBlockModule(self)

    def export_limits(self) -> ExportLimits:
        if self.pool:
            # one grouped conv with groups = batch x patches: torch.export specialises `groups`, and with it the
            # batch and the patch grid (height and width)
            return ExportLimits(batch=False, size_multiple=None,
                                reason="per-patch kernels (pool > 0) run as one conv with groups = batch x patches, "
                                       "which torch.export fixes")
        return ExportLimits(onnx_batch=False,
                            reason="ONNX only: the per-image kernels run as one conv with groups = batch; an ONNX "
                                   "Conv's group is an attribute (a constant), and the dynamo exporter fails on a "
                                   "symbolic one (nsr_dn_sparse_plus), so the ONNX file is for batch 1")

    def export(self, ctx) -> str:
        for helper in (traced, _mlp, _stacked, _geometry, _taps, _chunk, _conv_grid, _wchunk, _ImageConv, _onednn,
                       _onednn_runs, _OneDnnImageConv, _image_conv, _GlobalMean, global_mean):
            ctx.need(helper)
        return f"{ctx.need(NSRResBlockModule)}({self.namespace('group_width')})"


# ---------------------------------------------------------------------------------------------------------
# the NSR families: the authors' WDSR/EDSR+NSR network and a residual search family; zoo models
# ---------------------------------------------------------------------------------------------------------
#: Report letters of the NSR families' swept arguments: the paper's k (sparsity groups) and d (cardinality), and n
#: residual blocks. k and d split a design into lines (Tables 2-3 compare k at each number of blocks).
NSR_LABELS = {"n_blocks": "n", "sparsity_groups": "k", "cardinality": "d"}


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
@register_family("wdsr_nsr", n_blocks=(1, 256), channels=(16, 1024, 16), expansion=(1, 16),
                 sparsity_groups=(1, 64),
                 labels=NSR_LABELS, variants=("sparsity_groups", "cardinality"))
def wdsr_nsr(n_blocks: int = 16, channels: int = 32, expansion: int = 4, sparsity_groups: int = 4,
             cardinality: int = 16, upscale: int = 2, in_channels: int = 3, out_channels: int = 3,
             image_mean: float = 0.5, name: str = "") -> GraphSpec:
    """WDSR with NSR blocks as in the authors' code (pt_ir ``models/wdsr_nsr.py``); defaults = that file's argparse
    defaults (16 blocks, 32 residual units, width multiplier 4, 4 sparsity groups, 16 cardinals). ``image_mean``:
    the constant subtracted before and added after the network (0.5, pt_ir's DIV2K setting)."""
    return _wdsr_nsr(n_blocks, channels, expansion, sparsity_groups, cardinality, upscale, in_channels,
                     out_channels, image_mean,
                     name or f"wdsr_nsr_b{n_blocks}_c{channels}_e{expansion}_k{sparsity_groups}_x{upscale}")


@register_family("edsr_nsr", n_blocks=(1, 256), channels=(16, 1024, 16), sparsity_groups=(1, 64),
                 labels=NSR_LABELS, variants=("sparsity_groups", "cardinality"))
def edsr_nsr(n_blocks: int = 16, channels: int = 64, sparsity_groups: int = 4, cardinality: int = 16,
             upscale: int = 2, in_channels: int = 3, out_channels: int = 3, image_mean: float = 0.5,
             name: str = "") -> GraphSpec:
    """"EDSR+NSR" of the NSR README (github ychfan/nsr): the same ``wdsr_nsr`` code run with 64 residual units and
    width multiplier 1 (``--num_residual_units 64 --width_multiplier 1 --num_sparsity_groups 4``)."""
    return _wdsr_nsr(n_blocks, channels, 1, sparsity_groups, cardinality, upscale, in_channels, out_channels,
                     image_mean, name or f"edsr_nsr_b{n_blocks}_c{channels}_k{sparsity_groups}_x{upscale}")


@register_family("nsr_resnet", n_blocks=(1, 256), channels=(1, 1024), expansion=(1, 16),
                 sparsity_groups=(1, 64),
                 labels=NSR_LABELS, variants=("sparsity_groups", "cardinality", "regime"))
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
    add_tail(b, out_channels, channels, upscale)
    gr = global_residual or ("subtract" if upscale == 1 else "none")
    return b.spec(name or f"nsr_resnet_b{n_blocks}_c{channels}_e{expansion}_k{sparsity_groups}_{regime}",
                  in_channels, out_channels, global_residual=gr)


# The NSR paper's denoising residual nets (Table 5): 16 blocks, 32 channels; the dense baseline is a ``resnet``
# (residual.py).
register_zoo(ZooEntry("nsr_dn_baseline", "resnet", dict(n_blocks=16, channels=32, expansion=2),
                      "Fan et al. NeurIPS 2020, Table 5 baseline (x2 width)", "0.59M", "denoise"))
register_zoo(ZooEntry("nsr_dn_sparse_minus", "nsr_resnet",
                      dict(n_blocks=16, channels=32, expansion=1, sparsity_groups=2),
                      "Fan et al. NeurIPS 2020, Table 5 sparse- (k=2, x1 width)", "0.30M", "denoise"))
register_zoo(ZooEntry("nsr_dn_sparse_plus", "nsr_resnet",
                      dict(n_blocks=16, channels=32, expansion=2, sparsity_groups=2),
                      "Fan et al. NeurIPS 2020, Table 5 sparse+ (k=2, x2 width)", "0.60M", "denoise"))
# The authors' code with its defaults but width multiplier 1 (Table 2's same-size k=4, 16 blocks): 1,260,756.
register_zoo(ZooEntry("wdsr_nsr_x2", "wdsr_nsr",
                      dict(n_blocks=16, channels=32, expansion=1, sparsity_groups=4, upscale=2),
                      "Fan et al. NeurIPS 2020, Table 2 (WDSR 16 blocks, k=4, same size, x2); pt_ir models/wdsr_nsr.py "
                      "with --width_multiplier 1", "1.2M", "sr"))
# "EDSR+NSR" of the NSR README: pt_ir ``models/wdsr_nsr.py`` with 64 units, width multiplier 1, 4 groups, 16
# cardinals: 4,877,812 / 4,887,637 / 4,901,392 parameters (the README's numbers).
for _s, _n in ((2, "4,877,812"), (3, "4,887,637"), (4, "4,901,392")):
    register_zoo(ZooEntry(f"edsr_nsr_x{_s}", "edsr_nsr", dict(upscale=_s),
                          f"Fan et al. NeurIPS 2020; github ychfan/nsr README, EDSR+NSR x{_s} "
                          "(pt_ir models/wdsr_nsr.py)",
                          _n, "sr"))


def pt_ir_nsr_state_dict(module, checkpoint: dict) -> dict:
    """A state dict of the NSR authors' code (github ychfan/pt_ir ``models/wdsr_nsr.py`` ``MODEL.state_dict()``, as
    saved with ``torch.nn.utils.weight_norm``) in the key layout of a built ``wdsr_nsr`` / ``edsr_nsr`` spec of the
    same arguments (``edsr_nsr_x2`` for the NSR README's "EDSR+NSR x2" checkpoint).

    Key mapping (n = number of blocks): ``body.0.*`` -> ``blocks.head.*``; ``body.{n+1}.*`` -> ``blocks.tail.*``;
    ``skip.0.*`` -> ``blocks.skip.*``; ``body.{i}.body.{0|2}.`` (block i, its conv1 | conv2) ``weight_v`` ->
    ``blocks.nsr{i-1}.weight{1|2}``, ``weight_g`` -> ``gain{1|2}``, ``bias`` -> ``bias{1|2}``, ``mlp.0.*`` ->
    ``select{1|2}.*``. The tensors are reshaped only: our (k, d, out/d, ...) layout is the reference's
    (k * out, ...) rows in the same order. The image mean is not in a checkpoint (a constant of the spec)."""
    target = module.state_dict()
    n = sum(1 for key in target if key.startswith("blocks.nsr") and key.endswith(".weight1"))
    names = {"weight_v": "weight", "weight_g": "gain", "bias": "bias", "mlp.0.weight": "select{}.weight",
             "mlp.0.bias": "select{}.bias"}
    out = {}
    for key, tensor in checkpoint.items():
        parts = key.split(".")
        dst = None
        if parts[0] == "skip" and len(parts) == 3:
            dst = f"blocks.skip.{parts[2]}"
        elif parts[0] == "body" and parts[1].isdigit():
            i = int(parts[1])
            if i in (0, n + 1) and len(parts) == 3:
                dst = f"blocks.{'head' if i == 0 else 'tail'}.{parts[2]}"
            elif 1 <= i <= n and len(parts) >= 5 and parts[2] == "body" and parts[3] in ("0", "2"):
                j, rest = 1 if parts[3] == "0" else 2, ".".join(parts[4:])
                if rest in names:
                    name = names[rest]
                    dst = f"blocks.nsr{i - 1}." + (name.format(j) if "{}" in name else f"{name}{j}")
        if dst is None or dst not in target:
            raise ArchsearchError(f"pt_ir checkpoint key {key!r} has no place in this {n}-block model "
                                  f"(expected body.0, body.1..{n}.body.0/2, body.{n + 1}, skip.0)")
        if tensor.numel() != target[dst].numel():
            raise ArchsearchError(f"pt_ir checkpoint key {key!r}: {tuple(tensor.shape)} does not fit {dst} "
                                  f"{tuple(target[dst].shape)}: the spec's arguments differ from the checkpoint's")
        out[dst] = tensor.reshape(target[dst].shape)
    return out
