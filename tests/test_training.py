from __future__ import annotations

import math

import pytest
import torch
from restore_data import requires_shared, shared_root

from archsearch import build, get_family
from archsearch.data import Image, embedded_split
from archsearch.metrics import psnr
from archsearch.tasks import DenoiseTask, JPEGTask, SRTask, bicubic_resize
from archsearch.training import (
    PatchSampler,
    TrainConfig,
    TrainError,
    _lr_lambda,
    deterministic_mode,
    prepare_step,
    seed_everything,
    train,
    train_step,
)


def _crop(images, size=96):
    return [Image(im.name, im.pixels[:, :size, :size]) for im in images]


TRAIN = _crop(embedded_split("train"))
VAL = _crop(embedded_split("val"), 48)
TINY = TrainConfig(steps=20, batch_size=4, patch_size=24, val_every=10)


def _tiny(seed=0, **kw):
    seed_everything(seed)
    return build(get_family("convnet")(depth=3, width=8, **kw))  # with batch norm


def test_same_seed_same_losses_and_metrics():
    a = train(_tiny(), DenoiseTask(sigma=25), TRAIN, VAL, TINY)
    b = train(_tiny(), DenoiseTask(sigma=25), TRAIN, VAL, TINY)
    assert a.status == "completed" and a.steps == 20 and len(a.val_history) == 2
    assert a.losses == b.losses and a.val_history == b.val_history
    c = train(_tiny(1), DenoiseTask(sigma=25), TRAIN, VAL, TrainConfig(**{**TINY.to_dict(), "seed": 1}))
    assert c.losses != a.losses


@pytest.mark.parametrize("family, args, settings", [
    ("convnet", {"depth": 3, "width": 8}, {"grad_clip": 0.5, "loss": "l1"}),  # batch norm, NCHW, clipped
    ("xnet", {"depth": 3, "width": 8, "xunit_kernel_size": 3}, {}),  # channels_last auto: NHWC
    ("memnet", {"n_blocks": 2, "recursions": 1, "channels": 8, "multi_supervised": True}, {}),  # Eq. 12 loss
])
def test_the_trainer_step_is_train_step(family, args, settings):
    """train() is the sampler's batches fed to train_step (what `run --plan` and bench_throughput time): the same
    losses and the same weights, bit for bit."""
    task = DenoiseTask(sigma=25)
    config = TrainConfig(steps=4, batch_size=2, patch_size=16, seed=3, schedule="step", progress=False, **settings)
    seed_everything(config.seed)
    trained = build(get_family(family)(**args))
    result = train(trained, task, TRAIN, (), config)
    seed_everything(config.seed)
    by_hand = build(get_family(family)(**args))
    seed_everything(config.seed)
    sampler = PatchSampler(task, TRAIN, config.patch_size, augment=config.augment, seed=config.seed)
    setup = prepare_step(by_hand, task, config)
    with deterministic_mode(config.deterministic):
        by_hand.train()
        outcomes = [train_step(setup, *sampler.batch(config.batch_size)) for _ in range(config.steps)]
    assert all(o.applied and o.grad_norm is not None and o.grad_norm > 0 for o in outcomes)
    assert tuple(o.loss for o in outcomes) == result.losses
    assert result.config["channels_last"] == setup.channels_last == (family != "convnet")
    for (name, a), b in zip(trained.state_dict().items(), by_hand.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_train_step_reports_divergence_without_stepping():
    model = _tiny()
    setup = prepare_step(model, DenoiseTask(sigma=25), TrainConfig(max_grad_norm=1e-9, progress=False))
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    x = torch.rand(2, 1, 16, 16)
    exploded = train_step(setup, x, x)
    assert not exploded.applied and exploded.grad_norm > 1e-9
    assert "exploding gradients" in exploded.divergence(1, setup.config)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # Adam did not step
    nan = train_step(setup, torch.full_like(x, float("nan")), x)
    assert not nan.applied and nan.grad_norm is None and "non-finite loss" in nan.divergence(2, setup.config)


def test_nan_loss_is_caught_as_divergence():
    poisoned = [Image("nan", torch.full((1, 32, 32), float("nan")))]
    r = train(_tiny(), DenoiseTask(sigma=25), poisoned, (), TINY)
    assert r.diverged and "non-finite loss" in r.reason and r.steps == 0


def test_exploding_gradients_are_caught_as_divergence():
    r = train(_tiny(), DenoiseTask(sigma=25), TRAIN, (), TrainConfig(steps=5, batch_size=2, patch_size=16,
                                                                     max_grad_norm=1e-9))
    assert r.diverged and "exploding gradients" in r.reason and "step 1" in r.reason
    # a real blow-up (absurd learning rate): a reason, never an exception
    huge = train(_tiny(), DenoiseTask(sigma=25), TRAIN, VAL, TrainConfig(steps=30, batch_size=4, patch_size=16,
                                                                         lr=1e8, val_every=5))
    assert huge.diverged and huge.steps < 30 and ("gradients" in huge.reason or "non-finite" in huge.reason)


def test_report_hook_can_stop_and_can_raise():
    seen = []
    r = train(_tiny(), DenoiseTask(sigma=25), TRAIN, VAL, TINY, report=lambda s, p: seen.append((s, p)) or True)
    assert r.status == "stopped" and r.steps == 10 and seen == list(r.val_history)

    class Pruned(Exception):
        pass

    def prune(step, value):
        raise Pruned(step)

    with pytest.raises(Pruned):
        train(_tiny(), DenoiseTask(sigma=25), TRAIN, VAL, TINY, report=prune)
    assert not torch.are_deterministic_algorithms_enabled()  # global state restored


def test_batch_norm_is_in_eval_mode_for_validation():
    model = _tiny()
    r = train(model, DenoiseTask(sigma=25), TRAIN, VAL, TrainConfig(steps=3, batch_size=4, patch_size=16))
    from archsearch.evaluate import evaluate

    assert not model.training
    assert evaluate(model, DenoiseTask(sigma=25), VAL).psnr == r.final_val_psnr


def test_patch_pairs_are_aligned():
    jpeg = PatchSampler(JPEGTask(quality=30), TRAIN, 24, seed=0)
    inp, tgt = jpeg.batch(8)
    assert inp.shape == tgt.shape == (8, 1, 24, 24)
    assert psnr(inp, tgt) > 22  # misaligned textured crops would be far below
    sr = PatchSampler(SRTask(scale=2), _crop(embedded_split("train", "y")), 24, scale=2, augment=False, seed=0)
    lr, hr = sr.batch(8)
    assert lr.shape == (8, 1, 12, 12) and hr.shape == (8, 1, 24, 24)
    assert psnr(lr[..., 2:-2, 2:-2], bicubic_resize(hr, (12, 12))[..., 2:-2, 2:-2]) > 30
    a, b = PatchSampler(DenoiseTask(), TRAIN, 16, seed=5), PatchSampler(DenoiseTask(), TRAIN, 16, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.batch(4), b.batch(4)))


def test_training_data_errors():
    with pytest.raises(TrainError, match="empty training set"):
        PatchSampler(DenoiseTask(), [], 16)
    with pytest.raises(TrainError, match="small.png: image is 8x8, smaller than the 16x16"):
        PatchSampler(DenoiseTask(), [Image("small", torch.zeros(1, 8, 8), "small.png")], 16)
    with pytest.raises(TrainError, match="multiple of the sr scale 3"):
        PatchSampler(SRTask(scale=3), TRAIN, 16, scale=3)
    with pytest.raises(TrainError, match="schedule: must be one of step, cosine, constant"):
        TrainConfig(schedule="linear")
    with pytest.raises(TrainError, match="loss: must be one of l1, l2"):
        TrainConfig(loss="huber")


@pytest.mark.parametrize("key, value, rule", [
    ("lr", float("inf"), "lr: must be a finite number"),
    ("lr", float("nan"), "lr: must be a finite number"),
    ("lr", -0.1, "lr: must be a finite number > 0"),
    ("lr", 0, "lr: must be a finite number > 0"),
    ("steps", 0, "steps: must be an integer in 1..10,000,000"),
    ("steps", 10**26, "steps: must be an integer in 1..10,000,000"),
    ("steps", 3.0, "steps: must be an integer, got 3.0"),
    ("steps", True, "steps: must be an integer, got True"),
    ("batch_size", 10**6, "batch_size: must be an integer in 1..4,096"),
    ("seed", -1, "seed: must be an integer with 0 <= seed < 2**31"),
    ("seed", 10**23, "seed: must be an integer with 0 <= seed < 2**31"),
    ("val_seed", 2**31, "val_seed: must be an integer with 0 <= val_seed < 2**31"),
    ("weight_decay", -1, "weight_decay: must be a finite number >= 0"),
    ("device", "tpu", "device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("val_crop", 0, "val_crop: must be an integer in 1..8,192 or null"),
    ("schedule", "cosinee", "schedule: must be one of step, cosine, constant, got 'cosinee' (did you mean 'cosine'?)"),
    ("loss", "l3", "loss: must be one of l1, l2, got 'l3'"),
    ("step_milestones", [0.5, 1.5], "step_milestones[1]: must be a fraction of the run in (0, 1)"),
    ("report_steps", [0], "report_steps[0]: must be a step in 1..steps"),
    ("grad_clip", 0, "grad_clip: must be a finite number > 0 or null"),
    ("max_grad_norm", float("inf"), "max_grad_norm: must be a finite number"),
    ("step_gamma", -1, "step_gamma: must be a finite number > 0"),
    ("val_every", -1, "val_every: must be an integer in 0..10,000,000"),
    ("augment", "yes", "augment: must be true or false, got 'yes'"),
])
def test_train_config_rules_name_the_key(key, value, rule):
    from archsearch.errors import SpecError

    with pytest.raises(SpecError) as info:  # a TrainError too: a study's loader adds `training.` and the file
        TrainConfig(**{key: value})
    assert isinstance(info.value, TrainError) and str(info.value).startswith(rule), str(info.value)


def test_train_config_accepts_the_limits():
    c = TrainConfig(steps=10_000_000, seed=2**31 - 1, val_seed=0, weight_decay=0, lr=1, val_crop=1, device="cuda:1",
                    step_milestones=[0.5], report_steps=[3, 1, 3], grad_clip=1)
    assert c.lr == 1.0 and isinstance(c.lr, float) and c.report_steps == (1, 3) and c.step_milestones == (0.5,)


def test_schedules():
    step = _lr_lambda(TrainConfig(steps=30, schedule="step"))
    assert [step(s) for s in (0, 19, 20, 25)] == pytest.approx([1, 1, 0.2, 0.04])
    cos = _lr_lambda(TrainConfig(steps=10, schedule="cosine"))
    assert cos(0) == 1 and cos(5) == pytest.approx(0.5) and cos(10) == pytest.approx(0)


@pytest.mark.parametrize("task, spec", [
    (SRTask(scale=2), get_family("srcnn")(n1=8, n2=4, f1=5, f2=1, f3=3)),
    (SRTask(scale=2, channels=3), get_family("nsr_resnet")(n_blocks=1, channels=4, expansion=1, sparsity_groups=2,
                                                           upscale=2, in_channels=3, out_channels=3)),
    (JPEGTask(quality=10), get_family("convnet")(depth=2, width=4)),
    (DenoiseTask(sigma=25, residual_learning=True), get_family("convnet")(depth=2, width=4, global_residual="none")),
    (DenoiseTask(sigma=50), get_family("memnet")(n_blocks=2, recursions=1, channels=4, multi_supervised=True)),
])
def test_every_task_trains_on_the_embedded_default(task, spec):
    seed_everything(0)
    model = build(spec)
    train_images = _crop(embedded_split("train", task.color))
    val = _crop(embedded_split("val", task.color), 48)
    r = train(model, task, train_images, val, TrainConfig(steps=3, batch_size=2, patch_size=16, loss="l1",
                                                          schedule="cosine", grad_clip=1.0))
    assert r.status == "completed" and all(math.isfinite(v) for v in r.losses) and r.final_val_psnr > 0


@requires_shared
@pytest.mark.parametrize("task, spec, train_set, test_set", [
    (DenoiseTask(sigma=25), get_family("convnet")(depth=2, width=4), "Train400", "Set12"),
    (SRTask(scale=3), get_family("srcnn")(n1=4, n2=4, f1=3, f2=1, f3=3), "Train400", "Set5"),
    (SRTask(scale=2, channels=3), get_family("nsr_resnet")(n_blocks=1, channels=4, expansion=1, sparsity_groups=2,
                                                           upscale=2, in_channels=3, out_channels=3), "Set14", "Set5"),
    (JPEGTask(quality=10), get_family("convnet")(depth=2, width=4), "Train400", "classic5"),
    (JPEGTask(quality=20, channels=3), get_family("convnet")(depth=2, width=4, in_channels=3, out_channels=3),
     "Set14", "LIVE1"),
])
def test_every_task_trains_and_evaluates_on_the_shared_sets(task, spec, train_set, test_set):
    from archsearch.data import load_dataset
    from archsearch.evaluate import evaluate

    root = shared_root()
    seed_everything(0)
    model = build(spec)
    r = train(model, task, load_dataset(train_set, color=task.color, data_root=root), (),
              TrainConfig(steps=2, batch_size=2, patch_size=24))
    assert r.status == "completed"
    result = evaluate(model, task, load_dataset(test_set, color=task.color, data_root=root)[:5])  # 5 keep it fast
    assert result.n_images == 5
    assert math.isfinite(result.psnr) and 0 < result.ssim <= 1


def test_weight_average_is_the_warmed_up_ema_of_the_trajectory():
    """ema=0.9: the trained model holds avg_t = lerp(avg_{t-1}, W_t, 1 - min(0.9, (1 + t) / (10 + t))) of the
    weights W_t after each step (batch-norm buffers copied from the last step), and validation scores the average;
    the steps themselves are those of the run without it (same losses)."""
    task = DenoiseTask(sigma=25)
    base = dict(batch_size=2, patch_size=16, schedule="constant", progress=False)
    weights = []
    for k in range(5):  # W_0 (the initial weights) .. W_4: runs of k steps follow the same trajectory
        m = _tiny()
        if k:
            train(m, task, TRAIN, (), TrainConfig(steps=k, **base))
        weights.append({n: p.detach().clone() for n, p in m.named_parameters()})
    avg = dict(weights[0])
    for t in range(1, 5):
        d = min(0.9, (1 + t) / (10 + t))
        avg = {n: avg[n] + (1 - d) * (weights[t][n] - avg[n]) for n in avg}
    plain = _tiny()
    a = train(plain, task, TRAIN, VAL, TrainConfig(steps=4, **base))
    averaged = _tiny()
    b = train(averaged, task, TRAIN, VAL, TrainConfig(steps=4, ema=0.9, **base))
    assert a.losses == b.losses
    for n, p in averaged.named_parameters():
        torch.testing.assert_close(p.detach(), avg[n], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(p, q) for p, q in zip(averaged.parameters(), plain.parameters()))
    for x, y in zip(averaged.buffers(), plain.buffers()):  # running statistics: the last step's
        assert torch.equal(x, y)
    assert b.val_history != a.val_history  # validation scored the average
    with pytest.raises(TrainError, match="ema: must be a decay in \\(0, 1\\)"):
        TrainConfig(ema=1.0)
