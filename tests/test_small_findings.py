"""Nothing lost, nothing stale: inputs that used to be taken silently, cast silently or end in a traceback are one
line naming the file (and exit non-zero); JSON is strict; printed file names are escaped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from archsearch import get_family
from archsearch.builder import build
from archsearch.cli import main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> str:
    assert code != 0, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"not strict JSON: {name} in {text}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A two-layer convnet spec file (4 channels)."""
    path = tmp_path / "tiny.yaml"
    get_family("convnet")(depth=2, width=4, name="tiny").save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder of two small grayscale images."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        PILImage.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


# ---------------------------------------------------------------------------------------------------------
# strict JSON; a non-finite metric is a failure
# ---------------------------------------------------------------------------------------------------------
def test_train_json_is_strict_when_the_loss_is_infinite(capsys, tiny, images, tmp_path):
    code, out, _ = _run(capsys, "train", "--spec", tiny, "--task", "denoise", "--sigma", 25, "--steps", 3,
                        "--batch-size", 2, "--patch-size", 16, "--lr", "1e30", "--dataset", images,
                        "--val-dataset", "none", "--out", tmp_path / "t.pt", "--format", "json")
    row = _strict_json(out)
    assert code == 1 and row["status"] == "diverged" and row["final_loss"] is None


def test_evaluate_with_nan_weights_is_a_failure_not_a_score(capsys, tiny, images, tmp_path):
    model = build(get_family("convnet")(depth=2, width=4, name="tiny"))
    weights = tmp_path / "nan.pt"
    torch.save({k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}, weights)
    code, out, err = _run(capsys, "evaluate", "--spec", tiny, "--weights", weights, "--task", "denoise",
                          "--sigma", 25, "--dataset", images, "--format", "json")
    _one_line_error(code, err)
    assert out == "" and "PSNR nan" in err and str(weights) in err and "image a" in err
