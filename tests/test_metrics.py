from __future__ import annotations

import math

import pytest
import torch

from archsearch.metrics import psnr, rgb_to_y, ssim


def test_psnr_known_values():
    a = torch.full((1, 16, 16), 0.5)
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    b = a.clone()
    b[:, :2] = 1.0  # only the border differs
    assert psnr(b, a, border=2) == math.inf
    assert psnr(torch.full((1, 4, 4), 1.5), torch.ones(1, 4, 4)) == math.inf  # clamped
    assert psnr(torch.full((1, 4, 4), 1.1), torch.ones(1, 4, 4), clamp=False) == pytest.approx(20.0)
    # quantisation: 0.5 + 0.4/255 rounds back onto 0.5's 8-bit neighbour
    assert psnr(torch.full((1, 4, 4), 128.4 / 255), torch.full((1, 4, 4), 128 / 255), quantize=True) == math.inf


def test_y_channel_is_matlab_rgb2ycbcr():
    white, black = torch.ones(3, 1, 1), torch.zeros(3, 1, 1)
    assert float(rgb_to_y(white)) * 255 == pytest.approx(235.0, abs=1e-3)
    assert float(rgb_to_y(black)) * 255 == pytest.approx(16.0)
    x = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[1] += 0.01  # only green changes: Y changes by 128.553/255 * 0.01
    assert psnr(y, x, y_channel=True, clamp=False) == pytest.approx(-20 * math.log10(128.553 / 255 * 0.01))


def test_ssim_matches_scikit_image_gaussian_ssim():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 40, 48, generator=g)
    y = (x + 0.1 * torch.randn(1, 40, 48, generator=g)).clamp(0, 1)
    ref = structural_similarity(x[0].double().numpy(), y[0].double().numpy(), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=1.0)
    assert ssim(y, x) == pytest.approx(ref, abs=1e-6)
    assert ssim(x, x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="11x11"):
        ssim(x[:, :8, :8], x[:, :8, :8])
