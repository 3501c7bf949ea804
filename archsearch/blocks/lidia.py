"""Non-local, multi-scale patch denoising with separable layers (LIDIA).

Vaksman, Elad & Milanfar, "LIDIA: Lightweight Learned Image Denoising with Instance Adaptation", CVPR Workshops
2020 (arXiv:1911.07167; reference code github grishavak/LIDIA-denoiser @ 7ec25344dc268cdb6267b5ea68fedef3c13c7815,
``code/modules.py`` ``NonLocalDenoiser``, ``code/utils.py``); the "Non-Local & Multi-Scale" design of Elad &
Milanfar's talk (``../shared/papers/elad_design_of_architectures_talk.txt``): 60K parameters, within 0.05-0.1 dB
of DnCNN. The whole network is one block: its parts only make sense together (the neighbour search feeds the
patch network, whose output is averaged back into the image).

For every overlapping p x p patch (7 x 7 gray, 5 x 5 x 3 RGB; paper Sec. 3):

1. **Neighbours at two scales.** Its ``neighbours`` nearest patches (itself included, first) by squared distance
   in a ``window`` x ``window`` search window (14 in 29 x 29); the search is on the image (RGB: on its
   0.2989 / 0.5870 / 0.1140 gray version). Second scale (paper Fig. 3): the image blurred with the fixed
   [1/4, 1/2, 1/4]^2 kernel; its neighbours found on the four 2x-subsampled phases of the blurred image (the
   same window on the phase grid), the patches taken with dilation 2.
2. **Weights from distances** (paper Sec. 3.2): per scale, an FC net (6 x Linear(k, k) + BN + ReLU, then a
   Linear with bias) on ``exp(-|alpha| d)`` of the k - 1 neighbour distances and the patch's own variance
   (``std^2 * numel``); each patch of the stack is multiplied by its weight.
3. **Separable network** (paper Fig. 2): layers that act on a (neighbours x values) stack by a "vertical" matrix
   on the values, a "horizontal" one on the neighbours and a bias matrix, with BN and ReLU; the full network
   mixes two such layers with a learned scalar (``a x + (1 - a) f(x)``, LIDIA-S has one). Two aggregation steps
   (paper Sec. 3.3) collapse each scale's stack to one patch, average the overlapping patches into an image
   (scale 1: with dilation 2, then the fixed blur) and extract them again; a last separable stage on all four
   stacks predicts the noise of the patch.
4. **Averaging**: patch estimate = noisy patch - noise, weighted by ``exp(-|beta| var(estimate))`` and averaged
   back into the image.

The reference works on images in [-1, 1] with the per-image, per-channel mean removed; the block keeps
archsearch's [0, 1] convention outside and computes inside on ``(2 x - 1) - mean(2 x - 1)``, as the reference
(bit for bit: exact ties in the neighbour search depend on the last bit), output ``(y + mean + 1) / 2``. Submodule names follow the authors' ``PatchDenoiseNet`` so that their state dict maps by
a prefix (layout ``lidia``, below).

**Padding** (the reference's ``pad_crop0`` / ``pad_crop1``, at test time): scale 0 is reflect-padded by p - 1,
then padded by the search radius with the constant -1 (a value of the mean-removed [-1, 1] image: padding
patches can be chosen as neighbours, as in the reference); scale 1 is reflect-padded by (p - 1) / 2 + 1 + (p - 1),
blurred (valid) and padded by twice the radius with -1. The output has the input's size. Reflect padding here is
the iterated mirror (``csc_reflect``): identical to ``F.pad(mode='reflect')`` wherever that is defined, and it
also serves images smaller than the pads (the reference raises there).

**Training** (``train_padding``): the reference trains on crops that carry ``total_pad`` = (p - 1) / 2 + 1 +
(p - 1) + 2 r pixels of real image context on each side (38 for gray), runs without synthetic padding and compares
the centre (``utils.py`` ``calc_padding``, ``adapt_net``). archsearch's trainer compares the whole output with the
target, so the default, ``train_padding: test``, pads in training exactly as at test time (a departure: the
borders of a training crop see the synthetic padding). ``train_padding: reference`` reproduces the reference in
train mode: the centre is the reference's training output, and the ``total_pad`` border is the noisy input,
detached (no gradient: the parameters' gradients are those of the centre's loss, scaled by the centre's share
of the pixels); it needs crops larger than 2 ``total_pad``. In eval mode both use the test padding.

**Speed** (the reference stores the (2r + 1)^2 distance maps of every patch, then one top-k; the authors' code
takes 20-42 s per 256 x 256 image on one core of the 2-core machines this was measured on -- on a Xeon, most of
it the kernel zeroing the ~7 GB of pages those maps take; ``benchmarks/bench_lidia.py``): the search runs on
bands of rows with the offsets as the last dimension (:func:`lidia_search`), its box sums as one depthwise
convolution over the offsets (oneDNN's kernel adds the taps in the reference's order; checked once per process,
else the additions one by one), its top-k on rows padded with +inf (torch's faster partial-sort path; tied
positions recomputed as the reference computes them), and the patch network on chunks of patches in eval mode,
small enough to stay in cache (part 2 on sub-chunks of 64), in parallel on the intra-op threads (one chunk per
thread: the same bits at any thread count). The distances are the reference's numbers (the same sequential
sums) and each top-k returns the reference's neighbours in its order, ties included.

Roles: the separable layers (vertical, horizontal, bias matrices) and the aggregation pre/post layers ``conv``;
BN ``normalization``; the weight nets, alpha and beta ``selection`` (they weight the neighbours and the patches
in the averages); the mixing scalars ``other``. The blur and RGB-to-gray kernels are fixed buffers, not
parameters (and not in the state dict).

MACs (exact, :meth:`LIDIA.macs`; the convention, stated for the neighbour search): a patch distance is one
multiply-accumulate per patch value (the squared difference summed over the p x p window: p^2 MACs per patch and
window offset, the subtraction before it elementwise and not counted); the top-k selection, the gathers of the
neighbour patches and the index arithmetic are data movement and cost 0 MACs. Per image: the mean (1 per input
value); per scale the search (window^2 x p^2 per patch position; at scale 1 the four phases together have as
many positions as scale 0), RGB: the gray conversion (3 per pixel of the padded search image); the blurs
(9 per value, scale 1 image and aggregation); per patch position: the patch variance (1 per value), the weight
nets (k^2 per Linear row, 1 per BN value), the separable layers (a Linear (in x out per row), BN 1 per value),
and the two means of the patch weight (1 per value each). Excluded: elementwise products with the weights, the
mixing, exp, ReLU, the overlap-adds (``fold``) and their divisions. There are (H + p - 1)(W + p - 1) patch
positions (the reflect padding by p - 1), so exact MACs exceed rate x pixels by a border term.

Also here: the ``lidia`` family, the ``lidia``, ``lidia_s`` and ``lidia_color`` zoo models and the authors'
weight layout (``lidia``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..families import register_family
from ..spec import Block, BlockExample, ExportLimits, GraphSpec, SpecBuilder, register_block
from ..weights import WeightsError, register_layout
from ..zoo import ZooEntry, register_zoo
from ._common import SameChannels, positive
from .csc import csc_reflect

TRAIN_PADDINGS = ("test", "reference")
#: Patches per chunk of the patch network in eval mode (every patch is independent there; on two or more threads
#: the chunks run in parallel, :func:`_map_chunks`). Part 2 (4k rows) runs on sub-chunks of ``LIDIA_SUB``
#: patches, so that its stacks (56 rows x 64 patches x 64 features: 0.9 MB) stay in the core's L2 cache between
#: the layers: its matrix products then run at 35-45 GMAC/s, this core's measured peak for them (one thread, per
#: 256 x 256 image: chunks of 16384 patches 9.5 s, 256 5.5 s, 512 with sub-chunks of 64 about 4.6 s). In train
#: mode BN uses batch statistics over all patches, as the reference, so it runs in one piece.
LIDIA_CHUNK = 512
LIDIA_SUB = 64
#: The neighbour search pads each row of distances with +inf up to 64 (k + 1) columns when that adds at most 25%
#: (LIDIA: 841 -> 960): torch.topk alone is 1.8x faster there (:func:`_lidia_topk`; in the block, with the padding
#: and the recomputed ties, the top-k of a 256 x 256 image took 0.6 s instead of 0.8 s).
LIDIA_TOPK_PAD = 1.25
#: Distances held at once by the neighbour search (positions x window offsets): 8 MB in float32, so that a band's
#: squared differences and distances stay in the L3 cache (4-16 MB bands measured fastest on a 2-core EPYC).
LIDIA_SEARCH_BAND = 1 << 21


def lidia_reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect padding by ``pad`` on each side (the iterated mirror, see the module docstring)."""
    h, w = x.shape[-2], x.shape[-1]
    rows = csc_reflect(torch.arange(h + 2 * pad, device=x.device) - pad, h)
    cols = csc_reflect(torch.arange(w + 2 * pad, device=x.device) - pad, w)
    return x.index_select(-2, rows).index_select(-1, cols)


def lidia_search(image: torch.Tensor, patch: int, radius: int, neighbours: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``neighbours`` nearest p x p patches of every patch of the centre region (the image less ``radius`` on
    each side) within the (2 radius + 1)^2 window: distances (B, k, rows, cols) sorted ascending, and the window
    offsets (row, column) of each neighbour.

    Exactly the reference's selection: the distance of one offset is the sum of the p^2 squared differences in
    the order of the reference's ``conv2d`` with a p x p ones kernel (row-major, one after the other: the same
    bits, checked by ``tests/test_oracle_lidia.py``), and each position's top-k is taken over all its
    (2r + 1)^2 distances in the reference's order (offset row-major), so ties between different patches
    (mirror-symmetric patches in the reflect padding have equal distances) resolve as the reference's.

    Faster and bounded in memory: the positions go in bands of rows (:data:`LIDIA_SEARCH_BAND` distances at most
    at once); a band's squared differences are laid out (rows, columns, offsets), built in one pass from a
    strided view of the window, so that the box sums run over contiguous offsets (one depthwise ``conv2d`` on the
    channels-last view, :func:`_box_sums`) and the top-k reads its offsets in place (no transposes)."""
    if torch.jit.is_tracing():  # traced (fvcore, export): the reference's conv2d, the op the MAC count names
        return _lidia_search_conv(image, patch, radius, neighbours)
    b, _, hs, ws = image.shape
    win = 2 * radius + 1
    cw = ws - 2 * radius
    ph, pw = hs - 2 * radius - patch + 1, cw - patch + 1
    img = image[:, 0].contiguous()
    sb, sh, sw = img.stride()
    width = win * win
    if neighbours < width and 64 * (neighbours + 1) <= LIDIA_TOPK_PAD * width:
        width = max(width, 64 * (neighbours + 1))  # the +inf columns that select torch.topk's faster path
    band = max(1, min(ph, LIDIA_SEARCH_BAND // max(1, b * pw * width)))
    exact_conv = _box_sums_by_conv(img.dtype, img.device, width, patch)
    dists, offsets = [], []
    for top in range(0, ph, band):
        rows = min(band, ph - top)
        h = rows + patch - 1
        # window[b, y, x, a, c] = img[b, top + y + a, x + c]: every offset of every pixel of the band
        window = img[:, top:].as_strided((b, h, cw, win, win), (sb, sh, sw, sh, sw))
        centre = img[:, top + radius:top + radius + h, radius:radius + cw, None, None]
        if img.requires_grad and torch.is_grad_enabled():  # recorded: no out= (the +inf columns by a pad)
            squares = (window - centre).pow_(2).reshape(b, h, cw, win * win)
            if width > win * win:
                squares = F.pad(squares, (0, width - win * win), value=float("inf"))
        else:  # the squared differences written into the +inf-padded rows of _lidia_topk (a box sum of +inf: +inf)
            squares = torch.empty(b, h, cw, width, dtype=img.dtype, device=img.device)
            squares[..., win * win:] = float("inf")
            diff = squares[..., :win * win].view(b, h, cw, win, win)
            torch.sub(window, centre, out=diff).pow_(2)
        table = _box_sums(squares, patch, exact_conv)
        if width == win * win:
            best, index = torch.topk(table, neighbours, dim=3, largest=False, sorted=True)
        else:
            best, index = _lidia_topk(table, neighbours, win * win)
        dists.append(best)
        offsets.append(index)
    dist = torch.cat(dists, dim=1).permute(0, 3, 1, 2)
    index = torch.cat(offsets, dim=1).permute(0, 3, 1, 2)
    return dist, torch.div(index, win, rounding_mode="floor"), index % win


def _box_sums(squares: torch.Tensor, patch: int, by_conv: bool) -> torch.Tensor:
    """(B, rows, cols, C): the sums of each p x p box of ``squares`` (B, rows + p - 1, cols + p - 1, C), the p^2
    values added one after the other in row-major order, ((t0 + t1) + t2) + ... -- the bits of the reference's
    ``conv2d`` with a ones kernel. ``by_conv``: as one depthwise ``conv2d`` with a ones kernel on the channels-last
    view (the offsets are the channels), whose kernel (oneDNN's) accumulates the taps in that order in a register,
    reading the squares once instead of p^2 - 1 passes over the band (4-6x faster than the additions on a 2-core
    Xeon; only where :func:`_box_sums_by_conv` found it gives the additions' bits); else the p^2 - 1 additions."""
    b, hh, ww, c = squares.shape
    rows, cols = hh - patch + 1, ww - patch + 1
    if by_conv:
        ones = torch.ones(c, 1, patch, patch, dtype=squares.dtype, device=squares.device)
        return F.conv2d(squares.permute(0, 3, 1, 2), ones, groups=c).permute(0, 2, 3, 1)
    taps = [squares[:, u:u + rows, v:v + cols] for u in range(patch) for v in range(patch)]
    if len(taps) == 1:
        return taps[0].clone()
    dist = taps[0] + taps[1]
    for t in taps[2:]:
        dist.add_(t)  # in place, recorded or not: an addition's backward needs neither operand
    return dist


_BY_CONV: dict[tuple, bool] = {}


def _box_sums_by_conv(dtype: torch.dtype, device: torch.device, channels: int, patch: int) -> bool:
    """Whether the depthwise ``conv2d`` gives the sequential additions' bits for this dtype, device, channel count
    and patch size: checked once per process on random squares (a summation in any other order differs from
    them in the last bit almost everywhere), so a build or machine whose convolution adds in another order
    (another library, ISA or dtype; PyTorch's own depthwise kernel when oneDNN is switched off) falls back to the
    additions and the neighbours stay the reference's."""
    if torch.compiler.is_compiling() or getattr(torch.compiler, "is_exporting", lambda: False)():
        # an exported or compiled graph takes the additions: their bits do not depend on the machine that runs the
        # graph later (and the check's data-dependent comparison cannot be traced)
        return False
    key = (dtype, device.type, channels, patch, torch.backends.mkldnn.enabled)  # without oneDNN: another order
    if key not in _BY_CONV:
        g = torch.Generator().manual_seed(0)
        squares = torch.rand(1, patch + 7, patch + 41, channels, generator=g, dtype=dtype).pow(2).to(device)
        with torch.no_grad():
            _BY_CONV[key] = bool(torch.equal(_box_sums(squares, patch, True), _box_sums(squares, patch, False)))
    return _BY_CONV[key]


def _lidia_topk(table: torch.Tensor, k: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(table[..., :n], k, largest=False, sorted=True)`` over the last dimension, the same values and
    indices, faster for LIDIA's 14 of 841 (1.8x for the top-k itself). ``table``: the ``n`` distances of each
    position followed by +inf columns, at least 64 (k + 1) in all: there torch.topk's CPU kernel takes its partial-sort path instead of a
    selection over the row (it switches at 64 k <= width). Which of several *equal* distances either path returns
    first depends on its algorithm, so a position is taken from the fast path only when its k + 1 smallest
    distances are strictly increasing (then the k nearest and their order are unique, and every algorithm returns
    them); positions with a tie among them (e.g. identical patches in the constant padding, or mirror-symmetric
    ones) are recomputed by ``torch.topk`` on the unpadded row, as the reference computes them."""
    best, index = torch.topk(table, k + 1, dim=-1, largest=False, sorted=True)
    tie = ~(best[..., 1:] > best[..., :-1]).all(-1)  # a NaN or an inf compares as a tie too: recomputed
    best, index = best[..., :k], index[..., :k]
    if bool(tie.any()):
        rows = tie.nonzero(as_tuple=True)
        best[rows], index[rows] = torch.topk(table[..., :n][rows], k, dim=-1, largest=False, sorted=True)
    return best, index


def _lidia_search_conv(image: torch.Tensor, patch: int, radius: int, neighbours: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`lidia_search` as the reference computes it, for tracing: every window offset's shifted image (one
    ``unfold`` with the centre region as its kernel: offsets row-major, as the reference concatenates them), one
    ``conv2d`` with a ones kernel over all of them, one top-k -- the same numbers, in few ops (fvcore and the
    exporters walk every traced op: 29 slices and a concatenation per offset row made the traced graph ~4,000
    ops per search and fvcore's count of one 24 x 24 image 15 s)."""
    b, _, hs, ws = image.shape
    win = 2 * radius + 1
    ch, cw = hs - 2 * radius, ws - 2 * radius
    ph, pw = ch - patch + 1, cw - patch + 1
    ones = torch.ones(1, 1, patch, patch, dtype=image.dtype, device=image.device)
    centre = image[:, :, radius:radius + ch, radius:radius + cw]
    shifted = F.unfold(image, (ch, cw)).view(b, ch, cw, win * win).permute(0, 3, 1, 2)  # (b, offsets, ch, cw)
    squares = ((shifted - centre) ** 2).reshape(b * win * win, 1, ch, cw)
    table = F.conv2d(squares, ones).reshape(b, win * win, ph, pw)
    best, index = torch.topk(table, neighbours, dim=1, largest=False, sorted=True)
    return best, torch.div(index, win, rounding_mode="floor"), index % win


def _map_chunks(fn, chunks: list[tuple]) -> list:
    """``[fn(*c) for c in chunks]``; with more than one intra-op thread and gradients off (evaluation), the chunks
    run on that many threads of one intra-op thread each, in order of the list (the patch network's matrix
    products are too small to split well across threads: LIDIA's part 2 ran slower on 2 threads than on 1). The
    thread count is restored afterwards; each chunk's numbers are those of one thread, whatever the count."""
    threads = torch.get_num_threads()
    if threads == 1 or len(chunks) < 2 or torch.is_grad_enabled() or torch.jit.is_tracing():
        return [fn(*c) for c in chunks]
    inference = torch.is_inference_mode_enabled()

    def run(c: tuple):
        with torch.inference_mode(inference), torch.no_grad():
            return fn(*c)

    from concurrent.futures import ThreadPoolExecutor
    try:
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return list(pool.map(run, chunks))
    finally:
        torch.set_num_threads(threads)


class LidiaVerHor(nn.Module):
    """A separable layer (the reference's ``VerHorMat``) on stacks laid out (B, rows, patches, values): the
    "vertical" matrix on the values, the "horizontal" one on the rows, plus a (rows, values) bias. Rows first
    makes both products one large matrix product each (no transposes)."""

    def __init__(self, ver_in: int, ver_out: int, hor_in: int, hor_out: int):
        super().__init__()
        self.ver = nn.Linear(ver_in, ver_out, bias=False)
        self.hor = nn.Linear(hor_in, hor_out, bias=False)
        self.b = nn.Parameter(torch.empty(hor_out, ver_out))
        nn.init.xavier_normal_(self.b, gain=nn.init.calculate_gain("relu"))  # the reference's initialisation

        # The two products commute (H X V^T); run the cheaper order first: the horizontal one when it shrinks
        # the rows enough (the aggregation's pre layers and the last one collapse k or 4k rows to one).
        self.hor_first = hor_in * ver_in * hor_out + hor_out * ver_in * ver_out < \
            hor_in * ver_in * ver_out + ver_out * hor_in * hor_out

    def _hor(self, x: torch.Tensor, hor: torch.Tensor) -> torch.Tensor:
        b, rows, n, v = x.shape
        return torch.bmm(hor.expand(b, -1, -1), x.reshape(b, rows, n * v)).reshape(b, -1, n, v)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``scale`` / ``shift`` (per output row): an inference BN folded into the horizontal matrix and the bias
        (the same affine map, one pass less over the largest tensors)."""
        hor, bias = self.hor.weight, self.b
        if scale is not None and shift is not None:
            hor, bias = scale[:, None] * hor, scale[:, None] * bias + shift[:, None]
        x = self.ver(self._hor(x, hor)) if self.hor_first else self._hor(self.ver(x), hor)
        return x.add_(bias.unsqueeze(1))  # in place: the product's output is not needed by its backward


class LidiaVerHorBnRelu(nn.Module):
    """A separable layer, BN over the rows (the reference's ``BatchNorm2d(hor_out)``: the rows are the channels),
    ReLU."""

    def __init__(self, ver_in: int, ver_out: int, hor_in: int, hor_out: int, bn: bool):
        super().__init__()
        self.ver_hor = LidiaVerHor(ver_in, ver_out, hor_in, hor_out)
        self.bn = nn.BatchNorm2d(hor_out) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        if bn is not None and not bn.training and not torch.jit.is_tracing():
            # inference: BN is a per-row affine map, folded into the layer (traced -- fvcore, export -- it runs as
            # BN, the op the MAC count names; the same numbers to rounding)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            return torch.relu_(self.ver_hor(x, scale, bn.bias - bn.running_mean * scale))
        x = self.ver_hor(x)
        if bn is not None:
            x = bn(x)
        return torch.relu_(x)  # in place: neither BN's nor the addition's backward needs its output


class LidiaStage(nn.Module):
    """One separable layer, or (the full network) two mixed by a learned scalar: ``a x + (1 - a) f(x)``, a = 0
    at initialisation; ``out`` adds the final layer that collapses the rows to one patch (part 2)."""

    def __init__(self, first: tuple[int, int, int, int, bool], second: tuple[int, int, int, int, bool] | None,
                 out: tuple[int, int, int, int] | None, names: tuple[str, str]):
        super().__init__()
        self.names = names
        self.add_module(names[0], LidiaVerHorBnRelu(*first))
        if second is not None:
            self.a = nn.Parameter(torch.zeros(1))
            self.add_module(names[1], LidiaVerHorBnRelu(*second))
        self.ver_hor_out = LidiaVerHor(*out) if out is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = getattr(self, self.names[0])(x)
        if hasattr(self, "a"):
            y = getattr(self, self.names[1])(x)  # a x + (1 - a) f(x), one pass (in place when not recorded)
            x = torch.lerp(y, x, self.a) if torch.is_grad_enabled() or torch.jit.is_tracing() else y.lerp_(x, self.a)
        if self.ver_hor_out is not None:
            x = self.ver_hor_out(x)
        return x


class LidiaWeightsNet(nn.Module):
    """The neighbour-weight FC net on k values (6 x Linear + BN + ReLU, then a Linear with bias), on (B, k,
    patches): the values are the channels."""

    def __init__(self, k: int, layers: int = 6):
        super().__init__()
        self.layers = layers
        for i in range(layers):
            self.add_module(f"fc{i}", nn.Linear(k, k, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm1d(k))
        self.fc_out = nn.Linear(k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        for i in range(self.layers):
            x = torch.relu(getattr(self, f"bn{i}")(torch.bmm(getattr(self, f"fc{i}").weight.expand(b, -1, -1), x)))
        return torch.bmm(self.fc_out.weight.expand(b, -1, -1), x) + self.fc_out.bias.unsqueeze(-1)


class LidiaSeparableNet(nn.Module):
    """The reference's ``SeparableFcNet`` layers (the aggregations are functions of :class:`LIDIAModule`)."""

    def __init__(self, n: int, f: int, k: int, scales: int, small: bool):
        super().__init__()
        names1, names2 = ("ver_hor_bn_re0", "ver_hor_bn_re1"), ("ver_hor_bn_re2", "ver_hor_bn_re3")
        for s in range(scales):
            self.add_module(f"sep_part1_s{s}", LidiaStage((n, f, k, k, False), None if small else (f, f, k, k, True),
                                                          None, names1))
            self.add_module(f"ver_hor_agg{s}_pre", LidiaVerHor(f, n, k, 1))
            self.add_module(f"ver_hor_bn_re_agg{s}_post", LidiaVerHorBnRelu(n, f, 1, k, False))
        h = 2 * scales * k
        self.sep_part2 = LidiaStage((f, f, h, h, True), None if small else (f, f, h, h, True), (f, n, h, 1), names2)


class LIDIAModule(nn.Module):
    def __init__(self, spec: LIDIA):
        super().__init__()
        c, p, f, k = spec.channels, spec.patch_size, spec.features, spec.neighbours
        self.channels, self.patch, self.k, self.scales = c, p, k, spec.scales
        self.radius = (spec.window - 1) // 2
        self.reference_crop = spec.train_padding == "reference"
        n = c * p * p
        self.separable_fc_net = LidiaSeparableNet(n, f, k, spec.scales, spec.small)
        for s in range(spec.scales):
            self.add_module(f"weights_net{s}", LidiaWeightsNet(k))
            self.register_parameter(f"alpha{s}", nn.Parameter(torch.full((1,), 0.5)))
        self.beta = nn.Parameter(torch.full((1,), 0.5))
        blur = torch.tensor([0.25, 0.5, 0.25])
        self.register_buffer("blur", (blur[:, None] * blur[None, :]).view(1, 1, 3, 3), persistent=False)
        self.register_buffer("gray", torch.tensor([0.2989, 0.5870, 0.1140]).view(1, 3, 1, 1), persistent=False)

    # -- pieces ------------------------------------------------------------------------------------------------
    def _to_gray(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.gray) if self.channels == 3 else x

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return F.conv2d(x.reshape(b * c, 1, h, w), self.blur).reshape(b, c, h - 2, w - 2)

    def total_pad(self) -> int:
        """The border a training crop loses in the reference's training mode (``calc_padding``)."""
        p = self.patch
        return (p - 1) // 2 + 1 + (p - 1) + 2 * self.radius

    def _aggregate(self, q: torch.Tensor, ph: int, pw: int, dilation: int, blur: bool) -> torch.Tensor:
        """Average the overlapping patches (B, P, n) into an image, (scale 1: blur it,) and extract them again."""
        p = self.patch
        size = (ph + dilation * (p - 1), pw + dilation * (p - 1))
        cols = q.transpose(1, 2)
        count = F.fold(torch.ones_like(cols[:1]), size, p, dilation=dilation)
        image = F.fold(cols, size, p, dilation=dilation) / count
        if blur:
            image = self._blur(lidia_reflect_pad(image, 1))
        return F.unfold(image, p, dilation=dilation).transpose(1, 2)

    def _scale(self, s: int, patches: torch.Tensor, dist: torch.Tensor, var_numel: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights from the distances, the weighted stack (B, k, P, n) through part 1: (part-1 output, weights)."""
        var = patches[:, 0].std(dim=-1).unsqueeze(1).pow(2) * var_numel
        d = torch.cat((dist[:, 1:], var), dim=1)
        alpha = getattr(self, f"alpha{s}")
        weights = getattr(self, f"weights_net{s}")(torch.exp(-alpha.abs() * d)).unsqueeze(-1)
        return getattr(self.separable_fc_net, f"sep_part1_s{s}")(patches * weights), weights

    def _part1(self, prepared: list, start: int, stop: int, n: int) -> tuple:
        """One chunk of patch positions through the weight nets, part 1 and the aggregations' pre layers."""
        b, k, net = prepared[0][0].shape[0], self.k, self.separable_fc_net
        outs, pres, selves, first = [], [], None, None
        for s, (index, dist, bank) in enumerate(prepared):
            patches = bank.index_select(0, index[:, :, start:stop].reshape(-1)).reshape(b, k, stop - start, n)
            out, weights = self._scale(s, patches, dist[:, :, start:stop], n)
            outs.append(out)
            q = getattr(net, f"ver_hor_agg{s}_pre")(out)[:, 0]  # (B, P, n)
            if s == 0:
                selves = patches[:, 0].clone()  # a copy: the view would keep all k rows alive
                pres.append(q)
            else:
                first = weights[:, 0]  # (B, P, 1): the weight of the patch itself at scale 1
                pres.append(q / first)
        return outs, pres, selves, first

    def _part2(self, part1: list[torch.Tensor], selves: torch.Tensor, aggregated: list[torch.Tensor], start: int,
               stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk through the aggregations' post layers and part 2: (weighted patch estimates, their weights).
        Part 2 runs on sub-chunks of :data:`LIDIA_SUB` patches in eval mode (its 4k-row stacks then stay in the
        core's L2 cache)."""
        net = self.separable_fc_net
        stacks = list(part1)
        for s in range(self.scales):
            post = getattr(net, f"ver_hor_bn_re_agg{s}_post")
            stacks.append(post(aggregated[s][:, start:stop].unsqueeze(1)))
        sub = LIDIA_SUB if not self.training else stop - start
        noise = torch.cat([net.sep_part2(torch.cat([st[:, :, j:j + sub] for st in stacks], dim=1))[:, 0]
                           for j in range(0, stop - start, sub)], dim=1)
        est = selves - noise
        centred = est - est.mean(dim=-1, keepdim=True)
        weight = torch.exp(-self.beta.abs() * (centred ** 2).mean(dim=-1, keepdim=True))
        return est * weight, weight

    # -- the forward pass ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = 2 * x - 1  # the reference's [-1, 1] image, its mean removed as in the reference (the same bits:
        mean = x.mean(dim=(-2, -1), keepdim=True)  # exact ties in the neighbour search depend on them)
        z = x - mean
        if self.training and self.reference_crop:
            t = self.total_pad()
            out = z.detach().clone()
            out[..., t:z.shape[-2] - t, t:z.shape[-1] - t] = self._denoise(z, crop=True)
        else:
            out = self._denoise(z, crop=False)
        return (out + mean + 1) / 2

    def _denoise(self, z: torch.Tensor, crop: bool) -> torch.Tensor:
        p, r, k = self.patch, self.radius, self.k
        b, c, h, w = z.shape
        n = c * p * p
        # scale 0: the reference's pad_crop0
        if crop:
            o = self.total_pad() - (p - 1) - r
            z0 = z[..., o:h - o, o:w - o]
        else:
            z0 = F.pad(lidia_reflect_pad(z, p - 1), [r] * 4, value=-1.0)
        d0, or0, oc0 = lidia_search(self._to_gray(z0), p, r, k)
        ph, pw = d0.shape[-2], d0.shape[-1]
        rows = or0 + torch.arange(ph, device=z.device).view(1, 1, -1, 1)
        cols = oc0 + torch.arange(pw, device=z.device).view(1, 1, 1, -1)
        index0 = rows * (z0.shape[-1] - (p - 1)) + cols
        # every patch of the padded image, one contiguous row each (the gathers below copy whole rows: 9x faster than
        # from the strided view reshape returns for one image)
        bank0 = F.unfold(z0, p).transpose(1, 2).reshape(-1, n).contiguous()
        banks = [(bank0, index0, d0)]
        if self.scales == 2:
            # scale 1: the reference's pad_crop1 (reflect), the blur, pad_crop1 (constant)
            z1 = z if crop else lidia_reflect_pad(z, (p - 1) // 2 + 1 + (p - 1))
            z1 = self._blur(z1)
            if not crop:
                z1 = F.pad(z1, [2 * r] * 4, value=-1.0)
            g1 = self._to_gray(z1)
            d1 = torch.zeros(b, k, ph, pw, dtype=z.dtype, device=z.device)
            index1 = torch.zeros(b, k, ph, pw, dtype=torch.long, device=z.device)
            per_row = z1.shape[-1] - 2 * (p - 1)
            for a in (0, 1):
                for e in (0, 1):
                    dd, rr, cc = lidia_search(g1[:, :, a::2, e::2], p, r, k)
                    rows = 2 * (rr + torch.arange(dd.shape[-2], device=z.device).view(1, 1, -1, 1)) + a
                    cols = 2 * (cc + torch.arange(dd.shape[-1], device=z.device).view(1, 1, 1, -1)) + e
                    d1[:, :, a::2, e::2] = dd
                    index1[:, :, a::2, e::2] = rows * per_row + cols
            banks.append((F.unfold(z1, p, dilation=2).transpose(1, 2).reshape(-1, n).contiguous(), index1, d1))

        # the patch network on stacks (B, rows, patches, values), on chunks of patches in eval mode
        positions = ph * pw
        step = LIDIA_CHUNK if not self.training else positions
        prepared = []
        for bank, index, dist in banks:
            offset = torch.arange(b, device=z.device).view(b, 1, 1) * (bank.shape[0] // b)
            prepared.append((index.flatten(2) + offset, dist.flatten(2), bank))
        chunks = [(start, min(start + step, positions)) for start in range(0, positions, step)]
        # per chunk: (part-1 stacks per scale, aggregation inputs per scale, the patches themselves, scale-1 weights)
        first = _map_chunks(lambda start, stop: self._part1(prepared, start, stop, n), chunks)
        pre = [torch.cat([pres[s] for _, pres, _, _ in first], dim=1) for s in range(self.scales)]
        aggregated = [self._aggregate(pre[0], ph, pw, 1, False)]
        if self.scales == 2:
            firsts = torch.cat([w for _, _, _, w in first], dim=1)
            aggregated.append(firsts * self._aggregate(pre[1], ph, pw, 2, True))
        second = _map_chunks(lambda stacks, selves, start, stop: self._part2(stacks, selves, aggregated, start, stop),
                             [(stacks, selves, *c) for (stacks, _, selves, _), c in zip(first, chunks)])
        estimates, patch_weights = [e for e, _ in second], [w for _, w in second]
        size = (ph + p - 1, pw + p - 1)
        num = F.fold(torch.cat(estimates, dim=1).transpose(1, 2), size, p)
        den = F.fold(torch.cat(patch_weights, dim=1).expand(-1, -1, n).transpose(1, 2), size, p)
        cr, cc = min(p - 1, ph - 1), min(p - 1, pw - 1)
        return num[..., cr:size[0] - cr, cc:size[1] - cc] / den[..., cr:size[0] - cr, cc:size[1] - cc]


@register_block
@dataclass(frozen=True)
class LIDIA(SameChannels, Block):
    """The LIDIA network on ``channels`` image channels (1 gray, 3 RGB; in = out); defaults are LIDIA gray."""

    type = "lidia"
    paper = ("Vaksman, Elad & Milanfar, LIDIA, CVPRW 2020 (github grishavak/LIDIA-denoiser code/modules.py "
             "NonLocalDenoiser)")

    channels: int = 1
    patch_size: int = 7  # the reference: 7 x 7 gray, 5 x 5 RGB
    features: int = 64  # the vertical width ("ver_size"): 64 gray, 80 RGB
    neighbours: int = 14  # k, the patch itself included
    window: int = 29  # search window side (radius 14)
    scales: int = 2  # 1: the image only; 2: and the blurred 2x-subsampled scale (the reference)
    small: bool = False  # LIDIA-S: one separable layer per stage instead of two mixed
    train_padding: Literal["test", "reference"] = "test"

    @classmethod
    def examples(cls) -> list[BlockExample]:
        tiny = dict(patch_size=3, features=6, neighbours=4, window=5)
        return [
            BlockExample("gray", LIDIA(**tiny), (13, 11)),
            BlockExample("small-p5", LIDIA(patch_size=5, features=5, neighbours=3, window=7, small=True), (9, 14)),
            BlockExample("rgb", LIDIA(channels=3, **tiny), (10, 12)),
            BlockExample("one-scale", LIDIA(patch_size=3, features=4, neighbours=5, window=3, scales=1), (7, 9)),
            BlockExample("tiny-image", LIDIA(patch_size=5, features=4, neighbours=2, window=3), (3, 4)),
            BlockExample("reference-crop", LIDIA(**tiny, train_padding="reference"), (31, 29)),
        ]

    def check(self) -> None:
        positive(self, "features", "neighbours")
        if self.channels not in (1, 3):
            raise SpecError("channels", f"must be 1 (gray) or 3 (RGB: neighbours found on its gray version), got "
                                        f"{self.channels}")
        for name in ("patch_size", "window"):
            v = getattr(self, name)
            if v < 1 or v % 2 == 0:
                raise SpecError(name, f"must be odd and >= 1 (a centred patch / window), got {v}")
        if self.neighbours > self.window**2:
            raise SpecError("neighbours", f"must be <= window^2 = {self.window**2} (the candidates), got "
                                          f"{self.neighbours}")
        if self.scales not in (1, 2):
            raise SpecError("scales", f"must be 1 or 2, got {self.scales}")
        if self.train_padding not in TRAIN_PADDINGS:
            raise SpecError("train_padding", f"must be one of {', '.join(TRAIN_PADDINGS)}, got {self.train_padding!r}")

    # -- counts --------------------------------------------------------------------------------------------------
    @property
    def patch_values(self) -> int:
        return self.channels * self.patch_size**2

    def _stacks(self) -> int:
        """Rows of the part-2 stack: per scale its neighbours and its aggregated neighbours."""
        return 2 * self.scales * self.neighbours

    def params_by_role(self) -> dict[str, int]:
        n, f, k, h = self.patch_values, self.features, self.neighbours, self._stacks()

        def verhor(vi: int, vo: int, hi: int, ho: int) -> int:
            return vi * vo + hi * ho + ho * vo

        conv = norm = 0
        mix = 0 if self.small else 1
        for _ in range(self.scales):
            conv += verhor(n, f, k, k) + verhor(f, n, k, 1) + verhor(n, f, 1, k)
            if not self.small:
                conv += verhor(f, f, k, k)
                norm += 2 * k
        conv += verhor(f, f, h, h) + verhor(f, n, h, 1)
        norm += 2 * h
        if not self.small:
            conv += verhor(f, f, h, h)
            norm += 2 * h
        weights_net = 6 * (k * k + 2 * k) + k * k + k
        selection = self.scales * (weights_net + 1) + 1  # the nets, alpha per scale, beta
        return {"conv": conv, "normalization": norm, "selection": selection, "other": mix * (self.scales + 1)}

    def _per_patch(self) -> int:
        """MACs per patch position (module docstring)."""
        n, f, k, h = self.patch_values, self.features, self.neighbours, self._stacks()

        def verhor(vi: int, vo: int, hi: int, ho: int, bn: bool) -> int:
            # a separable layer on (hi rows x vi values): the vertical product (rows x vi x vo) and the horizontal
            # one (values x hi x ho), in the cheaper order as the module runs them; BN: one per output value
            return min(hi * vi * vo + vo * hi * ho, hi * vi * ho + ho * vi * vo) + (ho * vo if bn else 0)

        total = 2 * n  # the two means of the patch weight
        for _ in range(self.scales):
            total += n + 7 * k * k + 6 * k  # variance, weight net
            total += verhor(n, f, k, k, False) + verhor(f, n, k, 1, False) + verhor(n, f, 1, k, False)
            if not self.small:
                total += verhor(f, f, k, k, True)
        total += verhor(f, f, h, h, True) + verhor(f, n, h, 1, False)
        if not self.small:
            total += verhor(f, f, h, h, True)
        return total

    def _search(self) -> int:
        return self.window**2 * self.patch_size**2

    def macs_per_pixel(self) -> Fraction:
        c, s = self.channels, self.scales
        rate = c + s * self._search() + self._per_patch()
        if c == 3:
            rate += 3 * s  # gray versions of the search images
        if s == 2:
            rate += 2 * 9 * c  # the blur of the image and the one in the scale-1 aggregation
        return Fraction(rate)

    def macs(self, h: int, w: int) -> int:
        c, p, s = self.channels, self.patch_size, self.scales
        r = (self.window - 1) // 2
        positions = (h + p - 1) * (w + p - 1)
        total = c * h * w + positions * (s * self._search() + self._per_patch())
        if c == 3:
            total += 3 * (h + 2 * (p - 1) + 2 * r) * (w + 2 * (p - 1) + 2 * r)
        if s == 2:
            blurred = (h + 3 * (p - 1)) * (w + 3 * (p - 1))
            total += 2 * 9 * c * blurred
            if c == 3:
                total += 3 * (h + 3 * (p - 1) + 4 * r) * (w + 3 * (p - 1) + 4 * r)
        return total

    def build(self) -> nn.Module:
        return LIDIAModule(self)

    def export_limits(self) -> ExportLimits:
        # the padding, the search bands and F.fold's output size are Python integers computed from the image size
        # (as in the reference): torch.export specialises them, so height and width are the example's
        # (and the search's chunking from the batch size): the export is for the example's shape
        return ExportLimits(batch=False, size_multiple=None,
                            reason="batch, height and width fixed at the exported shape: the padding, search bands, "
                                   "chunking and F.fold's output size are computed from the shape in Python")

    def export(self, ctx) -> str:
        for helper in (csc_reflect, lidia_reflect_pad, lidia_search, _box_sums, _box_sums_by_conv, _lidia_topk,
                       _lidia_search_conv, _map_chunks, LidiaVerHor, LidiaVerHorBnRelu, LidiaStage, LidiaWeightsNet,
                       LidiaSeparableNet):
            ctx.need(helper)
        ctx.sources.setdefault("LIDIA_CHUNK", f"LIDIA_CHUNK = {LIDIA_CHUNK}\nLIDIA_SUB = {LIDIA_SUB}\n"
                                              f"LIDIA_TOPK_PAD = {LIDIA_TOPK_PAD}\nLIDIA_SEARCH_BAND = {LIDIA_SEARCH_BAND}\n"
                                              "_BY_CONV = {}  # dtype, device, channels, patch -> exact\n")
        return f"{ctx.need(LIDIAModule)}({self.namespace()})"


# ---------------------------------------------------------------------------------------------------------
# the LIDIA family, zoo models and the authors' weight layout
# ---------------------------------------------------------------------------------------------------------
@register_family("lidia", features=(1, 256), neighbours=(1, 64), window=(1, 61, 2), patch_size=(1, 15, 2))
def lidia(features: int = 64, neighbours: int = 14, window: int = 29, patch_size: int = 7, scales: int = 2,
          small: bool = False, channels: int = 1, train_padding: Literal["test", "reference"] = "test",
          name: str = "") -> GraphSpec:
    """LIDIA (Vaksman, Elad & Milanfar, CVPRW 2020): one block (blocks/lidia.py) -- for every patch its k nearest
    neighbours in a search window at the image's scale and at a blurred 2x-subsampled scale, a separable
    (vertical/horizontal) network with two aggregation steps predicting the patch's noise, weighted patch
    averaging. Outputs the clean image. Defaults: LIDIA gray (7 x 7 patches, 64 features, 14 neighbours in
    29 x 29); ``small``: LIDIA-S; RGB: ``channels: 3, patch_size: 5, features: 80``.

    Parameters grow with features, neighbours and patch size and do not depend on the window; MACs grow with
    each knob (the window through the neighbour search only)."""
    b = SpecBuilder()
    b.add(LIDIA(channels, patch_size, features, neighbours, window, scales, small, train_padding), name="lidia")
    label = f"lidia{'_s' if small else ''}_p{patch_size}_f{features}_k{neighbours}_w{window}"
    return b.spec(name or label + ("" if scales == 2 else "_1scale"), channels, channels)


# LIDIA gray (the reference's sigma=15/25/50 models): 61,589 trainable parameters (the paper's "60K"); the
# fixed 3 x 3 blur kernel in the authors' state dict is not one.
register_zoo(ZooEntry("lidia", "lidia", {}, "Vaksman, Elad & Milanfar CVPRW 2020 (LIDIA gray: 7x7 patches, "
                      "64 features, 14 neighbours in 29x29, two scales)", "62K", "denoise"))
# LIDIA-S: one separable layer per stage (small_network=True): 40,226 parameters.
register_zoo(ZooEntry("lidia_s", "lidia", dict(small=True), "Vaksman, Elad & Milanfar CVPRW 2020 (LIDIA-S)",
                      "40K", "denoise"))
# LIDIA RGB (the authors' sigma=25 colour model): 5x5x3 patches, 80 features: 94,067 parameters.
register_zoo(ZooEntry("lidia_color", "lidia", dict(channels=3, patch_size=5, features=80),
                      "Vaksman, Elad & Milanfar CVPRW 2020 (LIDIA RGB: 5x5x3 patches, 80 features)", "94K",
                      "denoise"))

#: The authors' fixed blur kernel (``separable_fc_net.agg1.bilinear_conv.weight``): a buffer here, not saved.
LIDIA_FIXED_KEY = "separable_fc_net.agg1.bilinear_conv.weight"
_LIDIA_KEY = re.compile(r"(alpha[01]|beta|weights_net[01]\.(fc\d|bn\d|fc_out)\.\w+|separable_fc_net\.[\w.]+)")


def is_lidia_state_dict(state: Mapping[str, Any]) -> bool:
    return bool(state) and "alpha0" in state and "beta" in state and all(_LIDIA_KEY.fullmatch(k) for k in state)


def official_lidia_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Map the LIDIA authors' ``PatchDenoiseNet`` keys (github grishavak/LIDIA-denoiser, ``models/*.pt``
    ``state_dict``) onto the ``lidia`` block's (node ``lidia`` of the ``lidia`` family): the submodule names are the
    authors', so the mapping is the prefix ``blocks.lidia.``; their fixed blur kernel is checked and dropped."""
    out = {}
    for key, value in state.items():
        if key == LIDIA_FIXED_KEY:
            blur = torch.tensor([0.25, 0.5, 0.25])
            if not torch.allclose(value.float().reshape(3, 3), blur[:, None] * blur[None, :]):
                raise WeightsError(f"{key}: expected the fixed [1/4, 1/2, 1/4]^2 kernel, got {value.tolist()}")
            continue
        out[f"blocks.lidia.{key}"] = value
    return out


register_layout("lidia", is_lidia_state_dict, official_lidia_state_dict,
                "github grishavak/LIDIA-denoiser (models/model_state_*.pt, PatchDenoiseNet state_dict)")
