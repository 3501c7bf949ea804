from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from archsearch.tasks import (
    DenoiseTask,
    JPEGTask,
    SRTask,
    TaskError,
    bicubic_resize,
    make_task,
    quantize,
    task_from_dict,
)


def _img(c=1, h=24, w=30, seed=0):
    return quantize(torch.rand((c, h, w), generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("name, kw, message", [
    ("deblur", {}, "allowed: denoise, sr, jpeg"),
    ("denoise", {"sigma": 0}, "(0, 255]"),
    ("denoise", {"sigma": 256}, "(0, 255]"),
    ("denoise", {"sigma": -5}, "(0, 255]"),
    ("sr", {"scale": 5}, "2, 3, 4"),
    ("sr", {"scale": 1}, "2, 3, 4"),
    ("jpeg", {"quality": 0}, "[1, 100]"),
    ("jpeg", {"quality": 101}, "[1, 100]"),
    ("denoise", {"channels": 2}, "1 (grayscale) or 3"),
    ("sr", {"sigma": 25}, "belongs to the denoise task"),
])
def test_make_task_rejects_with_allowed_values(name, kw, message):
    with pytest.raises(TaskError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make_task(name, **kw)


def test_make_task_ignores_none_and_round_trips():
    t = make_task("sr", scale=3, sigma=None, quality=None, channels=3)
    assert t == SRTask(channels=3, scale=3) and t.y_channel and t.border == 3 and t.color == "rgb"
    assert task_from_dict(t.to_dict()) == t
    assert make_task("denoise", sigma=15).sigma == 15.0
    assert make_task("deblocking", quality=20) == JPEGTask(quality=20)


@pytest.mark.parametrize("size", [(8, 10), (72, 90), (12, 15)])
def test_bicubic_is_pillow_bicubic(size):
    x = torch.rand((1, 24, 30), generator=torch.Generator().manual_seed(1))
    pil = np.asarray(PILImage.fromarray(x[0].numpy(), mode="F").resize(size[::-1], PILImage.BICUBIC))
    assert np.abs(bicubic_resize(x, size)[0].numpy() - pil).max() < 1e-5


def test_sr_input_styles():
    task = SRTask(scale=3)
    clean = task.prepare(_img(h=25, w=31))
    assert clean.shape[-2:] == (24, 30)  # modcrop
    lr = task.degrade(clean, model_scale=3)
    assert lr.shape[-2:] == (8, 10)
    assert torch.equal(lr, quantize(lr))  # the LR image is on the 8-bit grid
    up = task.degrade(clean, model_scale=1)
    assert up.shape == clean.shape and torch.allclose(up, bicubic_resize(lr, (24, 30)))
    assert task.input_factor(3) == 3 and task.input_factor(1) == 1
    with pytest.raises(TaskError, match="scale 1 .* or 3"):
        task.check_model(1, 1, 2)
    with pytest.raises(TaskError, match="channel"):
        task.check_model(3, 3, 3)


def test_jpeg_degradation_is_8bit_and_lossy():
    for c in (1, 3):
        clean = _img(c=c, h=32, w=32)
        out = JPEGTask(quality=10, channels=c).degrade(clean)
        assert out.shape == clean.shape and torch.equal(out, quantize(out))
        assert not torch.equal(out, clean)
        assert torch.equal(out, JPEGTask(quality=10, channels=c).degrade(clean))  # deterministic


def test_denoise_noise_level_and_seeding():
    task = DenoiseTask(sigma=25)
    clean = torch.full((1, 64, 64), 0.5)
    a = task.degrade(clean, rng=np.random.default_rng(3))
    b = task.degrade(clean, rng=np.random.default_rng(3))
    assert torch.equal(a, b)
    assert abs(float((a - clean).std()) - 25 / 255) < 0.005
    batch = task.degrade_batch(clean[None].repeat(4, 1, 1, 1), torch.Generator().manual_seed(0))
    assert abs(float((batch - 0.5).std()) - 25 / 255) < 0.005
    assert DenoiseTask(sigma=50, clip_noisy=True).degrade(clean, rng=np.random.default_rng(0)).max() <= 1.0


def test_residual_learning_predicts_the_noise():
    task = DenoiseTask(sigma=25, residual_learning=True)
    y, noise = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    assert torch.equal(task.restore(noise, y), y - noise)
    with pytest.raises(TaskError, match="already has global_residual"):
        task.check_model(1, 1, 1, "subtract")
    with pytest.raises(TaskError, match="scale 1"):
        DenoiseTask().check_model(1, 1, 2)


# ---------------------------------------------------------------------------------------------------------
# contract over the task registry: a new task is tested without new test code
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(__import__("archsearch.tasks", fromlist=["TASKS"]).TASKS))
def test_every_registered_task_keeps_the_contract(kind):
    import torch

    from archsearch.cli import build_parser
    from archsearch.tasks import TASKS, make_task, task_from_dict, task_settings

    task = make_task(kind)
    assert type(task) is TASKS[kind] and task.kind == kind
    assert task_from_dict(task.to_dict()) == task  # checkpoints round-trip
    for alias in TASKS[kind].aliases:
        assert make_task(alias) == task
    clean = torch.rand(task.channels, 24, 24)
    target = task.prepare(clean)
    degraded = task.degrade(target, model_scale=1, rng=np.random.default_rng(0))
    assert degraded.shape[0] == task.channels and torch.isfinite(degraded).all()
    assert not torch.equal(degraded, target[..., : degraded.shape[1], : degraded.shape[2]])
    # the CLI's task flags come from the registry: every setting has a documented --flag on train and evaluate
    parser = build_parser()
    for command in ("train", "evaluate"):
        sub = parser._subparsers._group_actions[0].choices[command]  # noqa: SLF001
        flags = {o for a in sub._actions for o in a.option_strings}  # noqa: SLF001
        for name in task_settings(kind):
            assert "--" + name.replace("_", "-") in flags, (command, name)
            assert name in TASKS[kind].setting_help
