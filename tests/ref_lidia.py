"""An independent plain-PyTorch re-implementation of the LIDIA authors' forward pass, for the oracle test and the
speed benchmark.

Written for archsearch from reading github grishavak/LIDIA-denoiser at commit
7ec25344dc268cdb6267b5ea68fedef3c13c7815, ``code/modules.py`` (``NonLocalDenoiser``, ``PatchDenoiseNet``,
``SeparableFcNet``, ``FcNet``, ``VerHorMat``, ``VerHorBnRe``, ``Aggregation0/1``) and ``code/utils.py``
(``get_image_params``, ``calc_padding``, ``crop_offset``); no code is copied. It is functional: it reads the
authors' ``state_dict`` (their key names) directly and shares no code path with ``archsearch.blocks.lidia``.
It keeps the reference's *algorithm* on purpose, including its slow parts: the neighbour search computes the
distance map of every one of the (2 r + 1)^2 window offsets with one ``conv2d`` each, stores them all and takes
one ``topk`` over them; the separable network runs on all patches at once.

What the reference does, as read (images in [-1, 1], shape (B, C, H, W), C = 1 or 3, patch p = 7 gray / 5 RGB):

* ``forward``: subtract the per-image, per-channel mean, denoise, add it back.
* scale 0 (test mode): reflect-pad by p - 1, then pad by r = 14 with the constant -1. The neighbour search
  (``find_nn``) runs on that image (RGB: on its 0.2989 / 0.5870 / 0.1140 gray version): for every p x p patch
  of the reflect-padded region and every offset of the 29 x 29 window, the sum of squared differences; the 14
  smallest (sorted, the patch itself first at distance 0) and their positions in the padded image. The patches
  are gathered from ``unfold`` of the padded image.
* scale 1 (test mode): reflect-pad by (p - 1) / 2 + 1 + (p - 1), blur with the [1/4, 1/2, 1/4]^2 kernel (valid),
  pad by 2 r with -1. The search runs separately on the four 2x-subsampled phases (same window on the phase
  grid, i.e. neighbours at even offsets), positions are mapped back; patches are p x p with dilation 2.
* distances fed on: the 13 neighbour distances (self dropped) and ``std(self patch)^2 * numel``.
* ``PatchDenoiseNet``: weights = FcNet(exp(-|alpha| d)) per scale; the patch stacks are multiplied by them;
  ``SeparableFcNet`` predicts the noise of the self patch; patch estimate = self patch - noise; its weight
  exp(-|beta| mean((x - mean x)^2)); the patches are averaged back with these weights; crop p - 1.
* train mode: no synthetic padding; the input is cropped by ``calc_padding``'s offset at scale 0 and used as
  is at scale 1; the output is the centre (input size - 2 ``total_pad``); BatchNorm on batch statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RADIUS = 14  # the reference's search radius: a 29 x 29 window
NEIGHBOURS = 14  # the reference's k (the patch itself included)
GRAY = torch.tensor([0.2989, 0.5870, 0.1140])


def _verhor(sd, pre, x):
    x = torch.matmul(x, sd[f"{pre}.ver.weight"].t())
    x = torch.matmul(x.transpose(-1, -2), sd[f"{pre}.hor.weight"].t()).transpose(-1, -2)
    return x + sd[f"{pre}.b"]


def _bn(sd, pre, x, train):
    # a copy of the running statistics: train mode must not change the caller's state dict
    return F.batch_norm(x, sd[f"{pre}.running_mean"].clone(), sd[f"{pre}.running_var"].clone(),
                        sd[f"{pre}.weight"], sd[f"{pre}.bias"], training=train, momentum=0.1, eps=1e-5)


def _verhor_bn_relu(sd, pre, x, train):
    x = _verhor(sd, f"{pre}.ver_hor", x)
    if f"{pre}.bn.weight" in sd:
        x = _bn(sd, f"{pre}.bn", x.transpose(-2, -3), train).transpose(-2, -3)
    return torch.relu(x)


def _weights_net(sd, pre, x, train):
    b, n, v = x.shape
    for layer in range(6):
        x = torch.matmul(x, sd[f"{pre}.fc{layer}.weight"].t())
        x = torch.relu(_bn(sd, f"{pre}.bn{layer}", x.reshape(b * n, v), train).reshape(b, n, v))
    return torch.matmul(x, sd[f"{pre}.fc_out.weight"].t()) + sd[f"{pre}.fc_out.bias"]


def _find_nn(image, patch, radius, neighbours):
    """Distances of every patch of the centre region to every window offset (all kept), then one top-k."""
    b, _, h, w = image.shape
    win = 2 * radius + 1
    ch, cw = h - 2 * radius, w - 2 * radius
    centre = image[:, :, radius:radius + ch, radius:radius + cw]
    ones = torch.ones(1, 1, patch, patch)
    dist = torch.empty(b, ch - patch + 1, cw - patch + 1, win * win)
    for r in range(win):
        for c in range(win):
            shifted = image[:, :, r:r + ch, c:c + cw]
            dist[..., r * win + c] = F.conv2d((shifted - centre) ** 2, ones)[:, 0]
    top, ind = torch.topk(dist, neighbours, dim=3, largest=False, sorted=True)
    return top, torch.div(ind, win, rounding_mode="floor"), ind % win


def _gather(image, rows, cols, patch, dilation):
    """The patches at (rows, cols) (top-left corners in ``image``), (B, positions, k, C p^2)."""
    b = image.shape[0]
    cols_all = F.unfold(image, patch, dilation=dilation)  # (B, C p^2, L)
    per_row = image.shape[-1] - dilation * (patch - 1)
    flat = (rows * per_row + cols).reshape(b, -1)
    out = torch.stack([cols_all[i][:, flat[i]].t() for i in range(b)])
    return out.reshape(b, -1, rows.shape[-1], cols_all.shape[1])


def reference_forward(sd, image, *, train=False):
    """The reference ``NonLocalDenoiser.forward`` with the authors' ``PatchDenoiseNet`` state dict ``sd``."""
    rgb = image.shape[1] == 3
    small = "separable_fc_net.sep_part1_s0.a" not in sd
    p = 5 if rgb else 7
    r, k = RADIUS, NEIGHBOURS
    mean = image.mean(dim=(-2, -1), keepdim=True)
    x = image - mean

    def gray(t):
        # the authors' rgb2gray is a bias-free 1 x 1 Conv2d: the same op here, because its rounding is the
        # machine's (fused multiply-adds on some CPUs), and the neighbour search's exact ties follow those bits --
        # a multiply-then-sum gray image picks other neighbours on a 2-core Xeon (outputs 4e-3 apart)
        return F.conv2d(t, GRAY.view(1, 3, 1, 1)) if rgb else t

    # -- scale 0
    if train:
        offs = ((p - 1) // 2 + 1 + (p - 1) + 2 * r) - (p - 1 + r)
        x0 = x[..., offs:x.shape[-2] - offs, offs:x.shape[-1] - offs]
    else:
        x0 = F.pad(F.pad(x, [p - 1] * 4, mode="reflect"), [r] * 4, value=-1.0)
    d0, rows0, cols0 = _find_nn(gray(x0), p, r, k)
    ph, pw = d0.shape[1:3]
    rows0 = rows0 + torch.arange(ph).view(1, -1, 1, 1)
    cols0 = cols0 + torch.arange(pw).view(1, 1, -1, 1)
    patches0 = _gather(x0, rows0, cols0, p, 1)
    n = patches0.shape[-1]
    var0 = patches0[:, :, 0, :].std(dim=-1).unsqueeze(-1).pow(2) * n
    dist0 = torch.cat((d0.reshape(d0.shape[0], -1, k)[:, :, 1:], var0), dim=-1)

    # -- scale 1
    if train:
        x1 = x
    else:
        x1 = F.pad(x, [(p - 1) // 2 + 1 + (p - 1)] * 4, mode="reflect")
    blur = torch.tensor([0.25, 0.5, 0.25])
    blur = (blur[:, None] * blur[None, :]).view(1, 1, 3, 3)
    bc, cc, hh, ww = x1.shape
    x1 = F.conv2d(x1.reshape(bc * cc, 1, hh, ww), blur).reshape(bc, cc, hh - 2, ww - 2)
    if not train:
        x1 = F.pad(x1, [2 * r] * 4, value=-1.0)
    g1 = gray(x1)
    d1 = torch.full((x.shape[0], ph, pw, k), float("nan"))
    rows1 = torch.zeros(x.shape[0], ph, pw, k, dtype=torch.long)
    cols1 = torch.zeros_like(rows1)
    for a in (0, 1):
        for c in (0, 1):
            dd, rr, cc2 = _find_nn(g1[:, :, a::2, c::2], p, r, k)
            d1[:, a::2, c::2] = dd
            rows1[:, a::2, c::2] = 2 * (rr + torch.arange(dd.shape[1]).view(1, -1, 1, 1)) + a
            cols1[:, a::2, c::2] = 2 * (cc2 + torch.arange(dd.shape[2]).view(1, 1, -1, 1)) + c
    patches1 = _gather(x1, rows1, cols1, p, 2)
    var1 = patches1[:, :, 0, :].std(dim=-1).unsqueeze(-1).pow(2) * n
    dist1 = torch.cat((d1.reshape(d1.shape[0], -1, k)[:, :, 1:], var1), dim=-1)

    # -- PatchDenoiseNet
    w0 = _weights_net(sd, "weights_net0", torch.exp(-sd["alpha0"].abs() * dist0), train).unsqueeze(-1)
    w1 = _weights_net(sd, "weights_net1", torch.exp(-sd["alpha1"].abs() * dist1), train).unsqueeze(-1)
    pre = "separable_fc_net"

    def part1(name, t):
        t = _verhor_bn_relu(sd, f"{pre}.{name}.ver_hor_bn_re0", t, train)
        if not small:
            a = sd[f"{pre}.{name}.a"]
            t = a * t + (1 - a) * _verhor_bn_relu(sd, f"{pre}.{name}.ver_hor_bn_re1", t, train)
        return t

    s0 = part1("sep_part1_s0", patches0 * w0)
    s1 = part1("sep_part1_s1", patches1 * w1)
    hp0, wp0 = ph + p - 1, pw + p - 1  # the reflect-padded (scale 0) / blurred (scale 1) pixel grid

    def aggregate(t, dilation, blur_it):
        bb = t.shape[0]
        cols_ = t[:, :, 0, :].transpose(1, 2)  # (B, n, positions)
        size = (ph + dilation * (p - 1), pw + dilation * (p - 1))
        cnt = F.fold(torch.ones_like(cols_[:1]), size, p, dilation=dilation)
        img = F.fold(cols_, size, p, dilation=dilation) / cnt
        if blur_it:
            c_ = img.shape[1]
            img = F.pad(img, [1] * 4, mode="reflect").reshape(bb * c_, 1, size[0] + 2, size[1] + 2)
            img = F.conv2d(img, blur).reshape(bb, c_, *size)
        return F.unfold(img, p, dilation=dilation).transpose(1, 2).unsqueeze(2)

    y0 = aggregate(_verhor(sd, f"{pre}.ver_hor_agg0_pre", s0), 1, False)
    y0 = _verhor_bn_relu(sd, f"{pre}.ver_hor_bn_re_agg0_post", y0, train)
    first = w1[:, :, 0:1, :]
    y1 = first * aggregate(_verhor(sd, f"{pre}.ver_hor_agg1_pre", s1) / first, 2, True)
    y1 = _verhor_bn_relu(sd, f"{pre}.ver_hor_bn_re_agg1_post", y1, train)
    t = _verhor_bn_relu(sd, f"{pre}.sep_part2.ver_hor_bn_re2", torch.cat((s0, s1, y0, y1), dim=-2), train)
    if not small:
        a = sd[f"{pre}.sep_part2.a"]
        t = a * t + (1 - a) * _verhor_bn_relu(sd, f"{pre}.sep_part2.ver_hor_bn_re3", t, train)
    noise = _verhor(sd, f"{pre}.sep_part2.ver_hor_out", t)

    est = patches0[:, :, 0, :] - noise[:, :, 0, :]
    centred = est - est.mean(dim=-1, keepdim=True)
    pweight = torch.exp(-sd["beta"].abs() * (centred ** 2).mean(dim=-1, keepdim=True))
    num = F.fold((est * pweight).transpose(1, 2), (hp0, wp0), p)
    den = F.fold((pweight * torch.ones(1, 1, n)).transpose(1, 2), (hp0, wp0), p)
    cr, cc_ = min(p - 1, ph - 1), min(p - 1, pw - 1)
    out = num[..., cr:hp0 - cr, cc_:wp0 - cc_] / den[..., cr:hp0 - cr, cc_:wp0 - cc_]
    return out + mean


def train_pad(rgb: bool) -> int:
    """The reference's ``calc_padding`` total pad: the border a training crop loses on each side."""
    p = 5 if rgb else 7
    return (p - 1) // 2 + 1 + (p - 1) + 2 * RADIUS
