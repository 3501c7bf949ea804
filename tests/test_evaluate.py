from __future__ import annotations

import numpy as np
import pytest
import torch
from restore_data import requires_shared, shared_file, shared_root
from torch import nn

from archsearch import build, get_family, zoo_spec
from archsearch.data import embedded_split, load_dataset
from archsearch.evaluate import evaluate, infer, make_test_input
from archsearch.tasks import DenoiseTask, JPEGTask, SRTask, make_task


def _convnet(depth=3, width=8, **kw):
    return build(get_family("convnet")(depth=depth, width=width, **kw))


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_inference_equals_full_image(scale):
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
              nn.Conv2d(8, scale * scale, 3, padding=1)]  # receptive radius 3
    model = nn.Sequential(*layers, nn.PixelShuffle(scale)).eval()
    x = torch.rand(1, 1, 45, 61)
    with torch.no_grad():
        full = model(x)
        tiled = infer(model, x, tile=16, overlap=4, scale=scale)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 1e-5


def test_test_noise_is_seeded_per_image():
    task = DenoiseTask(sigma=25)
    clean = torch.rand(1, 16, 16)
    a = make_test_input(task, clean, "barbara")
    assert torch.equal(a, make_test_input(task, clean, "barbara"))
    assert not torch.equal(a, make_test_input(task, clean, "boat"))
    assert not torch.equal(a, make_test_input(task, clean, "barbara", seed=1))
    # the DnCNN protocol: np.random.seed(0) before each image, float64 noise, float32 sum
    x = clean.numpy()
    np.random.seed(0)
    expected = (x + np.random.normal(0, 25 / 255.0, x.shape)).astype(np.float32)
    assert np.array_equal(make_test_input(task, clean, "any", protocol="dncnn").numpy(), expected)


def test_evaluate_uses_eval_mode_and_restores_train_mode():
    model = _convnet()  # has batch norm
    model.train()
    images = [im for im in embedded_split("test")]
    images = [type(im)(im.name, im.pixels[:, :48, :48]) for im in images]
    r1 = evaluate(model, DenoiseTask(sigma=25), images)
    assert model.training
    model.eval()
    r2 = evaluate(model, DenoiseTask(sigma=25), images)
    assert r1.psnr == r2.psnr and r1.n_images == 2 and len(r1.per_image) == 2
    assert r1.to_dict()["per_image"][0]["name"] == "camera"


@pytest.mark.parametrize("task, spec", [
    (SRTask(scale=2), get_family("srcnn")(n1=8, n2=4)),
    (SRTask(scale=2, channels=3), get_family("nsr_resnet")(n_blocks=1, channels=4, expansion=1, sparsity_groups=2,
                                                           upscale=2, in_channels=3, out_channels=3)),
    (JPEGTask(quality=20), get_family("convnet")(depth=2, width=4)),
    (DenoiseTask(sigma=15, channels=3), get_family("convnet")(depth=2, width=4, in_channels=3, out_channels=3)),
])
def test_every_task_evaluates_on_the_embedded_default(task, spec):
    images = [type(im)(im.name, im.pixels[:, :64, :64]) for im in embedded_split("test", task.color)]
    result = evaluate(build(spec), task, images)
    assert result.n_images == 2 and np.isfinite(result.psnr) and 0 < result.ssim <= 1


def _dncnn():
    from archsearch.blocks.conv import load_official_dncnn

    weights = shared_file("pretrained", "dncnn_s_sigma25.pt")
    if weights is None:
        pytest.skip("official DnCNN-S weights not found next to the shared datasets")
    model = build(zoo_spec("dncnn_s"))
    load_official_dncnn(model, str(weights))
    return model


@requires_shared
def test_dncnn_fidelity_set12():
    """Published 30.44 dB (DnCNN-S, sigma 25); 30.456 measured with the authors' protocol."""
    result = evaluate(_dncnn(), make_task("denoise", sigma=25), load_dataset("Set12", data_root=shared_root()),
                      protocol="dncnn")
    assert result.n_images == 12
    assert abs(result.psnr - 30.44) <= 0.03
    assert result.psnr == pytest.approx(30.456, abs=2e-3)


@pytest.mark.slow
@requires_shared
def test_dncnn_fidelity_bsd68():
    """Published 29.23 dB; 29.243 measured with the authors' protocol."""
    result = evaluate(_dncnn(), make_task("denoise", sigma=25), load_dataset("BSD68", data_root=shared_root()),
                      protocol="dncnn")
    assert result.n_images == 68
    assert abs(result.psnr - 29.23) <= 0.03
