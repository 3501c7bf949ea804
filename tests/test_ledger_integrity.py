"""The ledger never lies: no zombie or orphan, no repeated configuration, one trial path for every executor,
Optuna-native records, honest exit statuses, Ctrl-C, storage on a real PostgreSQL server."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from pg_server import pg_url  # noqa: F401  (fixture)

from archsearch import run_study
from archsearch.cli import main
from archsearch.study import ledger as L
from archsearch.study import load_study
from archsearch.study.runner import prepare
from archsearch.study.sampling import INTERRUPTED
from archsearch.testing.ledger import trials_of as _trials
from archsearch.testing.studies import TINY_TRAINING, write_study

QUIET = {"progress": False, "echo": lambda *_: None}
#: Attributes that say where and how fast a trial ran, not what it measured.
TIMING = {"host", "pid", "wall_time_s", "train_time_s", "eval_time_s", "overhead_s", "steps_per_second",
          "checkpoint", "checkpoints", "spec_path", "latency_ms_per_mp", "latency_device", "latency_input"}


def is_interrupted(trial) -> bool:
    """A FAIL recorded for a dead worker (not an infrastructure or model failure)."""
    return trial.state.name == "FAIL" and trial.user_attrs.get("fail_reason") == INTERRUPTED


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


# ---------------------------------------------------------------------------------------------------------
# zombies and orphans
# ---------------------------------------------------------------------------------------------------------
def test_trial_claimed_but_never_recorded_is_recovered_and_retrained(tmp_path):
    """The state a SIGKILL between Optuna's ask() and recording host/pid leaves: a RUNNING trial with no host.
    Resume fails it as interrupted, trains its grid point, and the run is complete."""
    study = load_study(write_study(tmp_path))
    Path(study.output_dir).mkdir(parents=True)
    ostudy = L.open_study(study, create=True)
    points, infeasible = study.plan.points, study.plan.infeasible
    prepare(study, ostudy, points, infeasible)
    zombie = ostudy.ask()  # a worker claimed a grid point and was killed before recording anything
    assert zombie.user_attrs.get("host") is None
    summary = run_study(study, **QUIET)
    assert summary.status == "complete" and summary.exit_code == 0
    trials = _trials(study)
    z = next(t for t in trials if t.number == zombie.number)
    assert z.state.name == "FAIL" and is_interrupted(z)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["point"] for t in done) == sorted(p.key for p in points)


def test_unclaimed_trial_on_a_shared_server_is_recovered_after_a_grace_period(tmp_path, monkeypatch):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    ostudy = optuna.create_study(study_name="s", storage=storage)
    fresh = ostudy.ask()
    assert L.recover_stale(ostudy) == []  # just asked: its worker may be about to record itself
    monkeypatch.setattr(L, "UNCLAIMED_AFTER_S", -1.0)
    assert [t.number for t in L.recover_stale(ostudy)] == [fresh.number]
    assert is_interrupted(ostudy.get_trials()[0])


def _wait(pred, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for its (dead) parent is gone for our purpose
        return fh.read().split()[2] != "Z"


def test_killing_the_parent_of_two_workers_ends_them_and_resume_completes(tmp_path):
    training = {**TINY_TRAINING, "steps": 400, "val_every": 200}
    path = write_study(tmp_path, training=training, seeds=[0, 1])
    study = load_study(path)
    proc = subprocess.Popen([sys.executable, "-m", "archsearch.cli", "run", str(path), "--workers", "2"],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def two_running():
            if not (Path(study.output_dir) / "ledger.db").exists():
                return None
            try:
                running = [t for t in _trials(study) if t.state.name == "RUNNING" and t.user_attrs.get("pid")]
            except Exception:  # the ledger is being created
                return None
            return running if len(running) == 2 else None

        running = _wait(two_running, 240, "two workers training")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pids = [int(t.user_attrs["pid"]) for t in running]
        _wait(lambda: not any(_alive(p) for p in pids), 15, "the workers to die with their parent")
    finally:
        proc.kill()
        proc.wait()
    # Resume (same study, same config); the interrupted points are trained again, nothing twice.
    result = subprocess.run([sys.executable, "-m", "archsearch.cli", "run", str(path), "--workers", "2"],
                            env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    trials = _trials(study)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    planned = {p.key for p in study.plan.points}
    assert len(done) == len(planned) == 6 and {t.user_attrs["point"] for t in done} == planned
    assert sum(is_interrupted(t) for t in trials) >= 2


# ---------------------------------------------------------------------------------------------------------
# searches never retrain, seeds are distinct
# ---------------------------------------------------------------------------------------------------------
def _space(tmp_path: Path, convnet: bool = False) -> Path:
    """A search space without budget knobs: xNet with r in {1, 3} (and a ConvNet)."""
    space = tmp_path / "space.yaml"
    text = ("name: small\ndesigns:\n- {name: xnet, family: xnet, fixed: {depth: 3, width: 8}, "
            "search: {xunit_kernel_size: {choices: [1, 3]}}}\n")
    if convnet:
        text += "- {name: convnet, family: convnet, fixed: {depth: 3, width: 8}}\n"
    space.write_text(text)
    return space


def test_search_never_trains_a_configuration_twice(tmp_path):
    space = _space(tmp_path)
    path = write_study(tmp_path, name="dedupe", search_space=str(space), budget=None, sweep=None, seeds=[0, 1],
                       search={"sampler": "random", "n_trials": 5})
    study = load_study(path)
    summary = run_study(study, **QUIET)
    assert summary.status == "complete"
    trials = _trials(study)
    trained = [t for t in trials if t.user_attrs.get("duplicate_of") is None]
    assert len(trained) == 2  # the space has two configurations: n_trials is capped by it
    assert len({t.user_attrs["spec_hash"] for t in trained}) == 2
    for t in trials:
        if t.user_attrs.get("duplicate_of") is not None:
            orig = next(u for u in trials if u.number == t.user_attrs["duplicate_of"])
            assert t.values == orig.values and t.user_attrs["spec_hash"] == orig.user_attrs["spec_hash"]
    with open(Path(study.output_dir) / "summary.csv", newline="") as f:
        points = list(csv.DictReader(f))
    assert len(points) == 2  # 2 design points
    # the 2 distinct seeds, valid or degenerate (4 training steps may leave a model no better than its input)
    assert all(int(p["n_seeds"]) + int(p["n_degenerate"]) == 2 for p in points)


# ---------------------------------------------------------------------------------------------------------
# one trial path: local and Ray give the same records
# ---------------------------------------------------------------------------------------------------------
def test_local_and_ray_ledgers_compare_equal_key_for_key(tmp_path):
    pytest.importorskip("ray")
    kw = {"sweep": {"over": "xunit_kernel_size", "values": [3]}}
    local = load_study(write_study(tmp_path, name="same", output_dir=str(tmp_path / "local"), **kw))
    ray = load_study(write_study(tmp_path, name="same", output_dir=str(tmp_path / "ray"),
                                 executor={"kind": "ray", "workers": 1, "cpus_per_trial": 2}, **kw))
    run_study(local, **QUIET)
    run_study(ray, **QUIET)
    a = {t.user_attrs["point"]: t for t in _trials(local)}
    b = {t.user_attrs["point"]: t for t in _trials(ray)}
    assert a.keys() == b.keys()
    for key in a:
        ua, ub = a[key].user_attrs, b[key].user_attrs
        assert set(ua) == set(ub)
        # same thread count (2) in both: the same floats, bit for bit
        assert {k: v for k, v in ua.items() if k not in TIMING} == {k: v for k, v in ub.items() if k not in TIMING}
        assert a[key].values == b[key].values and a[key].intermediate_values == b[key].intermediate_values


def test_ray_search_records_each_value_once_at_its_training_step(tmp_path):
    pytest.importorskip("ray")
    training = {**TINY_TRAINING, "steps": 6, "val_every": 2}
    path = write_study(tmp_path, name="raysteps", sweep=None, training=training,
                       search={"sampler": "random", "n_trials": 2, "pruner": "hyperband"},
                       executor={"kind": "ray", "workers": 1, "cpus_per_trial": 1})
    study = load_study(path)
    run_study(study, **QUIET)
    finished = [t for t in _trials(study) if t.state.name in ("COMPLETE", "PRUNED")]
    assert finished
    for t in finished:
        steps = sorted(t.intermediate_values)
        assert steps and set(steps) <= {2, 4, 6}, steps  # training steps, not Ray's iterations 1, 2, 3
        curve = dict((int(s), v) for s, v in t.user_attrs["val_curve"])
        assert all(curve[s] == t.intermediate_values[s] for s in steps)


# ---------------------------------------------------------------------------------------------------------
# Optuna-native records
# ---------------------------------------------------------------------------------------------------------
def test_objective_names_latency_and_labels_are_in_optunas_records(tmp_path, capsys):
    path = write_study(tmp_path, name="native", budget=None, sweep=None, search_space=str(_space(tmp_path, True)),
                       search={"sampler": "nsga2", "n_trials": 2, "objectives": ["psnr", "params", "latency"]})
    assert main(["run", str(path)]) == 0
    study = load_study(path)
    ostudy = L.open_study(study, create=False)
    assert ostudy.metric_names == ["psnr", "n_params", "latency_ms_per_mp"]
    for t in ostudy.get_trials():
        if t.state.name == "COMPLETE":
            assert t.values[2] == t.user_attrs["latency_ms_per_mp"] > 0
            assert t.user_attrs["latency_device"].startswith("cpu")
    capsys.readouterr()
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and ("convnet" in out or "xnet" in out)


def test_importances_rank_what_makes_psnr_high(tmp_path):
    from archsearch.report.tables import param_importances

    path = write_study(tmp_path, name="imp", budget=None, sweep=None, search_space=str(_space(tmp_path)),
                       search={"sampler": "nsga2", "n_trials": 2, "objectives": ["psnr", "params"]})
    study = load_study(path)
    ostudy = optuna.create_study(directions=["maximize", "minimize"])
    dists = {"a": optuna.distributions.IntDistribution(0, 9), "b": optuna.distributions.IntDistribution(0, 9)}
    for i in range(200):
        a, b = (i * 7) % 10, (i * 3 + i // 10) % 10
        psnr = 25.0 + 5.0 * (a >= 8) - 5.0 * (b >= 8)  # high PSNR needs a >= 8; low PSNR comes from b >= 8
        ostudy.add_trial(optuna.trial.create_trial(params={"a": a, "b": b}, distributions=dists,
                                                   values=[psnr, 1000.0]))
    imp, why = param_importances(study, ostudy)
    assert imp is not None, why
    assert max(imp, key=imp.get) == "a", imp


# ---------------------------------------------------------------------------------------------------------
# exit statuses and Ctrl-C
# ---------------------------------------------------------------------------------------------------------
def test_a_study_whose_every_trial_fails_exits_non_zero(tmp_path, capsys):
    path = write_study(tmp_path, name="allfail", training={**TINY_TRAINING, "lr": 1e12, "max_grad_norm": 1e-9})
    assert main(["run", str(path)]) == 4
    assert "every trial failed" in capsys.readouterr().out


def test_ctrl_c_is_one_line_exit_130_and_the_trial_is_requeued(tmp_path):
    training = {**TINY_TRAINING, "steps": 3000, "val_every": 1000}
    path = write_study(tmp_path, training=training, sweep={"over": "xunit_kernel_size", "values": [1]})
    study = load_study(path)
    proc = subprocess.Popen([sys.executable, "-m", "archsearch.cli", "run", str(path)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def running():
            if not (Path(study.output_dir) / "ledger.db").exists():
                return False
            try:
                return any(t.state.name == "RUNNING" and t.user_attrs.get("pid") for t in _trials(study))
            except Exception:
                return False

        _wait(running, 240, "a running trial")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err
    trials = _trials(study)
    assert any(is_interrupted(t) for t in trials) and not any(t.state.name == "RUNNING" for t in trials)
    # on resume the interrupted point is queued and trained again
    ostudy = L.open_study(study, create=True)
    points, infeasible = study.plan.points, study.plan.infeasible
    prepare(study, ostudy, points, infeasible)
    interrupted = next(t.user_attrs["point"] for t in ostudy.get_trials() if is_interrupted(t))
    waiting = [t.user_attrs["point"] for t in ostudy.get_trials() if t.state.name == "WAITING"]
    assert interrupted in waiting and sorted(waiting) == sorted(p.key for p in points)  # each once


# ---------------------------------------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------------------------------------
def test_unreachable_database_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    url = "postgresql+psycopg2://user:hunter2@127.0.0.1:1/db"
    path = write_study(tmp_path, name="unreach", storage=url)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "hunter2" not in err and "***" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unknown_storage_dialect_is_refused_at_load(tmp_path, capsys):
    path = write_study(tmp_path, name="dialect", storage="oracle://u:pw@host/db")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "storage" in err and "pw@" not in err and len(err.strip().splitlines()) == 1


def test_study_and_resume_on_a_real_postgresql_server(tmp_path, capsys, pg_url):  # noqa: F811
    path = write_study(tmp_path, name="onpg", storage=pg_url)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 complete" in out and pg_url.split(":")[2].split("@")[0] not in out and "***" in out
    study = load_study(path)
    assert main(["run", str(path)]) == 0  # resume: nothing left, nothing retrained
    assert "3 already finished" in capsys.readouterr().out
    assert len([t for t in _trials(study) if t.state.name == "COMPLETE"]) == 3


def test_sampler_seed_follows_the_study(tmp_path):
    from archsearch.study.sampling import sampler_seed

    base = {"name": "seeded", "budget": None, "sweep": None, "search_space": str(_space(tmp_path))}
    a = load_study(write_study(tmp_path, **base, seeds=[3], search={"sampler": "random", "n_trials": 2}))
    b = load_study(write_study(tmp_path, **base, seeds=[3], search={"sampler": "random", "n_trials": 2,
                                                                    "seed": 11}))
    assert sampler_seed(a) == 3 and sampler_seed(b) == 11
