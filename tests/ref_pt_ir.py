"""An independent plain-PyTorch re-implementation of the NSR authors' network, for the oracle tests.

Written for these tests from reading github ychfan/pt_ir ``models/wdsr_nsr.py`` at commit
bb6933c813bd8a1a3fc50cdbd672c9e942b13a71 (classes ``MODEL``, ``Block``, ``Conv2d``); no code is copied. It uses
torch's own weight normalisation (``torch.nn.utils.parametrizations.weight_norm``, dim 0 -- the reference calls
the older ``torch.nn.utils.weight_norm``, the same function) and ``torch.einsum`` for the aggregation, so it shares
no code path with ``archsearch.blocks.nsr``.

What the reference does, as read:

* ``Conv2d(in, out, k, num_sparsity_groups=K, num_sparsity_cardinals=D)`` is an ``nn.Conv2d(in, K * out, k)``
  (bias on) plus ``mlp = Sequential(Linear(in, K * D))``. Forward: ``s = softmax(mlp(mean_hw(input)).view(-1, K, D),
  dim=1)``; the (K * out)-row weight is viewed ``(K, D, out / D, in, k, k)`` and summed over K with ``s``; the
  (K * out) bias likewise; then one grouped conv over the batch (groups = batch size).
* ``Block``: ``x + conv2(ReLU(conv1(x)))`` with conv1 ``in -> int(in * width_multiplier)``, conv2 back; both
  weight-normed, conv1's gain initialised 2.0, conv2's ``res_scale`` = 1/sqrt(num_blocks), biases 0.
* ``MODEL``: ``x -= image_mean``; ``body`` = wn conv(num_inputs -> units, 3), the blocks, wn conv(units ->
  scale^2 * channels, 3); ``skip`` = wn conv(num_inputs -> scale^2 * channels, 5) when the channel counts differ,
  else identity; ``x = body(x) + skip(x)``; ``PixelShuffle(scale)``; ``x += image_mean``. (At evaluation on images
  >= 4 x lr_patch_size the reference runs the body on overlapping patches; the tests use small images, where the
  reference runs the whole image, in both modes.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class RefSparseConv(nn.Conv2d):
    def __init__(self, cin: int, cout: int, ks: int, k: int, d: int):
        super().__init__(cin, cout * k, ks, padding=ks // 2)
        self.k, self.d = k, d
        self.mlp = nn.Sequential(nn.Linear(cin, k * d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.softmax(self.mlp(x.mean(dim=(2, 3))).view(-1, self.k, self.d), dim=1)
        w = self.weight.view(self.k, self.d, -1, *self.weight.shape[1:])
        w = torch.einsum("nkd,kdoihw->ndoihw", s, w).reshape(-1, *self.weight.shape[1:])
        b = torch.einsum("nkd,kdo->ndo", s, self.bias.view(self.k, self.d, -1)).reshape(-1)
        n = x.shape[0]
        y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w, b, padding=self.padding, groups=n)
        return y.view(n, -1, *y.shape[2:])


def _wn(conv: nn.Conv2d, use: bool, gain: float) -> nn.Conv2d:
    if not use:
        return conv
    conv = weight_norm(conv, dim=0)
    with torch.no_grad():
        conv.parametrizations.weight.original0.fill_(gain)
        conv.bias.zero_()
    return conv


class RefBlock(nn.Module):
    """Module names as the reference's ``Block``: ``body = Sequential(conv1, ReLU, conv2)``."""

    def __init__(self, units: int, hidden: int, ks: int, k: int, d: int, use_wn: bool = True, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(_wn(RefSparseConv(units, hidden, ks, k, d), use_wn, 2.0), nn.ReLU(),
                                  _wn(RefSparseConv(hidden, units, ks, k, d), use_wn, res_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RefModel(nn.Module):
    """Module names as the reference's ``MODEL``: ``body = Sequential(head conv, blocks..., tail conv)``,
    ``skip = Sequential(5x5 conv)`` (empty when the channel counts agree), ``shuf``; so its state dict has the
    reference checkpoints' keys, up to the weight-norm naming (see :func:`as_checkpoint`)."""

    def __init__(self, units: int, width_multiplier: float, k: int, d: int, n_blocks: int, scale: int,
                 channels: int = 3, image_mean: float = 0.5):
        super().__init__()
        self.image_mean = image_mean
        n_out = scale * scale * channels
        body: list[nn.Module] = [_wn(nn.Conv2d(channels, units, 3, padding=1), True, 1.0)]
        body += [RefBlock(units, int(units * width_multiplier), 3, k, d, True, 1 / math.sqrt(n_blocks))
                 for _ in range(n_blocks)]
        body.append(_wn(nn.Conv2d(units, n_out, 3, padding=1), True, 1.0))
        self.body = nn.Sequential(*body)
        self.skip = nn.Sequential(*([_wn(nn.Conv2d(channels, n_out, 5, padding=2), True, 1.0)]
                                    if channels != n_out else []))
        self.shuf = nn.Sequential(*([nn.PixelShuffle(scale)] if scale > 1 else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - self.image_mean
        x = self.body(x) + self.skip(x)  # an empty Sequential is the identity
        return self.shuf(x) + self.image_mean


def as_checkpoint(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RefModel keys -> the keys of a checkpoint saved by the reference (``torch.nn.utils.weight_norm``:
    ``weight_g`` / ``weight_v`` instead of the parametrization's ``original0`` / ``original1``)."""
    return {k.replace("parametrizations.weight.original0", "weight_g")
             .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------------------
# key mapping: archsearch state dict -> the reference's
# ---------------------------------------------------------------------------------------------------------
def _conv_keys(prefix: str, weight: torch.Tensor, gain, bias, wn: bool) -> dict[str, torch.Tensor]:
    """Our (k, d, out/d, in, ks, ks) kernels -> the reference's (k * out, in, ks, ks); gains -> (k * out, 1, 1, 1)."""
    rows = weight.shape[0] * weight.shape[1] * weight.shape[2]
    v = weight.reshape(rows, *weight.shape[3:])
    out = {f"{prefix}.bias": bias.reshape(rows)}
    if wn:
        out[f"{prefix}.parametrizations.weight.original0"] = gain.reshape(rows, 1, 1, 1)
        out[f"{prefix}.parametrizations.weight.original1"] = v
    else:
        out[f"{prefix}.weight"] = v
    return out


def block_to_reference(sd: dict[str, torch.Tensor], prefix: str = "", ref_prefix: str = "",
                       wn: bool = True) -> dict[str, torch.Tensor]:
    """One ``nsr_residual`` block (reference layout) -> ``RefBlock`` keys (``ref_prefix`` + ``body.0`` / ``body.2``)."""
    out = {}
    for i, j in ((1, 0), (2, 2)):
        out.update(_conv_keys(f"{ref_prefix}body.{j}", sd[f"{prefix}weight{i}"], sd.get(f"{prefix}gain{i}"),
                              sd[f"{prefix}bias{i}"], wn))
        out[f"{ref_prefix}body.{j}.mlp.0.weight"] = sd[f"{prefix}select{i}.weight"]
        out[f"{ref_prefix}body.{j}.mlp.0.bias"] = sd[f"{prefix}select{i}.bias"]
    return out


def _wn_conv_keys(sd, prefix: str, ref_prefix: str) -> dict[str, torch.Tensor]:
    return {f"{ref_prefix}.parametrizations.weight.original0": sd[f"{prefix}.weight_g"],
            f"{ref_prefix}.parametrizations.weight.original1": sd[f"{prefix}.weight_v"],
            f"{ref_prefix}.bias": sd[f"{prefix}.bias"]}


def model_to_reference(sd: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
    """A built ``wdsr_nsr`` / ``edsr_nsr`` spec's state dict -> ``RefModel`` keys."""
    out = _wn_conv_keys(sd, "blocks.head", "body.0")
    out.update(_wn_conv_keys(sd, "blocks.tail", f"body.{n_blocks + 1}"))
    if "blocks.skip.weight_v" in sd:
        out.update(_wn_conv_keys(sd, "blocks.skip", "skip.0"))
    for i in range(n_blocks):
        out.update(block_to_reference(sd, f"blocks.nsr{i}.", f"body.{i + 1}."))
    return out
