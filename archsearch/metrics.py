"""PSNR and SSIM with the conventions of the restoration toolboxes (KAIR, BasicSR, the SR papers' MATLAB code).

Conventions (all options of :func:`prepare_for_metric`, applied in this order):

1. ``clamp`` -- the restored image is clamped to [0, 1] (what saving it does). The DnCNN protocol turns this
   off and scores the raw float output.
2. ``quantize`` -- rounded to the 8-bit grid (``round(255 x) / 255``), as when the result is written as PNG
   and read back; the toolboxes' default (``tensor2uint``). Off in the DnCNN protocol.
3. ``y_channel`` -- RGB images are scored on the Y of YCbCr, MATLAB ``rgb2ycbcr`` (ITU-R BT.601 studio range:
   ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 1]), the SR papers' convention.
   Not rounded (BasicSR's ``bgr2ycbcr(..., y_only=True)`` on floats).
4. ``border`` -- ``border`` pixels are cropped from every side; the SR convention is ``border = scale``.

PSNR = 10 log10(1 / MSE) on [0, 1] data (the same number as 255^2 / MSE on the 8-bit range); the MSE is taken
over all pixels and channels in float64. An exact match gives ``inf``.

SSIM is Wang et al. (IEEE TIP 2004): an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
L = 1 (data in [0, 1]), statistics over the *valid* region only (the window never leaves the image, as in the
reference MATLAB ``ssim_index`` and BasicSR ``calculate_ssim``), the mean of the SSIM map, computed per
channel and averaged over channels, in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Y of YCbCr (MATLAB ``rgb2ycbcr``) of an RGB tensor (..., 3, H, W) in [0, 1]; result in [16/255, 235/255]."""
    if x.shape[-3] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels, got shape {tuple(x.shape)}")
    r, g, b = x.unbind(-3)
    return ((16.0 + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b) / 255.0).unsqueeze(-3)


def prepare_for_metric(x: torch.Tensor, *, clamp: bool = True, quantize: bool = False, y_channel: bool = False,
                       border: int = 0) -> torch.Tensor:
    """Apply the metric conventions (module docstring) to a (C, H, W) or (N, C, H, W) image, in float64."""
    x = x.detach().to(torch.float64)
    if clamp or quantize:
        x = x.clamp(0.0, 1.0)
    if quantize:
        x = torch.round(x * 255.0) / 255.0
    if y_channel and x.shape[-3] == 3:
        x = rgb_to_y(x)
    if border:
        x = x[..., border:-border, border:-border]
    return x


def psnr(pred: torch.Tensor, target: torch.Tensor, *, clamp: bool = True, quantize: bool = False,
         y_channel: bool = False, border: int = 0) -> float:
    """PSNR in dB of ``pred`` against ``target`` (both in [0, 1]); options as in :func:`prepare_for_metric`,
    applied to both (the target is already on the 8-bit grid for image files, so only ``pred`` changes)."""
    if pred.shape != target.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    kw = dict(clamp=clamp, quantize=quantize, y_channel=y_channel, border=border)
    p, t = prepare_for_metric(pred, **kw), prepare_for_metric(target, **kw)
    mse = torch.mean((p - t) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, *, clamp: bool = True, quantize: bool = False,
         y_channel: bool = False, border: int = 0) -> float:
    """Mean SSIM (Wang et al. 2004; module docstring) of ``pred`` against ``target`` on [0, 1] data."""
    if pred.shape != target.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    kw = dict(clamp=clamp, quantize=quantize, y_channel=y_channel, border=border)
    x, y = prepare_for_metric(pred, **kw), prepare_for_metric(target, **kw)
    if x.dim() == 3:
        x, y = x[None], y[None]
    n, c, h, w = x.shape
    if h < 11 or w < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels after the border crop, got {h}x{w}")
    x = x.reshape(n * c, 1, h, w)
    y = y.reshape(n * c, 1, h, w)
    g = _gaussian_window()
    gh, gw = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def blur(z: torch.Tensor) -> torch.Tensor:  # separable, 'valid' region only
        return F.conv2d(F.conv2d(z, gh), gw)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float((num / den).mean().item())
