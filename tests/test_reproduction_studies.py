"""The reproduction suite (studies/*.yaml): every study loads and plans in every profile without writing anything,
every smoke profile runs end to end, and the study features they rely on (sweeps without a budget, designs that
fix the swept argument as baselines, ``--plan``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from restore_data import shared_root

from archsearch import run_study
from archsearch.cli import main
from archsearch.errors import ConfigError
from archsearch.study import load_study
from archsearch.study.plan import plan_study

ROOT = Path(__file__).resolve().parents[1]
#: Every study shipped in studies/: a new study file is covered without editing this test.
STUDIES = tuple(sorted(p.stem for p in (ROOT / "studies").glob("*.yaml")))


def _profiles(name: str) -> list[str]:
    data = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())
    return ["default", *(data.get("profiles") or {})]


CASES = [(s, p) for s in STUDIES for p in _profiles(s)]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a shared 2-core machine two threads stall at every op whenever another process holds
    a core (a tiny step then takes seconds); one thread keeps these tests fast and their timing steady."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_suite_discovers_every_study():
    assert len(STUDIES) >= 11 and {"xunit_budget", "compact_denoiser"} <= set(STUDIES)


@pytest.mark.parametrize("name", STUDIES)
def test_study_file_names_its_source_and_has_the_three_profiles(name):
    path = ROOT / "studies" / f"{name}.yaml"
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and len(first.split()) >= 4, f"{path}: the first line names the paper: {first!r}"
    assert {"paper", "smoke"} <= set(_profiles(name))
    default = load_study(path)
    published = all(d.published for d in default.space.designs)  # published checkpoints: evaluated, not trained
    if default.config.claims and not published:  # fewer than 3 shared seeds decide nothing (claims.stats)
        assert len(default.config.seeds) >= 3
    if published:  # the authors' own models: paper scale, the test images are the replicates
        assert default.config.replicates == "images" and "paper scale (published weights)" in default.config.fidelity
    else:
        assert "CPU-scale proxy" in default.config.fidelity
    assert "paper scale" in load_study(path, "paper").config.fidelity
    smoke = load_study(path, "smoke")
    assert len(smoke.config.seeds) == 1 and (published or dict(smoke.config.training)["steps"] <= 4)


@pytest.mark.parametrize("name, profile", CASES, ids=[f"{s}-{p}" for s, p in CASES])
def test_every_study_plans_in_every_profile_and_writes_nothing(tmp_path, monkeypatch, capsys, name, profile):
    monkeypatch.chdir(tmp_path)  # a default output folder (runs/...) would appear here
    out = tmp_path / "out"
    steps = "1" if profile == "smoke" else "0"  # timing the paper-scale networks on a CPU is for the user
    assert main(["run", str(ROOT / "studies" / f"{name}.yaml"), "--profile", profile, "--plan", "--plan-steps",
                 steps, "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert not out.exists() and not (tmp_path / "runs").exists()
    assert list(tmp_path.iterdir()) == []
    study = load_study(ROOT / "studies" / f"{name}.yaml", profile)
    if study.plan is None:  # a search: its trials are the sampler's (test_plan_of_a_search_study)
        assert f"{study.config.search.n_trials} trials planned" in text
        return
    points, infeasible = study.plan.points, study.plan.infeasible
    assert points and not infeasible, infeasible  # every grid point of every shipped profile is trainable
    assert f"{len(points)} trials planned" in text
    for p in points:
        assert p.label in text
    if profile == "smoke":
        assert "estimated wall time on this machine" in text and "estimated from 1 timed steps per design" in text


def test_plan_estimates_from_timed_steps_and_is_a_library_function(tmp_path):
    study = load_study(ROOT / "studies" / "xunit_table1.yaml", "smoke", output_dir=tmp_path / "out")
    plan = plan_study(study, timed_steps=2, workers=2)  # the layout the plan times with: 2 workers x 1 thread
    assert (plan.workers, plan.threads) == (2, 1) and plan.n_trials == 2 and plan.estimated_s and plan.estimated_s > 0
    assert all(p.seconds_per_step and p.seconds_per_step > 0 for p in plan.points)
    df = plan.frame()
    assert list(df["label"]) == ["dncnn_s", "xdncnn xunit_kernel_size=9"]
    assert df["n_params"].tolist()[0] > df["n_params"].tolist()[1]  # 17 convs vs 9
    assert "estimated from 2 timed steps per design" in plan.text()
    assert not (tmp_path / "out").exists()
    # the activation-share sweep prints the solved shares and the ConvNet at 0%
    text = plan_study(load_study(ROOT / "studies" / "xunit_budget.yaml"), timed_steps=0).text()
    assert "30 trials planned (6 points x 5 seeds)" in text and "0.00" in text and "38.06" in text
    assert "stage 1 trains 18 trials (3 seeds)" in text


def test_plan_of_a_search_study(tmp_path):
    study = load_study(ROOT / "studies" / "compact_denoiser.yaml", "smoke", output_dir=tmp_path / "out")
    plan = plan_study(study, timed_steps=0)
    assert plan.mode == "search" and plan.n_trials == 2 and len(plan.points) == len(study.space.designs)
    assert "2 trials planned" in plan.text() and not (tmp_path / "out").exists()


_SMOKE_TIMES: dict[str, float] = {}


@pytest.mark.parametrize("name", STUDIES)
def test_smoke_profile_runs_end_to_end(tmp_path, monkeypatch, name):
    t0 = time.perf_counter()
    study = load_study(ROOT / "studies" / f"{name}.yaml", "smoke", output_dir=tmp_path / "out")
    if any(d.published for d in study.space.designs):  # the authors' weights live beside the shared datasets
        root = shared_root()
        if root is None:
            pytest.skip("published weights: the shared folder (../shared/datasets and ../shared/pretrained) is absent")
        monkeypatch.setenv("ARCHSEARCH_DATA_ROOT", str(root))
    planned = len(study.plan.points) if study.plan is not None else study.config.search.n_trials
    summary = run_study(study, progress=False, echo=lambda *_: None)
    assert summary.total == planned and summary.left == 0
    # every smoke trial completes: a failure here is a broken study, not noise
    assert (summary.complete, summary.failed) == (planned, 0), (name, summary)
    assert (tmp_path / "out" / "results.csv").exists() and (tmp_path / "out" / "summary.csv").exists()
    _SMOKE_TIMES[name] = time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------------
# the study features the suite relies on
# ---------------------------------------------------------------------------------------------------------
def _write(tmp_path: Path, space: dict, **study) -> Path:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    body = {"name": "t", "search_space": "space.yaml", "task": {"name": "denoise", "sigma": 25},
            "data": {"train": "default", "val": "default:val", "test": "default:val"},
            "seeds": [0], "training": {"steps": 2, "batch_size": 2, "patch_size": 24, "val_every": 1,
                                       "val_crop": 48},
            "latency": {"enabled": False}, "output_dir": str(tmp_path / "out"), **study}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_a_sweep_without_a_budget_builds_the_designs_as_they_are(tmp_path):
    space = {"name": "s", "designs": [{"name": "convnet", "family": "convnet", "fixed": {"width": 8}},
                                      {"name": "xnet", "family": "xnet", "fixed": {"width": 8}}]}
    study = load_study(_write(tmp_path, space, sweep={"over": "depth", "values": [3, 5]}))
    plan = plan_study(study, timed_steps=0)
    by_label = {p.label: p for p in plan.points}
    assert set(by_label) == {"convnet depth=3", "convnet depth=5", "xnet depth=3", "xnet depth=5"}
    assert by_label["convnet depth=5"].n_params > by_label["convnet depth=3"].n_params  # sizes grow with depth


def test_a_sweep_without_a_budget_refuses_a_free_knob_and_activation_shares(tmp_path):
    space = {"name": "s", "designs": [{"name": "convnet", "family": "convnet", "free_knob": "width"}]}
    with pytest.raises(ConfigError, match="budget: design 'convnet' .* has a free_knob but the study gives no budget"):
        load_study(_write(tmp_path, space, sweep={"over": "depth", "values": [3]}))
    space = {"name": "s", "designs": [{"name": "xnet", "family": "xnet"}]}
    with pytest.raises(ConfigError, match="activation_param_pct re-solves the free knob on a budget"):
        load_study(_write(tmp_path, space, sweep={"over": "activation_param_pct", "via": "xunit_kernel_size",
                                                  "values": [5]}))


def test_a_design_that_fixes_the_swept_argument_is_a_baseline(tmp_path):
    space = {"name": "s", "designs": [
        {"name": "softmax", "family": "nsr_resnet", "fixed": {"n_blocks": 1, "channels": 8}},
        {"name": "sigmoid", "family": "nsr_resnet",
         "fixed": {"n_blocks": 1, "channels": 8, "selection": "sigmoid", "temperature": 1.0}}]}
    study = load_study(_write(tmp_path, space, sweep={"over": "temperature", "values": [0.1, 10.0]}))
    points, infeasible = study.plan.points, study.plan.infeasible
    assert [p.label for p in points] == ["softmax temperature=0.1", "sigmoid", "softmax temperature=10.0"]
    assert not infeasible
    # every design fixing it: nothing to sweep
    space["designs"] = space["designs"][1:]
    with pytest.raises(ConfigError, match="every design of 's' that takes 'temperature' fixes it"):
        load_study(_write(tmp_path, space, sweep={"over": "temperature", "values": [0.1]}))
