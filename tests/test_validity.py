"""Issue 19, the trial side: test noise draws, per-image results, each task's trivial baseline and the validity
gate (a trial that does not beat the baseline by 0.1 dB is degenerate: stored, shown, never averaged in)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image as PILImage
from torch import nn

from archsearch import run_study
from archsearch.cli import main
from archsearch.data import Image
from archsearch.errors import ArchsearchError, ConfigError
from archsearch.evaluate import evaluate, evaluate_baseline, make_test_input
from archsearch.metrics import psnr
from archsearch.study import load_study
from archsearch.study.config import config_body, config_fingerprint
from archsearch.study.results import RESULT_COLUMNS, results_frame, seed_frame, summary_frame
from archsearch.study.trial import aggregate
from archsearch.study.validity import DEGENERATE_MARGIN_DB, classify, combine
from archsearch.tasks import DenoiseTask, JPEGTask, SRTask, bicubic_resize, quantize
from archsearch.testing.ledger import add_trial, new_ledger, trials_of
from archsearch.testing.studies import TINY_TRAINING, write_study, write_synthetic_study

ROOT = Path(__file__).resolve().parents[1]


def _images(channels: int = 1, n: int = 2, size: int = 32) -> list[Image]:
    g = torch.Generator().manual_seed(3)
    ramp = torch.linspace(0.2, 0.8, size)
    out = []
    for i in range(n):
        smooth = ramp[None, :, None] * ramp[None, None, :] + 0.1 * torch.rand(channels, size, size, generator=g)
        out.append(Image(f"img{i}", smooth.clamp(0, 1).expand(channels, size, size).contiguous()))
    return out


def _conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(1, 1, 3, padding=1)


# ---------------------------------------------------------------------------------------------------------
# noise draws
# ---------------------------------------------------------------------------------------------------------
def test_draw_zero_is_the_one_draw_input_and_each_draw_is_one_row_per_image():
    task, images, model = DenoiseTask(sigma=25), _images(), _conv()
    one = evaluate(model, task, images, scale=1)
    three = evaluate(model, task, images, scale=1, draws=3)
    assert [(s.name, s.draw) for s in three.per_image] == [(f"img{i}", d) for d in range(3) for i in range(2)]
    assert [(s.psnr, s.ssim) for s in three.per_image[:2]] == [(s.psnr, s.ssim) for s in one.per_image]
    assert three.n_images == 2 and three.draws == 3 and len(three.rows()) == 6
    assert three.psnr == pytest.approx(sum(s.psnr for s in three.per_image) / 6)
    assert len({round(s.psnr, 6) for s in three.per_image if s.name == "img0"}) == 3  # the draws differ
    # draw d is the input seeded with d
    x1 = make_test_input(task, images[0].pixels, "img0", seed=1)
    assert not torch.equal(x1, make_test_input(task, images[0].pixels, "img0", seed=0))


def test_dncnn_protocol_refuses_more_than_one_draw():
    with pytest.raises(ArchsearchError, match="dncnn protocol has one fixed noise draw"):
        evaluate(_conv(), DenoiseTask(sigma=25), _images(), protocol="dncnn", draws=2, scale=1)
    with pytest.raises(ArchsearchError, match="draws must be an integer >= 1"):
        evaluate_baseline(DenoiseTask(sigma=25), _images(), draws=0)


# ---------------------------------------------------------------------------------------------------------
# trivial baselines
# ---------------------------------------------------------------------------------------------------------
def test_denoise_baseline_is_the_noisy_input_scored_like_a_model():
    task, images = DenoiseTask(sigma=25), _images()
    base = evaluate_baseline(task, images, draws=2)
    assert task.baseline_name == "noisy input" and len(base.per_image) == 4
    for s in base.per_image:
        clean = next(im.pixels for im in images if im.name == s.name)
        noisy = make_test_input(task, clean, s.name, seed=s.draw)
        assert s.psnr == psnr(noisy, clean, clamp=True, quantize=True)
    # on a flat mid-grey image (no clamping) the noisy input's PSNR is about 20 log10(255 / sigma)
    flat = [Image("flat", torch.full((1, 32, 32), 0.5))]
    assert evaluate_baseline(task, flat).psnr == pytest.approx(20 * math.log10(255 / 25), abs=0.3)


def test_sr_baseline_is_bicubic_upsampling_of_the_lr_image_whatever_the_model_takes():
    task, images = SRTask(scale=2, channels=3), _images(channels=3)
    base = evaluate_baseline(task, images)
    assert task.baseline_name == "bicubic x2"
    for s, im in zip(base.per_image, images):
        target = task.prepare(im.pixels)
        lr = quantize(bicubic_resize(target, (16, 16)))
        up = bicubic_resize(lr, (32, 32))
        assert s.psnr == psnr(up, target, clamp=True, quantize=True, y_channel=True, border=2)
        # a pixel-shuffle model's LR input gives the same baseline as a scale-1 model's upsampled input
        assert torch.equal(task.baseline(task.degrade(target, model_scale=2), model_scale=2),
                           task.baseline(task.degrade(target, model_scale=1), model_scale=1))


def test_jpeg_baseline_is_the_compressed_input():
    task, images = JPEGTask(quality=10), _images()
    base = evaluate_baseline(task, images)
    assert task.baseline_name == "JPEG q10 input"
    for s, im in zip(base.per_image, images):
        assert s.psnr == psnr(task.degrade(im.pixels), im.pixels, clamp=True, quantize=True)


# ---------------------------------------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------------------------------------
def test_classify_degenerate_iff_below_baseline_plus_margin():
    b = 20.0
    assert DEGENERATE_MARGIN_DB == 0.1
    assert classify(b + DEGENERATE_MARGIN_DB, b) == "ok"  # exactly 0.1 dB above: ok
    assert classify(b + 0.0999, b) == "degenerate"
    assert classify(b, b) == "degenerate" and classify(b - 2.0, b) == "degenerate"
    assert classify(b + 5.0, b) == "ok" and classify(float("nan"), b) == "degenerate"
    assert combine(["ok", "ok"]) == "ok" and combine(["degenerate"] * 2) == "degenerate"
    assert combine(["ok", "degenerate"]) == "partly degenerate"


def test_aggregate_stores_per_seed_rows_and_validity_in_seed_order():
    def seed_result(seed, psnr_, validity):
        return {"seed": seed, "psnr": psnr_, "ssim": 0.5, "val_psnr": psnr_, "val_gain_last_third": 0.1 * seed,
                "checkpoint": f"c{seed}", "_per_image": [["img0", 0, psnr_, 0.5]], "_validity": validity}

    attrs = aggregate([seed_result(3, 25.0, "ok"), seed_result(1, 15.0, "degenerate")], [])
    assert attrs["seeds"] == [3, 1] and attrs["validity_per_seed"] == ["ok", "degenerate"]
    assert attrs["validity"] == "partly degenerate"
    assert attrs["per_image_per_seed"] == [[["img0", 0, 25.0, 0.5]], [["img0", 0, 15.0, 0.5]]]
    assert not {"_per_image", "_validity"} & set(attrs)


# ---------------------------------------------------------------------------------------------------------
# the study setting and the fingerprint
# ---------------------------------------------------------------------------------------------------------
#: config_fingerprint of write_study(tmp_path) computed by the code at main before test_draws existed.
TINY_FINGERPRINT = "796202d6d50f91bb"


def test_fingerprint_of_a_file_without_test_draws_is_unchanged(tmp_path):
    data = {"train": "default", "val": "default", "test": "default"}
    study = load_study(write_study(tmp_path))
    assert study.config.data.test_draws == 1 and "test_draws" not in config_body(study)["data"]
    assert config_fingerprint(study) == TINY_FINGERPRINT
    assert config_fingerprint(load_study(write_study(tmp_path, data={**data, "test_draws": 1}))) == TINY_FINGERPRINT
    # more draws are other results: an old one-draw ledger is refused, never mixed with them
    assert config_fingerprint(load_study(write_study(tmp_path, data={**data, "test_draws": 3}))) != TINY_FINGERPRINT


@pytest.mark.parametrize("value, fragment", [(0, "data.test_draws: must be an integer in 1..100"),
                                             ("3", "data.test_draws: must be an integer")])
def test_bad_test_draws_names_the_key(tmp_path, value, fragment):
    path = write_study(tmp_path, data={"train": "default", "val": "default", "test": "default", "test_draws": value})
    with pytest.raises(ConfigError, match=fragment) as info:
        load_study(path)
    assert str(info.value).startswith(str(path))


def test_shipped_studies_use_three_test_draws():
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())["data"]
        if data.get("protocol") == "dncnn":  # the DnCNN authors' protocol: one fixed draw (published checkpoints)
            assert data.get("test_draws", 1) == 1, path.name
            continue
        assert data.get("test_draws") == 3, path.name


# ---------------------------------------------------------------------------------------------------------
# a trial that returns its input
# ---------------------------------------------------------------------------------------------------------
def test_identity_model_trial_is_degenerate_complete_and_not_averaged(tmp_path, monkeypatch, capsys):
    import archsearch.study.trial as trial_module

    real = trial_module.train

    def identity(model, *args, **kw):  # zero weights: the body outputs 0, the global residual returns the input
        result = real(model, *args, **kw)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return result

    monkeypatch.setattr(trial_module, "train", identity)
    small = tmp_path / "small"  # 48x48 validation and test images: scoring 512x512 photographs is most of the time
    small.mkdir()
    for im in _images(size=48):
        PILImage.fromarray((im.pixels[0].numpy() * 255).round().astype("uint8"), mode="L").save(small / f"{im.name}.png")
    space = tmp_path / "space.yaml"  # one design, one trial
    space.write_text("name: one\ndesigns:\n- {name: xnet, family: xnet, fixed: {depth: 3, width: 8}}\n")
    path = write_study(tmp_path, search_space=str(space), budget=None, latency={"enabled": False},
                       sweep={"over": "xunit_kernel_size", "values": [3]}, training={**TINY_TRAINING, "steps": 2},
                       executor={"workers": 1},
                       data={"train": "default", "val": str(small), "test": str(small), "test_draws": 2})
    assert main(["run", str(path)]) == 0
    printed = capsys.readouterr().out
    study = load_study(path)
    trials = trials_of(study)
    assert len(trials) == 1 and {t.state.name for t in trials} == {"COMPLETE"}  # final results in Optuna
    for t in trials:
        ua = t.user_attrs
        assert ua["psnr"] == ua["baseline_psnr"] and ua["baseline"] == "noisy input" and ua["test_draws"] == 2
        assert ua["validity"] == "degenerate" and ua["validity_per_seed"] == ["degenerate"]
        assert len(ua["per_image_per_seed"]) == 1 and len(ua["per_image_per_seed"][0]) == 2 * ua["n_test_images"]
        assert ua["per_image_per_seed"][0] == ua["baseline_per_image"]
    df = results_frame(study)
    assert set(df["state"]) == {"DEGENERATE"} and set(df["test_draws"]) == {2}
    summary = summary_frame(df)
    assert len(summary) == 1 and summary["psnr_mean"].isna().all()  # the point keeps its row, without a mean
    assert list(summary["n_seeds"]) == [0] and list(summary["n_degenerate"]) == [1]
    assert "degenerate" in printed and "1 seed(s) scored within 0.1 dB of the trivial baseline" in printed
    header = (Path(study.output_dir) / "results.csv").read_text().splitlines()[0]
    assert header.endswith("validity,baseline_psnr,test_draws,baseline,published_weights,weights_sha256")
    # resume: a degenerate trial is a finished result, never run again
    assert run_study(study, progress=False, echo=lambda *_: None).complete == 1 and len(trials_of(study)) == 1
    capsys.readouterr()
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 degenerate" in out and "DEGENERATE" in out and "trivial baseline on the test images: noisy input" in out


# ---------------------------------------------------------------------------------------------------------
# readers on a synthetic ledger with a known answer
# ---------------------------------------------------------------------------------------------------------
def _gate(psnrs, validity, gains):
    return {"seeds": [0, 1], "psnr_per_seed": psnrs, "ssim_per_seed": [0.6, 0.4], "validity_per_seed": validity,
            "validity": combine(validity), "val_gain_last_third_per_seed": gains,
            "val_gain_last_third": sum(gains) / 2, "test_draws": 1, "baseline": "noisy input",
            "baseline_psnr": 15.0, "baseline_ssim": 0.2, "per_image_per_seed": [[["img0", 0, p, 0.5]] for p in psnrs]}


def _synthetic(tmp_path):
    study = load_study(write_synthetic_study(tmp_path))
    ostudy = new_ledger(study)
    add_trial(ostudy, design="xnet", label="xnet r=1", psnr=20.0, pct=3.0,
              **_gate([25.0, 15.0], ["ok", "degenerate"], [0.1, 0.3]))
    add_trial(ostudy, design="xnet", label="xnet r=5", psnr=15.02, pct=15.0,
              **_gate([15.0, 15.04], ["degenerate", "degenerate"], [0.0, 0.0]))
    for seed, p in ((0, 24.0), (1, 24.5)):  # a ledger written before the gate: no validity, treated as ok
        add_trial(ostudy, design="convnet", psnr=p, seed=seed, val_gain_last_third=0.2)
    return study, ostudy


def test_frames_gate_degenerate_seeds(tmp_path):
    study, ostudy = _synthetic(tmp_path)
    df = results_frame(study, ostudy)
    assert RESULT_COLUMNS[-6:] == ["validity", "baseline_psnr", "test_draws", "baseline", "published_weights",
                                   "weights_sha256"]
    assert list(df["state"]) == ["COMPLETE", "DEGENERATE", "COMPLETE", "COMPLETE"]
    seeds = seed_frame(df).set_index(["label", "seed"])
    r1 = seeds.loc["xnet r=1"]
    assert list(r1["psnr"]) == [25.0, 15.0] and list(r1["validity"]) == ["ok", "degenerate"]
    assert list(r1["val_gain_last_third"]) == [0.1, 0.3]  # the seed's own, not the trial mean 0.2
    assert list(r1["per_image"]) == [[["img0", 0, 25.0, 0.5]], [["img0", 0, 15.0, 0.5]]]
    assert list(seeds.loc["xnet r=5"]["validity"]) == ["degenerate"] * 2  # DEGENERATE trials' rows are kept
    assert seeds.loc["convnet"]["validity"].isna().all()
    s = summary_frame(df).set_index("label")
    assert (s.loc["xnet r=1", "psnr_mean"], s.loc["xnet r=1", "n_seeds"], s.loc["xnet r=1", "n_degenerate"]) \
        == (25.0, 1, 1)
    assert s.loc["xnet r=1", "val_gain_last_third"] == 0.1 and math.isnan(s.loc["xnet r=1", "psnr_std"])
    assert math.isnan(s.loc["xnet r=5", "psnr_mean"]) and s.loc["xnet r=5", "n_seeds"] == 0
    assert s.loc["xnet r=5", "n_degenerate"] == 2
    assert (s.loc["convnet", "psnr_mean"], s.loc["convnet", "n_seeds"], s.loc["convnet", "n_degenerate"]) \
        == (24.25, 2, 0)
