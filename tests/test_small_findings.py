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


# ---------------------------------------------------------------------------------------------------------
# weights of the wrong dtype
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8])
def test_integer_or_bool_weights_are_refused_naming_file_and_key(dtype, tmp_path):
    from archsearch.weights import WeightsError, load_weights

    model = build(get_family("convnet")(depth=2, width=4, name="tiny"))
    path = tmp_path / "ints.pt"
    torch.save({k: (v * 100).to(dtype) for k, v in model.state_dict().items()}, path)
    with pytest.raises(WeightsError) as info:
        load_weights(model, path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "blocks.0.weight" in msg and str(dtype).split(".")[1] in msg, msg


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_precisions_are_cast_to_the_model_dtype(dtype, tmp_path):
    from archsearch.weights import load_weights

    source = build(get_family("convnet")(depth=2, width=4, name="tiny"))
    path = tmp_path / "w.pt"
    torch.save({k: v.to(dtype) for k, v in source.state_dict().items()}, path)
    model = build(get_family("convnet")(depth=2, width=4, name="tiny"))
    load_weights(model, path)
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, source.state_dict()[k].to(dtype).float())


# ---------------------------------------------------------------------------------------------------------
# a spec too large to build is refused before anything is allocated
# ---------------------------------------------------------------------------------------------------------
def _convs(*widths: int) -> dict:
    """A spec of 3x3 convs through the given channel counts (1 -> widths... -> 1)."""
    chans = (1, *widths, 1)
    return {"name": "wide", "in_channels": 1, "out_channels": 1, "blocks": [
        {"type": "conv", "kernel_size": 3, "in_channels": a, "out_channels": b} for a, b in zip(chans, chans[1:])]}


@pytest.fixture
def no_building(monkeypatch):
    """Building a module fails the test: the spec must be refused from its counts alone."""
    import archsearch.builder

    def refuse(spec):
        raise AssertionError(f"{spec.name} was built")

    monkeypatch.setattr(archsearch.builder, "GraphModule", refuse)


def test_checkpoint_with_a_200000_channel_spec_is_refused_before_building(capsys, tmp_path, no_building):
    from archsearch.weights import CHECKPOINT_FORMAT

    ckpt = tmp_path / "wide.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "spec": _convs(200_000),
                "task": {"task": "denoise", "channels": 1, "sigma": 25.0}, "state_dict": {}}, ckpt)
    code, _, err = _run(capsys, "evaluate", "--weights", ckpt)
    _one_line_error(code, err)
    assert f"--weights {ckpt}: spec: blocks[0]: needs 800,000 bytes of activations per input pixel" in err, err
    assert "above the limit of 65,536" in err, err


def test_build_refuses_a_spec_above_the_parameter_limit(no_building):
    from archsearch.counting import MAX_PARAMS
    from archsearch.errors import SpecError
    from archsearch.spec import GraphSpec

    spec = GraphSpec.from_dict(_convs(12_000, 12_000))  # 12,000^2 x 9 = 1.3 G parameters in one conv
    with pytest.raises(SpecError, match=f"above the limit of {MAX_PARAMS:,}"):
        build(spec)


# ---------------------------------------------------------------------------------------------------------
# paths and sizes on the command line: one line each
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [["--dataset", "~archsearch-no-such-user/x"],
                                   ["--dataset", "Set12", "--data-root", "~archsearch-no-such-user/data"]])
def test_a_home_folder_of_an_unknown_user_is_one_line(capsys, flags):
    code, _, err = _run(capsys, "evaluate", "--zoo", "dncnn_s", *flags)
    _one_line_error(code, err)
    assert "~archsearch-no-such-user" in err and "no such user" in err, err


# ---------------------------------------------------------------------------------------------------------
# Ctrl-C: the resume hint only where re-running resumes
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command, argv, resumes", [
    ("evaluate", ["evaluate", "--zoo", "dncnn_s"], False),
    ("train", ["train", "--zoo", "dncnn_s"], False),
    ("run", ["run", "study.yaml"], True),
])
def test_ctrl_c_says_resume_only_for_commands_that_resume(command, argv, resumes, capsys, monkeypatch):
    import archsearch.cli.study as cli_study
    import archsearch.cli.train as cli_train

    def interrupted(args):
        raise KeyboardInterrupt

    for module, name in ((cli_train, "cmd_evaluate"), (cli_train, "cmd_train"), (cli_study, "cmd_run")):
        monkeypatch.setattr(module, name, interrupted)
    code, _, err = _run(capsys, *argv)
    assert code == 130 and err.startswith(f"archsearch {command}: interrupted (Ctrl-C)") and err.count("\n") == 1
    assert ("re-run the same command to resume" in err) == resumes, err


# ---------------------------------------------------------------------------------------------------------
# file names in messages are escaped
# ---------------------------------------------------------------------------------------------------------
HOSTILE = "bad\n\x1b[31mname"
ESCAPED = "bad\\n\\x1b[31mname"


def _escaped(msg: str) -> None:
    assert ESCAPED in msg and "\n" not in msg and "\x1b" not in msg, repr(msg)


def test_a_hostile_image_name_is_escaped(tmp_path, capsys):
    from archsearch.data import DataError, load_dataset

    (tmp_path / f"{HOSTILE}.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path)
    _escaped(str(info.value))
    code, _, err = _run(capsys, "evaluate", "--zoo", "dncnn_s", "--dataset", tmp_path)
    _one_line_error(code, err)
    _escaped(err.rstrip("\n"))


def test_a_hostile_weights_file_name_is_escaped(tmp_path):
    from archsearch.weights import WeightsError, read_weights

    path = tmp_path / f"{HOSTILE}.pt"
    path.write_bytes(b"junk")
    with pytest.raises(WeightsError) as info:
        read_weights(path)
    _escaped(str(info.value))


def test_a_hostile_study_file_name_is_escaped(tmp_path):
    from archsearch.errors import ConfigError
    from archsearch.study import load_study

    path = tmp_path / f"{HOSTILE}.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_study(path)
    _escaped(str(info.value))


def test_shown_escapes_only_what_cannot_be_printed():
    from archsearch.text import shown

    assert shown("Set12/ü 01.png") == "Set12/ü 01.png"
    assert shown("a\tb\rc\u202ed\x7f") == "a\\tb\\rc\\u202ed\\x7f"


def test_python_dash_m_archsearch_is_the_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "archsearch", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: archsearch" in done.stdout, done.stderr


def test_top_level_help_is_for_users(capsys):
    from archsearch.cli import main

    try:
        main(["--help"])
    except SystemExit as stop:
        assert stop.code == 0
    out = capsys.readouterr().out
    assert "which design is best at equal parameter or\nMAC budget" in out
    assert "archsearch run studies/xunit_budget.yaml --plan" in out and "archsearch report" in out
    assert ":mod:" not in out and "module" not in out  # nothing for developers
