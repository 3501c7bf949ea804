from __future__ import annotations

import json

import pytest
from PIL import Image as PILImage
from restore_data import requires_shared, shared_file, shared_root

from archsearch.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_evaluate_the_checkpoint(capsys, tmp_path):
    ckpt = tmp_path / "tiny.pt"
    spec = tmp_path / "tiny.yaml"
    from archsearch import get_family

    get_family("convnet")(depth=2, width=4, name="tiny").save(spec)
    code, out, err = _run(capsys, "train", "--spec", str(spec), "--task", "denoise", "--sigma", "25", "--steps", "3",
                          "--batch-size", "2", "--patch-size", "16", "--val-crop", "48", "--out", str(ckpt),
                          "--format", "json")
    assert code == 0, err
    row = json.loads(out)
    assert row["status"] == "completed" and row["steps"] == 3 and row["checkpoint"] == str(ckpt)
    import torch

    assert torch.load(ckpt, weights_only=False)["config"]["channels_last"] is False  # auto, resolved: a convnet
    code, out, err = _run(capsys, "evaluate", "--weights", str(ckpt), "--format", "json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_images"] == 2 and res["model"] == "tiny" and res["task"]["sigma"] == 25
    assert {"psnr", "ssim", "per_image"} <= res.keys()
    code, out, _ = _run(capsys, "evaluate", "--weights", str(ckpt))
    assert code == 0 and "mean of 2" in out and "camera" in out
    code, out, err = _run(capsys, "train", "--spec", str(spec), "--task", "denoise", "--steps", "2", "--batch-size",
                          "2", "--patch-size", "16", "--channels-last", "on", "--out", str(ckpt), "--format", "json")
    assert code == 0, err
    assert torch.load(ckpt, weights_only=False)["config"]["channels_last"] is True


def test_evaluate_zoo_model_on_embedded_default(capsys):
    code, out, err = _run(capsys, "evaluate", "--zoo", "convnet_fig4", "--sigma", "50", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["task"]["sigma"] == 50


def test_evaluate_draws_scores_every_draw_and_tables_the_spread(capsys):
    import torch

    torch.manual_seed(0)  # the zoo model is untrained: the same initial weights in both calls
    code, out, err = _run(capsys, "evaluate", "--zoo", "convnet_fig4", "--draws", "3", "--format", "json")
    assert code == 0, err
    res = json.loads(out)
    assert res["draws"] == 3 and len(res["per_image"]) == 6  # 2 test images x 3 draws, draw-major
    assert [r["draw"] for r in res["per_image"]] == [0, 0, 1, 1, 2, 2]
    first = [r["psnr"] for r in res["per_image"] if r["name"] == res["per_image"][0]["name"]]
    assert len(set(first)) == 3  # three different noise draws, three different scores
    assert abs(res["psnr"] - sum(r["psnr"] for r in res["per_image"]) / 6) < 1e-9
    torch.manual_seed(0)
    code, out, err = _run(capsys, "evaluate", "--zoo", "convnet_fig4", "--draws", "3")
    assert code == 0, err
    assert "3 noise draws per image" in out and " sd " in out and "mean of 2" in out
    row = next(line.split() for line in out.splitlines() if line.startswith(res["per_image"][0]["name"]))
    assert abs(float(row[1]) - sum(first) / 3) < 5e-4  # the image's mean over its draws
    code, out, err = _run(capsys, "evaluate", "--zoo", "convnet_fig4", "--draws", "2", "--protocol", "dncnn")
    assert code == 2 and "one fixed noise draw" in err and not out


@requires_shared
def test_evaluate_dncnn_protocol_with_official_weights(capsys, tmp_path):
    weights = shared_file("pretrained", "dncnn_s_sigma25.pt")
    if weights is None:
        pytest.skip("official DnCNN-S weights not found")
    # one 256x256 Set12 image keeps this fast; the full-set fidelity test is in test_evaluate.py
    PILImage.open(shared_root() / "Set12" / "01.png").save(tmp_path / "01.png")
    code, out, err = _run(capsys, "evaluate", "--zoo", "dncnn_s", "--weights", str(weights), "--task", "denoise",
                          "--sigma", "25", "--dataset", str(tmp_path), "--protocol", "dncnn", "--format", "json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_images"] == 1 and res["protocol"] == "dncnn" and 29.5 < res["psnr"] < 31.5


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--zoo", "dncnn_s", "--sigma", "300"], "--sigma: must be in (0, 255]"),
    (["evaluate", "--zoo", "dncnn_s", "--task", "deblur"], "allowed: denoise, sr, jpeg"),
    (["evaluate", "--zoo", "srcnn", "--task", "sr", "--scale", "5"], "--scale: must be one of 2, 3, 4"),
    (["evaluate", "--zoo", "wdsr_nsr_x2", "--task", "sr", "--scale", "3"], "scale 1 (bicubic"),
    (["evaluate", "--zoo", "dncnn_s", "--dataset", "Set12"], "set the environment variable ARCHSEARCH_DATA_ROOT"),
    (["evaluate", "--zoo", "dncnn_s", "--weights", "missing.pt"], "missing.pt: no such weights file"),
    (["evaluate", "--zoo", "dncnn_s", "--dataset", "no/such/folder"], "unknown dataset"),
    (["train", "--zoo", "convnet_fig4", "--patch-size", "1000", "--steps", "1"], "smaller than the 1000x1000"),
    (["train", "--zoo", "convnet_fig4", "--steps", "0"], "argument --steps: must be an integer >= 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, monkeypatch, argv, message):
    monkeypatch.delenv("ARCHSEARCH_DATA_ROOT", raising=False)
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_image_and_bad_weights_are_named(capsys, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    code, _, err = _run(capsys, "evaluate", "--zoo", "convnet_fig4", "--dataset", str(tmp_path))
    assert code == 2 and "bad.png: unreadable or corrupt" in err and err.count("\n") == 1
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    code, _, err = _run(capsys, "evaluate", "--zoo", "convnet_fig4", "--weights", str(junk))
    assert code == 2 and "junk.pt: not a readable PyTorch weights file" in err and err.count("\n") == 1
    import torch

    torch.save({"blocks.0.weight": torch.zeros(1)}, tmp_path / "other.pt")
    code, _, err = _run(capsys, "evaluate", "--zoo", "convnet_fig4", "--weights", str(tmp_path / "other.pt"))
    assert code == 2 and "weights do not fit model 'convnet_fig4'" in err and err.count("\n") == 1


def test_data_list(capsys, tmp_path):
    code, out, _ = _run(capsys, "data", "list", "--data-root", str(tmp_path))
    assert code == 0 and "default:test" in out and "camera.png" in out and "Set12" in out
