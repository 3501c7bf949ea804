"""Training curves in TensorBoard and MLflow (archsearch.tracking): the values written equal the trainer's and the
ledger's; a study without `tracking:` keeps its config fingerprint; off means nothing imported or written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import archsearch as A
from archsearch.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mlflow_history(uri: str, experiment: str) -> dict[str, dict]:
    """run name -> {"tags": ..., "status": ..., "metrics": {key: [(step, value)]}} of an MLflow experiment."""
    import warnings

    from mlflow.tracking import MlflowClient

    with warnings.catch_warnings():  # as archsearch.tracking.open_run: SQLAlchemy's deprecation of MLflow's mapping
        warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy", category=DeprecationWarning)
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        assert exp is not None, f"no MLflow experiment {experiment!r}"
        out = {}
        for run in client.search_runs([exp.experiment_id]):
            metrics = {k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
                       for k in run.data.metrics}
            out[run.info.run_name] = {"tags": run.data.tags, "status": run.info.status, "metrics": metrics}
    return out


def test_study_tracking_writes_the_ledgers_curves_to_tensorboard_and_mlflow(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from archsearch import run_study
    from archsearch.study import load_study
    from archsearch.study.ledger import open_study

    uri = f"file:{tmp_path / 'mlruns'}"  # the sqlite store: the next test
    space = {"name": "tiny", "designs": [{"name": "xnet", "family": "xnet", "free_knob": "width",
                                          "fixed": {"depth": 2, "xunit_design": "BN+RL+CD+BN+GS"}}]}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(space))
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # two small images: the whole run (train, validation, test) takes a few seconds
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(images / f"im{i}.png")
    body = {"name": "curves", "search_space": str(tmp_path / "tiny.yaml"),
            "task": {"name": "denoise", "sigma": 25}, "budget": {"metric": "params", "value": 400, "tolerance": 0.2},
            "sweep": {"over": "xunit_kernel_size", "values": [1, 3]}, "seeds": [0],
            "data": {"train": str(images), "val": str(images), "test": str(images)},
            "training": {"steps": 4, "batch_size": 2, "patch_size": 16, "val_every": 2},
            "latency": {"enabled": False}, "tracking": {"tensorboard": "tb", "mlflow": uri},
            "output_dir": str(tmp_path / "out")}
    path = tmp_path / "curves.yaml"
    path.write_text(yaml.safe_dump(body))
    study = load_study(path)
    run_study(study, progress=False, echo=lambda *_: None)
    trials = [t for t in open_study(study, create=False).get_trials() if t.state.name == "COMPLETE"]
    assert len(trials) == 2  # r = 1 and r = 3: two runs of one experiment
    ml = _mlflow_history(uri, "curves")
    for t in trials:
        ua = t.user_attrs
        run = f"trial_{t.number}"
        tb = _scalars(tmp_path / "out" / "tb" / "curves" / run)  # relative DIR: inside the output folder
        curve = [(int(s), float(p)) for s, p in ua["val_curve"]]
        assert [s for s, _ in tb["val/psnr"]] == [s for s, _ in curve] == [2, 4]
        assert [v for _, v in tb["val/psnr"]] == pytest.approx([p for _, p in curve], abs=1e-4)  # float32 events
        assert [s for s, _ in tb["train/loss"]] == [1, 2, 3, 4]
        assert {"train/lr", "train/grad_norm", "train/steps_per_second"} <= set(tb)
        got = ml[run]
        assert got["status"] == "FINISHED"
        assert {k: got["tags"][k] for k in ("study", "trial", "label", "seed", "spec_hash")} == {
            "study": "curves", "trial": str(t.number), "label": ua["label"], "seed": "0", "spec_hash": ua["spec_hash"]}
        assert got["metrics"]["val/psnr"] == [(s, pytest.approx(p, abs=1e-9)) for s, p in curve]  # float64: exact
        assert got["metrics"]["test/psnr"] == [(4, pytest.approx(ua["psnr"], abs=1e-9))]
        assert [s for s, _ in got["metrics"]["train/loss"]] == [1, 2, 3, 4]


def test_train_callback_gets_the_trainers_values_and_tensorboard_mlflow_hold_them(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from archsearch.data import embedded_split
    from archsearch.tasks import make_task
    from archsearch.tracking import TrackingConfig, open_run
    from archsearch.training import TrainConfig, train

    spec = A.zoo_spec("srcnn")
    task = make_task("denoise", sigma=25)
    images = embedded_split("val")[:2]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = open_run(TrackingConfig(tensorboard=str(tmp_path / "tb"), mlflow=uri), experiment="exp", run_name="r",
                   tags={"seed": 0, "spec_hash": spec.hash, "label": "srcnn"})
    torch.manual_seed(0)
    config = TrainConfig(steps=5, batch_size=2, patch_size=16, val_every=2, val_crop=24, schedule="step",
                         step_milestones=(0.5,), step_gamma=0.1, lr=1e-3)
    result = train(A.build(spec), task, images, images, config, callback=run)
    run.finish(result.status, step=result.steps)
    tb = _scalars(tmp_path / "tb" / "exp" / "r")
    assert [v for _, v in tb["train/loss"]] == pytest.approx(list(result.losses), rel=1e-6)
    # step s runs at the rate after s - 1 schedule steps: x0.1 once 3 >= 2.5 steps are done
    assert [v for _, v in tb["train/lr"]] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4])
    assert tb["val/psnr"] == [(s, pytest.approx(p, abs=1e-4)) for s, p in result.val_history]
    ml = _mlflow_history(uri, "exp")["r"]
    assert [v for _, v in ml["metrics"]["train/loss"]] == pytest.approx(list(result.losses), rel=1e-12)
    assert ml["metrics"]["val/psnr"] == [(s, pytest.approx(p, rel=1e-12)) for s, p in result.val_history]
    assert len(ml["metrics"]["train/grad_norm"]) == 5 and ml["tags"]["spec_hash"] == spec.hash
    # the last steps/s is the trainer's (steps over the run's time so far, validation included)
    assert ml["metrics"]["train/steps_per_second"][-1][1] == pytest.approx(result.steps_per_second, rel=0.2)


def test_train_cli_logs_to_tensorboard(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    assert main(["train", "--zoo", "srcnn", "--steps", "2", "--batch-size", "2", "--patch-size", "16",
                 "--val-dataset", "none", "--out", str(tmp_path / "m.pt"), "--tensorboard", str(tmp_path / "tb")]) == 0
    runs = list((tmp_path / "tb" / "archsearch-train").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("srcnn_seed0_")
    assert [s for s, _ in _scalars(runs[0])["train/loss"]] == [1, 2]


def test_tracking_is_validated_at_load_and_missing_libraries_are_one_line(tmp_path, capsys, monkeypatch):
    from archsearch.errors import ConfigError
    from archsearch.study import load_study

    base = yaml.safe_load((ROOT / "studies" / "xunit_budget.yaml").read_text())
    base["search_space"] = str(ROOT / "search_spaces" / Path(base["search_space"]).name)
    for tracking, key, words in (({"tensorbord": "tb"}, "tracking.tensorbord", "did you mean 'tensorboard'"),
                                 ({"mlflow": "mlruns"}, "tracking.mlflow", "file:mlruns"),
                                 ({"tensorboard": ""}, "tracking.tensorboard", "must be a folder")):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({**base, "tracking": tracking}))
        with pytest.raises(ConfigError) as info:
            load_study(path)
        assert str(info.value).startswith(f"{path}: {key}: ") and words in str(info.value), str(info.value)

    import archsearch.tracking as T

    real = T.importlib.util.find_spec
    monkeypatch.setattr(T.importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    capsys.readouterr()
    assert main(["train", "--zoo", "srcnn", "--steps", "1", "--mlflow", "file:x", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--mlflow: logging to mlflow needs the mlflow package" in err, err
    assert 'pip install "archsearch[mlflow]"' in err
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "x").exists()
    path.write_text(yaml.safe_dump({**base, "tracking": {"mlflow": "file:x"}, "output_dir": str(tmp_path / "out")}))
    assert main(["run", str(path)]) == 2  # a study: the same line before anything is written
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tracking.mlflow: logging to mlflow needs the mlflow package" in err, err
    assert not (tmp_path / "out").exists()


def test_a_study_without_tracking_keeps_its_config_fingerprint(tmp_path):
    """Ledgers written before `tracking:` existed resume: the fingerprint of a study without it is today's, and
    turning tracking on or off does not change it (where curves go changes no result)."""
    from archsearch.study import load_study
    from archsearch.study.config import config_body, config_fingerprint

    body = yaml.safe_load((ROOT / "studies" / "xunit_budget.yaml").read_text())
    body["search_space"] = str(ROOT / "search_spaces" / Path(body["search_space"]).name)
    body["data"].pop("test_draws", None)  # the file as it was before test draws (the shipped one now sets 3)
    path = tmp_path / "xunit_budget.yaml"
    path.write_text(yaml.safe_dump(body))
    study = load_study(path)
    assert config_fingerprint(study) == "9421fbc9f89d2726"  # the digest before tracking existed
    assert "tracking" not in json.dumps(config_body(study))
    body["tracking"] = {"tensorboard": "tb", "mlflow": "sqlite:///x.db"}
    path.write_text(yaml.safe_dump(body))
    assert config_fingerprint(load_study(path)) == "9421fbc9f89d2726"


def test_importing_archsearch_imports_no_tracking_or_export_library():
    code = ("import sys, archsearch, archsearch.cli, archsearch.tracking, archsearch.export\n"
            "bad = sorted(m for m in ('tensorboard', 'mlflow', 'onnx', 'onnxscript', 'onnxruntime') if m in sys.modules)\n"
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
