"""Nothing lost, nothing stale: the run takes its locks before it deletes anything, adopts only its own folders,
holds one lock per SQLite ledger, every reader checks the ledger's configuration, infrastructure failures are
re-queued, the exit status says when a planned trial is not complete, and ledger paths do not depend on the
working directory. Concurrency cases use real `archsearch run` processes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from archsearch import run_study
from archsearch.cli import main
from archsearch.errors import StorageFault
from archsearch.study import load_study
from archsearch.study.layout import choose_layout
from archsearch.testing.ledger import trials_of
from archsearch.testing.studies import TINY_TRAINING, write_study

QUIET = {"progress": False, "echo": lambda *_: None}
NO_LATENCY = {"latency": {"enabled": False}}  # each trial would time its model: seconds these tests do not need
ROOT = Path(__file__).resolve().parents[1]


def _cli(*argv: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "archsearch.cli", *argv], cwd=cwd or ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _slow_study(tmp_path: Path, name: str, **overrides) -> Path:
    """A study whose trials train for minutes, so a second command surely meets it running (the test kills it)."""
    training = {**TINY_TRAINING, "steps": 100_000, "val_every": 0}
    return write_study(tmp_path, name, training=training, latency={"enabled": False}, **overrides)


def _wait_running(out: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the run holds its lock and has started a trial (its spec is written before training)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        if (out / "specs").is_dir() and any((out / "specs").iterdir()):
            return
        time.sleep(0.1)
    raise AssertionError("the run did not start a trial in time")


# ---------------------------------------------------------------------------------------------------------
# locks before deletes; folders adopted only when empty or marked
# ---------------------------------------------------------------------------------------------------------
def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.communicate(timeout=60)


def test_fresh_while_the_study_runs_deletes_nothing(tmp_path):
    path = _slow_study(tmp_path, "busy")
    out = tmp_path / "out"
    first = _cli("run", str(path))
    try:
        _wait_running(out, first)
        specs = sorted(p.name for p in (out / "specs").iterdir())
        second = _cli("run", str(path), "--fresh")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "in use by a running `archsearch run`" in err, err
        assert len(err.strip().splitlines()) == 1
        assert first.poll() is None  # still running: the refusal came from its lock
        assert sorted(p.name for p in (out / "specs").iterdir()) == specs  # nothing deleted under the run
        assert (out / "ledger.db").exists() and (out / ".archsearch").exists()
    finally:
        _stop(first)


def test_a_non_empty_folder_archsearch_did_not_make_is_refused(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "logs").mkdir(parents=True)
    (mine / "logs" / "notes.txt").write_text("my own log")
    path = write_study(tmp_path, "adopt", output_dir=str(mine), **NO_LATENCY)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not empty and was not created by archsearch" in err and str(mine) in err
    assert sorted(p.name for p in mine.rglob("*")) == ["logs", "notes.txt"]  # nothing written, nothing adopted


def test_fresh_deletes_only_what_archsearch_wrote(tmp_path):
    path = write_study(tmp_path, "own", **NO_LATENCY)
    out = tmp_path / "out"
    run_study(load_study(path), **QUIET)
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / "my_notes.txt").write_text("kept")
    (out / "checkpoints" / "my_model.bin").write_bytes(b"\x00")
    (out / "thesis.tex").write_text("kept")
    before = {p.name for p in (out / "checkpoints").iterdir()}
    assert main(["run", str(path), "--fresh"]) == 0
    assert (out / "logs" / "my_notes.txt").read_text() == "kept"
    assert (out / "checkpoints" / "my_model.bin").exists() and (out / "thesis.tex").exists()
    assert before <= {p.name for p in (out / "checkpoints").iterdir()}  # retrained: archsearch's files are back
    assert len([t for t in trials_of(load_study(path)) if t.state.name == "COMPLETE"]) == 3  # one fresh run


# ---------------------------------------------------------------------------------------------------------
# one lock per SQLite ledger
# ---------------------------------------------------------------------------------------------------------
def test_two_runs_on_one_sqlite_ledger_from_two_folders(tmp_path):
    ledger = tmp_path / "shared.db"
    a = _slow_study(tmp_path, "share_a", output_dir=str(tmp_path / "a"), storage=f"sqlite:///{ledger}")
    b_dir = tmp_path / "b"
    # the same study (name and settings) into another output folder, on the same ledger file
    body = yaml.safe_load(a.read_text())
    body["output_dir"] = str(b_dir)
    b = tmp_path / "share_b.yaml"
    b.write_text(yaml.safe_dump(body, sort_keys=False))
    first = _cli("run", str(a))
    try:
        _wait_running(tmp_path / "a", first)
        second = _cli("run", str(b))
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert "the ledger sqlite:///" in err and "in use by a running `archsearch run`" in err, err
        assert first.poll() is None
        # the first run's live trial was left alone: still RUNNING, not marked FAIL by the second run
        states = [t.state.name for t in trials_of(load_study(a))]
        assert "RUNNING" in states and "FAIL" not in states, states
        assert not (b_dir / "specs").exists()
    finally:
        _stop(first)


# ---------------------------------------------------------------------------------------------------------
# every reader checks the configuration
# ---------------------------------------------------------------------------------------------------------
def test_readers_refuse_a_ledger_written_under_other_settings(tmp_path, capsys):
    path = write_study(tmp_path, "cfg", **NO_LATENCY)
    run_study(load_study(path), **QUIET)
    body = yaml.safe_load(path.read_text())
    body["training"]["steps"] = 6  # the trials in the ledger trained 4 steps
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    capsys.readouterr()
    for argv in (["status", str(path)], ["report", str(path)], ["export", str(path)],
                 ["latency", str(path), "--latency-size", "16x16", "--repeats", "1", "--warmup", "0"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "different configuration (training.steps: 4 in the ledger, 6 in the study file)" in err, err
        assert "--any-config" in err and len(err.strip().splitlines()) == 1
    assert main(["status", str(path), "--any-config"]) == 0
    assert main(["run", str(path)]) == 2  # the writer refuses too, as before
    assert "--fresh" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# infrastructure failures are retried; the exit status says when a planned trial is not complete
# ---------------------------------------------------------------------------------------------------------
def test_an_infrastructure_failure_is_re_queued_and_a_re_run_completes(tmp_path, monkeypatch):
    import archsearch.study.trial as trial_module

    path = write_study(tmp_path, "infra", **NO_LATENCY)
    real = trial_module.evaluate
    calls = {"n": 0}

    def full_disk_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(trial_module, "evaluate", full_disk_once)
    # the run stops at the first such failure (every next trial would meet the same full disk): one line, exit 1
    with pytest.raises(StorageFault, match="recorded as failed .infrastructure. and runs again on resume"):
        run_study(load_study(path), **QUIET)
    failed = [t for t in trials_of(load_study(path)) if t.state.name == "FAIL"]
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"].startswith("infrastructure: [Errno 28]")
    monkeypatch.setattr(trial_module, "evaluate", real)  # space freed
    again = run_study(load_study(path), **QUIET)
    assert (again.status, again.exit_code, again.complete, again.left) == ("complete", 0, 3, 0)


def test_a_finished_run_with_failed_trials_exits_5(tmp_path, monkeypatch, capsys):
    import archsearch.study.trial as trial_module

    path = write_study(tmp_path, "partial", **NO_LATENCY)
    real = trial_module.evaluate
    calls = {"n": 0}

    def one_bug(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("a model bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(trial_module, "evaluate", one_bug)
    assert main(["run", str(path)]) == 5
    out = capsys.readouterr().out
    assert "with failed trials" in out
    # a bug is final: a re-run retries nothing and still says so
    monkeypatch.setattr(trial_module, "evaluate", real)
    assert main(["run", str(path)]) == 5


# ---------------------------------------------------------------------------------------------------------
# workers: validated before anything is written, capped at the pending trials
# ---------------------------------------------------------------------------------------------------------
def test_a_bad_workers_variable_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, "env", **NO_LATENCY)
    monkeypatch.setenv("ARCHSEARCH_WORKERS", "abc")
    assert main(["run", str(path)]) == 2
    assert "ARCHSEARCH_WORKERS must be auto or an integer >= 1, got 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_workers_are_capped_at_the_trials_left(tmp_path):
    study = load_study(write_study(tmp_path, "cap", **NO_LATENCY))
    lay = choose_layout(study, 8, 3, "local")
    assert lay.workers == 3 and "capped at the 3 trial(s) left" in lay.reason
    assert choose_layout(study, 2, 3, "local").workers == 2


# ---------------------------------------------------------------------------------------------------------
# ledger paths do not depend on the working directory
# ---------------------------------------------------------------------------------------------------------
def test_ledger_paths_are_relative_to_the_output_folder(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    path = write_study(work, "rel", output_dir="out", **NO_LATENCY)  # a folder relative to where `run` starts
    monkeypatch.chdir(work)
    run_study(load_study(path), **QUIET)
    t = trials_of(load_study(path))[0]
    assert t.user_attrs["spec_path"].startswith("specs/") and t.user_attrs["checkpoint"].startswith("checkpoints/")
    monkeypatch.chdir(elsewhere)  # export from another folder: the study file and output folder given as paths
    out = str(work / "out")
    assert main(["export", str(path), "--output-dir", out, "--trial", "0", "--out", str(elsewhere / "exp")]) == 0
    assert main(["latency", str(path), "--output-dir", out, "--latency-size", "16x16", "--repeats", "1",
                 "--warmup", "0", "--force"]) == 0
