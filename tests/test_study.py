"""Studies: schema validation, planning, the Optuna ledger, resume after SIGKILL, failures, executors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from archsearch import run_study
from archsearch.cli import main
from archsearch.errors import ConfigError
from archsearch.study import load_study
from archsearch.study.results import results_frame
from archsearch.study.sampling import INTERRUPTED
from archsearch.testing.ledger import trials_of
from archsearch.testing.studies import TINY_TRAINING, write_study

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "xunit_fig4.yaml"

# ---------------------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"budjet": {"value": 1}}, "budjet: unknown key (did you mean 'budget'?)"),
        ({"seeds": ["a"]}, "seeds: must be a list, each item an integer, got ['a']"),
        ({"budget": {"metric": "flops", "value": 3000}}, "budget.metric: must be one of 'params', 'macs'"),
        ({"sweep": {"over": "xunit_kernel_size", "values": [1], "valuse": 2}}, "sweep.valuse: unknown key"),
        ({"training": {"stepz": 3}}, "training.stepz: unknown key"),
        ({"task": {"name": "denoise", "sigma": 300}}, "task.sigma: must be in (0, 255]"),
        ({"sweep": {"over": "nonexistent_arg", "values": [1]}}, "sweep.over: no design"),
        ({"search_space": "missing.yaml"}, "search_space: no such search-space file"),
        ({"search": {"sampler": "tpe", "n_trials": 2}}, "give exactly one of `sweep`"),
        ({"executor": {"kind": "slurm"}}, "executor.kind: must be one of 'local', 'ray'"),
    ],
)
def test_bad_study_files_name_file_and_key(tmp_path, override, fragment):
    path = write_study(tmp_path, **override)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert fragment in msg, msg


def test_bad_study_from_cli_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    path = write_study(tmp_path, budjet={"value": 1})
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "did you mean 'budget'" in err
    assert not (tmp_path / "out").exists()


def test_malformed_yaml_and_unknown_profile(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_study(bad)
    with pytest.raises(ConfigError, match="no profile 'papr' \\(did you mean 'paper'\\?\\)"):
        load_study(ROOT / "studies" / "xunit_budget.yaml", "papr")


def test_budget_out_of_reach_is_an_error_and_nothing_is_written(tmp_path, capsys):
    path = write_study(tmp_path, budget={"metric": "params", "value": 10, "tolerance": 0.05})
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "smallest achievable" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "ledger.db").exists()


def test_search_budget_out_of_reach_is_an_error(tmp_path, capsys):
    path = write_study(tmp_path, sweep=None, search={"sampler": "tpe", "n_trials": 2},
                       budget={"metric": "params", "value": 10, "tolerance": 0.05})
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no design of the search space can meet it" in err and "smallest achievable" in err
    assert not (tmp_path / "out" / "ledger.db").exists()


def test_missing_data_root_is_an_error_before_the_ledger(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARCHSEARCH_DATA_ROOT", raising=False)
    path = write_study(tmp_path, data={"train": "Train400", "val": "Set12", "test": "BSD68"})
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ARCHSEARCH_DATA_ROOT" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "ledger.db").exists()


def test_shipped_study_and_profiles_load():
    for profile in (None, "paper", "smoke"):
        study = load_study(ROOT / "studies" / "xunit_budget.yaml", profile)
        points, infeasible = study.plan.points, study.plan.infeasible
        assert points and all(p.seed in study.config.seeds for p in points)
        designs = {p.design for p in points}
        assert designs == {"convnet", "xnet"}
        # every point sits on the budget (within its tolerance)
        assert not [i for i in infeasible if "out of reach" in i["reason"]]
    paper = load_study(ROOT / "studies" / "xunit_budget.yaml", "paper")
    assert paper.config.budget.value == 99136 and paper.config.data.test == "BSD68"


def test_sweep_plan_keys_are_stable_and_cover_baseline_once(tmp_path):
    study = load_study(write_study(tmp_path, seeds=[0, 1], sweep={"over": "xunit_kernel_size", "values": [1, 3, 5]}))
    points = study.plan.points
    keys = [p.key for p in points]
    assert len(keys) == len(set(keys)) == (1 + 3) * 2  # convnet once + xnet per value, x 2 seeds
    assert [p.key for p in study.plan.points] == keys


def test_activation_pct_sweep_reports_unreachable_targets(tmp_path):
    # at 3,000 parameters the xNet's activation share moves in coarse steps (r = 29 or 31 at width 1 already
    # puts ~98% there), so a 20% target is 4.8 points from the closest design
    study = load_study(write_study(tmp_path, sweep={"over": "activation_param_pct", "values": [0, 20, 98],
                                                    "via": "xunit_kernel_size", "pct_tolerance": 1.0}))
    points, infeasible = study.plan.points, study.plan.infeasible
    assert {p.design for p in points} == {"convnet", "xnet"}
    assert [i["sweep_value"] for i in infeasible] == [20]
    assert "closest activation share is 15.23%" in infeasible[0]["reason"]


# ---------------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------------
def _trials(study):
    return trials_of(study)


def test_sweep_runs_writes_ledger_results_and_plot(tmp_path):
    study = load_study(write_study(tmp_path))
    summary = run_study(study, progress=False, echo=lambda *_: None)
    assert summary.complete == 3 and summary.failed == 0
    trials = _trials(study)
    assert {t.state.name for t in trials} == {"COMPLETE"}
    for t in trials:
        ua = t.user_attrs
        for key in ("point", "spec_hash", "n_params", "macs_per_pixel", "activation_param_pct", "psnr", "seed",
                    "wall_time_s", "checkpoint"):
            assert key in ua, key
        assert abs(ua["n_params"] - 3000) / 3000 <= 0.1
        assert study.output_path(ua["checkpoint"]).exists() and study.output_path(ua["spec_path"]).exists()
        assert t.intermediate_values  # validation PSNR curve is in the ledger
    out = Path(study.output_dir)
    assert (out / "results.csv").exists() and (out / "summary.csv").exists()
    assert (out / "psnr_vs_activation.png").stat().st_size > 10_000
    # a second run has nothing left to do and duplicates nothing
    again = run_study(study, progress=False, echo=lambda *_: None)
    assert again.complete == 3 and len(_trials(study)) == 3
    # Optuna's own CLI reads the ledger
    optuna_cli = Path(sys.executable).with_name("optuna")
    res = subprocess.run([str(optuna_cli), "trials", "--study-name", study.name, "--storage", study.storage_url,
                          "-f", "json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count('"COMPLETE"') == 3


def test_status_cli(tmp_path, capsys):
    path = write_study(tmp_path, sweep={"over": "xunit_kernel_size", "values": [3]})
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    # four training steps may leave a trial degenerate (no better than the noisy input): its own state, finished
    finished = dict((state, int(n)) for n, state in re.findall(r"(\d+) (complete|degenerate)", out.splitlines()[0]))
    assert sum(finished.values()) == 2 and "xnet xunit_kernel_size=3" in out


def test_exception_in_one_trial_does_not_end_the_study(tmp_path, monkeypatch):
    import archsearch.study.trial as trial_module

    real = trial_module.execute

    def flaky(study, design, args, seed, **kw):
        if args.get("xunit_kernel_size") == 5:
            raise RuntimeError("boom")
        return real(study, design, args, seed, **kw)

    monkeypatch.setattr(trial_module, "execute", flaky)
    study = load_study(write_study(tmp_path))
    summary = run_study(study, progress=False, echo=lambda *_: None)
    assert summary.complete == 2 and summary.failed == 1
    failed = [t for t in _trials(study) if t.state.name == "FAIL"]
    assert "RuntimeError: boom" in failed[0].user_attrs["fail_reason"]
    assert Path(failed[0].user_attrs["fail_reason"].split("traceback: ")[1].rstrip(")")).exists()


def test_diverged_trials_are_recorded_with_reason(tmp_path):
    training = {**TINY_TRAINING, "lr": 1.0e30, "steps": 6}
    study = load_study(write_study(tmp_path, training=training, sweep={"over": "xunit_kernel_size", "values": [3]}))
    summary = run_study(study, progress=False, echo=lambda *_: None)
    assert summary.failed == 2 and summary.complete == 0
    reasons = [t.user_attrs["fail_reason"] for t in _trials(study)]
    assert all(r.startswith("diverged") for r in reasons), reasons
    df = results_frame(study)
    assert (df["state"] == "FAIL").sum() == 2


def test_infeasible_grid_points_are_reported_in_results(tmp_path):
    # budget reachable by the ConvNet but not by an xNet with 31x31 xUnits (too many activation parameters)
    study = load_study(write_study(tmp_path, sweep={"over": "xunit_kernel_size", "values": [1, 31]},
                                   budget={"metric": "params", "value": 600, "tolerance": 0.2}))
    summary = run_study(study, progress=False, echo=lambda *_: None)
    df = results_frame(study)
    inf = df[df["state"] == "INFEASIBLE"]
    assert summary.infeasible == len(inf) >= 1
    assert inf["fail_reason"].str.contains("smallest achievable").all()


def test_kill_mid_trial_then_resume(tmp_path):
    """SIGKILL a real `archsearch run` while a trial runs; the re-run fails it, re-runs it, duplicates nothing."""
    training = {**TINY_TRAINING, "steps": 400, "val_every": 100}
    path = write_study(tmp_path, training=training)
    study = load_study(path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "archsearch.cli", "run", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "run.log", "w"))
    deadline = time.time() + 300
    killed_running = False
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if not (Path(study.output_dir) / "ledger.db").exists():
                continue
            try:
                states = [t.state.name for t in _trials(study)]
            except Exception:  # the ledger is being created
                continue
            if "COMPLETE" in states and "RUNNING" in states:
                time.sleep(0.5)
                proc.send_signal(signal.SIGKILL)
                killed_running = True
                break
    finally:
        proc.kill()
        proc.wait()
    assert killed_running, "the run finished or never reached a second trial before the kill"
    summary = run_study(study, progress=False, echo=lambda *_: None)
    trials = _trials(study)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    interrupted = [t for t in trials if t.user_attrs.get("fail_reason") == INTERRUPTED]
    assert summary.complete == 3
    assert len(complete) == 3 and len({t.user_attrs["point"] for t in complete}) == 3
    assert len(interrupted) == 1
    assert interrupted[0].user_attrs["point"] in {t.user_attrs["point"] for t in complete}


def test_two_local_workers_share_the_ledger(tmp_path, capsys):
    path = write_study(tmp_path, seeds=[0, 1])
    elsewhere = tmp_path / "elsewhere"  # --output-dir must reach the worker processes too
    assert main(["run", str(path), "--workers", "2", "--output-dir", str(elsewhere)]) == 0
    assert "6 complete" in capsys.readouterr().out
    study = load_study(path, output_dir=elsewhere)
    trials = _trials(study)
    assert len(trials) == 6 and {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.user_attrs["point"] for t in trials}) == 6
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    assert all(study.output_path(t.user_attrs["checkpoint"]).is_relative_to(elsewhere) for t in trials)
    assert not (tmp_path / "out").exists()


def test_successive_halving_prunes_and_records_why(tmp_path):
    """6 configurations, a rung every 2 steps, keep 1 in 2: some trial must be stopped early (deterministic:
    fixed sampler and training seeds). A pruned trial stops at a rung and says so."""
    path = write_study(tmp_path, name="sh", sweep=None, training={**TINY_TRAINING, "steps": 8, "val_every": 2},
                       search={"sampler": "random", "n_trials": 6, "pruner": "successive_halving",
                               "reduction_factor": 2})
    study = load_study(path)
    summary = run_study(study, progress=False, echo=lambda *_: None)
    assert summary.pruned >= 1 and summary.complete >= 1 and summary.complete + summary.pruned == 6
    for t in _trials(study):
        if t.user_attrs.get("duplicate_of") is not None:  # a proposal answered from an earlier trial
            continue
        if t.state.name == "PRUNED":
            assert t.user_attrs["fail_reason"].startswith("pruned at step")
            assert max(t.intermediate_values) < 8  # stopped before the end of training
        else:
            assert sorted(t.intermediate_values) == [2, 4, 6, 8]


def test_tpe_search_with_pruner_and_nsga2(tmp_path):
    path = write_study(tmp_path, name="tpe", sweep=None,
                       search={"sampler": "tpe", "n_trials": 3, "pruner": "median"})
    study = load_study(path)
    summary = run_study(study, progress=False, echo=lambda *_: None)
    assert summary.complete + summary.pruned == 3
    t = _trials(study)[0]
    assert "xunit_kernel_size" in t.params or "design" in t.params

    path = write_study(tmp_path, name="nsga", budget=None, sweep=None,
                       search={"sampler": "nsga2", "n_trials": 2, "objectives": ["psnr", "params"]})
    space = tmp_path / "space.yaml"
    space.write_text(textwrap.dedent("""
        name: small
        designs:
          - name: xnet
            family: xnet
            fixed: {depth: 3}
            search:
              width: {low: 4, high: 12, step: 4}
              xunit_kernel_size: {choices: [1, 3]}
    """))
    data = yaml.safe_load(path.read_text())
    data["search_space"] = str(space)
    data["output_dir"] = str(tmp_path / "nsga_out")
    path.write_text(yaml.safe_dump(data))
    study = load_study(path)
    run_study(study, progress=False, echo=lambda *_: None)
    done = [t for t in _trials(study) if t.state.name == "COMPLETE"]
    assert len(done) == 2 and all(len(t.values) == 2 for t in done)
    assert all(t.values[1] == t.user_attrs["n_params"] for t in done)


def test_ray_executor_real_local_runtime_two_concurrent_trials(tmp_path):
    pytest.importorskip("ray")
    path = write_study(tmp_path, executor={"kind": "ray", "workers": 2, "cpus_per_trial": 1})
    study = load_study(path)
    summary = run_study(study, progress=False, echo=lambda *_: None)
    trials = _trials(study)
    assert summary.complete == 3 and len(trials) == 3
    assert len({t.user_attrs["point"] for t in trials}) == 3
    assert len({t.user_attrs["pid"] for t in trials}) >= 2  # ran in Ray worker processes
    # a search through Ray Tune's OptunaSearch + ASHA writes to the same ledger format
    spath = write_study(tmp_path, name="raysearch", sweep=None, executor={"kind": "ray", "workers": 2},
                        search={"sampler": "tpe", "n_trials": 2})
    data = yaml.safe_load(spath.read_text())
    data["output_dir"] = str(tmp_path / "ray_search_out")
    spath.write_text(yaml.safe_dump(data))
    sstudy = load_study(spath)
    run_study(sstudy, progress=False, echo=lambda *_: None)
    strials = _trials(sstudy)
    assert len(strials) == 2
    for t in strials:
        assert t.state.name in ("COMPLETE", "PRUNED")
        assert "spec_hash" in t.user_attrs and "n_params" in t.user_attrs
        if t.state.name == "COMPLETE":
            assert t.value == pytest.approx(t.user_attrs["psnr"])


@pytest.mark.parametrize("script, trained, proposals", [
    # six rounds of nothing but repeats before the second configuration: five rounds (the former limit) missed it
    ([["new"], *[["dup"]] * 6, ["new"]], 2, 8),
    # a sampler that only repeats: the search stops after MAX_DUPLICATES_IN_A_ROW repeats, as the local one does
    ([["new"]] + [["dup"]] * 80, 1, 51),
], ids=["late-new-configuration", "only-repeats"])
def test_ray_search_rounds_stop_on_the_local_duplicate_rule(tmp_path, monkeypatch, script, trained, proposals):
    """Ray Tune's rounds (``run_ray``, search): a round's proposals of already-trained architectures do not count
    towards the target; rounds go on until the target is trained or the sampler has proposed only trained
    architectures ``MAX_DUPLICATES_IN_A_ROW`` times in a row (ASHA ran 5 of 6 configurations when a fixed number
    of rounds was the limit). The tuner is replaced by one that writes the scripted proposals to the ledger."""
    pytest.importorskip("ray")
    import optuna
    import ray

    from archsearch.study import ledger as L
    from archsearch.study import ray_executor
    from archsearch.study.sampling import MAX_DUPLICATES_IN_A_ROW

    assert MAX_DUPLICATES_IN_A_ROW == 50
    study = load_study(write_study(tmp_path, sweep=None, executor={"kind": "ray", "workers": 1},
                                   search={"sampler": "random", "n_trials": 2}))
    ostudy = L.open_study(study)
    rounds = iter(script)

    class Round:
        def fit(self):
            for kind in next(rounds, []):
                first = next((t.number for t in ostudy.get_trials(deepcopy=False)), None)
                attrs = {"label": f"design {len(ostudy.trials)}"} if kind == "new" else {"duplicate_of": first}
                ostudy.add_trial(optuna.trial.create_trial(value=20.0, user_attrs=attrs))

    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # no runtime: the tuner is the script
    monkeypatch.setattr(ray_executor, "_search_tuner", lambda *a, **k: Round())
    ray_executor.run_ray(study, ostudy, mode="search", workers=1)
    trials = ostudy.get_trials(deepcopy=False)
    assert sum(t.user_attrs.get("duplicate_of") is None for t in trials) == trained
    assert len(trials) == proposals


def test_inspect_a_search_space_on_a_budget(capsys):
    import json

    assert main(["inspect", str(SPACE), "--budget", "99136", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == ["convnet"] + [f"xnet xunit_kernel_size={r}" for r in (1, 3, 5, 7, 9, 11)]
    assert all(abs(r["params"] - 99136) / 99136 < 0.02 for r in rows)
    shares = [r["activation_param_pct"] for r in rows]
    assert shares[0] == 0 and shares == sorted(shares)  # larger xUnit kernels: more parameters in activations
    assert main(["inspect", str(SPACE), "--budget", "10"]) == 2
    assert "smallest achievable" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_study_loads_in_every_profile(path):
    import yaml as _yaml

    for profile in [None, *(_yaml.safe_load(path.read_text()).get("profiles") or {})]:
        study = load_study(path, profile)
        assert study.space.designs and study.config.fidelity


def test_a_searched_value_is_checked_jointly_with_the_other_searched_arguments(tmp_path):
    from archsearch.study import load_search_space

    ok = tmp_path / "ok.yaml"  # kernel 7 breaks the default stride 8, but not the searched strides 2..6
    ok.write_text("name: ok\ndesigns:\n- {name: c, family: cscnet, search: {kernel_size: {choices: [7, 11]}, "
                  "stride: {choices: [2, 6]}}}\n")
    assert load_search_space(ok).designs[0].search["kernel_size"].choices == (7, 11)
    bad = tmp_path / "bad.yaml"  # no searched stride fits a 3x3 kernel
    bad.write_text("name: bad\ndesigns:\n- {name: c, family: cscnet, search: {kernel_size: {choices: [3, 11]}, "
                   "stride: {choices: [6, 8]}}}\n")
    with pytest.raises(ConfigError, match=r"designs\[0\]\.search\.kernel_size\.choices\[0\]"):
        load_search_space(bad)
