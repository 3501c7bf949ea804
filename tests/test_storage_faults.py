"""Nothing lost, nothing stale: storage faults are one line with what to do, and outputs are written whole.

Each finding is reproduced on a real ledger (the tiny study, run once for the module): a corrupt or truncated
ledger for every command that reads one, ``--fresh`` moving a study's own corrupt ledger aside, a full disk
(a small tmpfs) under ``report``, ``export``, ``train`` and ``run``, a read-only folder, and writers failing
mid-way. Tests that mount skip where mounting is not permitted (they need root) and always unmount.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

import archsearch.cli.study as cli_study
import archsearch.export as export_mod
import archsearch.study.trial as trial_mod
from archsearch import run_study
from archsearch.atomic import atomic_folder, atomic_open, atomic_path, is_temp, write_text
from archsearch.cli import main
from archsearch.export import export_model
from archsearch.study.ledger import open_study
from archsearch.study.loader import load_study
from archsearch.testing.ledger import add_trial
from archsearch.testing.studies import study_body, write_study
from archsearch.zoo import zoo_spec

QUIET = {"progress": False, "echo": lambda *_: None}


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------
def _mount(args: list[str], what: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount {what} here ({r.stderr.strip() or r.returncode}): the test needs root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (a disk that fills up), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], "a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` (a folder with its contents) made read-only by a read-only bind mount onto itself (chmod does not
    stop root), unmounted after."""
    _mount(["--bind", str(path), str(path)], "a bind mount")
    try:
        r = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({r.stderr.strip()}): the test needs root")
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> None:
    """Fill the file system of ``disk`` to the last byte."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> sha256), the filler left out."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "filler"}


def no_debris(folder: Path) -> None:
    """No temporary file of an interrupted write and no empty file left anywhere under ``folder``."""
    for p in folder.rglob("*"):
        assert not is_temp(p.name), f"temporary file left: {p}"
        if p.is_file() and p.name not in ("filler", ".archsearch", ".claim.lock", ".run.lock"):
            assert p.stat().st_size > 0, f"empty file left: {p}"


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------------------------------
# a real ledger, made once
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The tiny study (one sweep value, so two trials) run once: its file and its output folder."""
    root = tmp_path_factory.mktemp("ran")
    path = write_study(root, sweep={"over": "xunit_kernel_size", "values": [1]})
    run_study(load_study(path), **QUIET)
    return path, root / "out"


@pytest.fixture
def copy(ran, tmp_path):
    """A copy of the run's output folder (a test may break it): ``(study file, folder)``; give the folder to
    every command as ``--output-dir``."""
    path, out = ran
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)
    return path, dst


def _truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _junk(db: Path) -> None:
    db.write_bytes(b"this is not a database, it is junk " * 100)


# ---------------------------------------------------------------------------------------------------------
# a corrupt or truncated ledger: one line naming the file, what to do, exit 2
# ---------------------------------------------------------------------------------------------------------
COMMANDS = {
    "run": ["run"], "status": ["status"], "report": ["report"], "export": ["export", "--trial", "best"],
    "latency": ["latency", "--repeats", "1", "--warmup", "0", "--latency-size", "16x16"],
}


@pytest.mark.parametrize("damage", [_junk, _truncate], ids=["junk", "truncated"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_corrupt_ledger_is_one_line(copy, capsys, command, damage):
    path, out = copy
    db = out / "ledger.db"
    damage(db)
    before = db.read_bytes()
    cmd = COMMANDS[command]
    rc = main([cmd[0], str(path), "--output-dir", str(out), *cmd[1:]])
    line = one_line(capsys.readouterr().err)
    assert rc == 2, line
    assert f"{db}: not a readable ledger" in line
    assert "--fresh" in line and "corrupt" in line  # what to do
    assert db.read_bytes() == before  # nothing moved or rewritten without --fresh


def test_fresh_moves_a_corrupt_ledger_aside(copy, capsys):
    path, out = copy
    db = out / "ledger.db"
    _junk(db)
    junk = db.read_bytes()
    rc = main(["run", str(path), "--output-dir", str(out), "--fresh"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    moved = [p for p in out.iterdir() if p.name.startswith("ledger.db.corrupt-")]
    assert len(moved) == 1 and moved[0].read_bytes() == junk  # kept, not deleted
    assert f"moved it aside as {moved[0].name}" in captured.out
    with sqlite3.connect(db) as con:  # a new, readable ledger
        assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def test_fresh_never_moves_a_ledger_at_a_storage_url(tmp_path, capsys):
    db = tmp_path / "shared.db"
    _junk(db)
    path = write_study(tmp_path, storage=f"sqlite:///{db}")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".archsearch").touch()
    rc = main(["run", str(path), "--fresh"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2
    assert f"{db}: not a readable ledger" in line and "never moves or deletes" in line
    assert db.read_bytes().startswith(b"this is not a database")
    assert not list(tmp_path.glob("shared.db.corrupt-*"))


# ---------------------------------------------------------------------------------------------------------
# a full disk: the old files intact, no 0-byte or temporary file, one line, exit 1
# ---------------------------------------------------------------------------------------------------------
def test_full_disk_report_keeps_the_old_report(copy, tmp_path, capsys):
    path, out = copy
    with tmpfs(tmp_path / "disk", "16m") as disk:
        assert main(["report", str(path), "--output-dir", str(out), "--out", str(disk)]) == 0
        old = snapshot(disk)
        assert "report.html" in old and any(k.startswith("report_png/") for k in old)
        capsys.readouterr()
        # the next page is larger (a failed trial with a long reason): rewriting in place would cut it short
        add_trial(open_study(load_study(path, None, out), create=False), state=TrialState.FAIL, params={},
                  design="xnet", reason="disk test " * 4000)
        fill(disk)
        rc = main(["report", str(path), "--output-dir", str(out), "--out", str(disk)])
        line = one_line(capsys.readouterr().err)
        assert rc == 1, line
        assert "No space left on device" in line and str(disk) in line and "free space" in line
        assert snapshot(disk) == old
        no_debris(disk)


def test_full_disk_export_keeps_the_old_export(copy, tmp_path, capsys):
    path, out = copy
    with tmpfs(tmp_path / "disk", "4m") as disk:
        dest = disk / "exp"
        assert main(["export", str(path), "--output-dir", str(out), "--out", str(dest)]) == 0
        old = snapshot(dest)
        assert {Path(k).suffix for k in old} >= {".py", ".safetensors", ".yaml", ".json"}
        capsys.readouterr()
        fill(disk)
        rc = main(["export", str(path), "--output-dir", str(out), "--out", str(dest)])
        line = one_line(capsys.readouterr().err)
        assert rc == 1, line
        assert "No space left on device" in line
        assert snapshot(dest) == old
        no_debris(disk)


def test_full_disk_train_keeps_the_old_checkpoint(tmp_path, capsys):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        ckpt = disk / "m.pt"
        ckpt.write_bytes(b"the previous checkpoint")
        fill(disk)
        rc = main(["train", "--zoo", "srcnn", "--steps", "1", "--batch-size", "1", "--patch-size", "24",
                   "--val-dataset", "none", "--out", str(ckpt)])
        line = one_line(capsys.readouterr().err)
        assert rc == 1, line
        assert f"{ckpt}: [Errno 28] No space left on device" in line
        assert ckpt.read_bytes() == b"the previous checkpoint"
        no_debris(disk)


@pytest.mark.parametrize("then", ["checkpoint", "failure log"])
def test_full_disk_run_fails_the_trial_as_infrastructure(tmp_path, capsys, monkeypatch, then):
    """The disk fills while the trial trains: its checkpoint (or, for a trial that then raises, its failure log)
    cannot be written. The trial ends FAIL with an ``infrastructure:`` reason (the runner re-queues those), the
    run stops with one line and exit 1, and no trial is left RUNNING. The ledger is kept off the full disk, as a
    shared ``storage:`` would be."""
    db = tmp_path / "ledger.db"
    with tmpfs(tmp_path / "disk", "2m") as disk:
        body = study_body(tmp_path, sweep={"over": "xunit_kernel_size", "values": [1]},
                          output_dir=str(disk / "out"), storage=f"sqlite:///{db}")
        path = tmp_path / "full.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        real_train = trial_mod.train

        def train_then_fill(*args, **kwargs):
            result = real_train(*args, **kwargs)
            fill(disk)
            if then == "failure log":
                raise RuntimeError("a bug after training")
            return result

        monkeypatch.setattr(trial_mod, "train", train_then_fill)
        rc = main(["run", str(path)])
        line = one_line(capsys.readouterr().err)
        assert rc == 1, line
        assert "No space left on device" in line and "re-run the same command" in line
        trials = open_study(load_study(path), create=False).get_trials(deepcopy=False)
        assert not [t for t in trials if t.state.name == "RUNNING"]
        failed = [t for t in trials if t.state.name == "FAIL"]
        assert len(failed) == 1
        assert failed[0].user_attrs["fail_reason"].startswith("infrastructure: [Errno 28] No space left on device")
        if then == "checkpoint":  # the file that could not be written (a failed write() of a log names none)
            assert ".safetensors" in failed[0].user_attrs["fail_reason"]
            no_debris(disk)
        else:  # the failure log is written in place by the trial (not an output): only no temporary file
            assert not [p for p in disk.rglob("*") if is_temp(p.name)]


# ---------------------------------------------------------------------------------------------------------
# a read-only folder: one line naming the path and the reason, exit 1
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["report", "latency", "run"])
def test_read_only_study_folder(copy, capsys, command):
    path, out = copy
    before = snapshot(out)
    extra = ["--force", "--repeats", "1", "--warmup", "0", "--latency-size", "16x16"] if command == "latency" else []
    with read_only(out):
        rc = main([command, str(path), "--output-dir", str(out), *extra])
    line = one_line(capsys.readouterr().err)
    assert rc == 1, line
    assert "read-only" in line.lower() or "readonly" in line.lower()
    assert str(out) in line
    assert "exceeding max length" not in line  # Optuna's guess, not the reason
    assert snapshot(out) == before


def test_read_only_export_and_train_folders(copy, tmp_path, capsys):
    path, out = copy
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        rc = main(["export", str(path), "--output-dir", str(out), "--out", str(ro / "exp")])
        line = one_line(capsys.readouterr().err)
        assert rc == 1 and "Read-only file system" in line and str(ro) in line, line
        rc = main(["train", "--zoo", "srcnn", "--steps", "1", "--out", str(ro / "m.pt")])
        line = one_line(capsys.readouterr().err)
        assert rc == 1 and "Read-only file system" in line and str(ro) in line, line


# ---------------------------------------------------------------------------------------------------------
# writers failing mid-way: the old file (or export folder) intact, nothing temporary left
# ---------------------------------------------------------------------------------------------------------
def test_atomic_file_write_failing_midway_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.html"
    write_text(target, "the good page")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_open(target, "w") as fh:
            fh.write("half of a new pa")
            fh.flush()
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "the good page"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    with pytest.raises(OSError) as info:  # a writer's OS error names the target, not the temporary file
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert target.read_text() == "the good page" and len(list(tmp_path.iterdir())) == 1


def test_report_failing_midway_keeps_the_old_page(copy, tmp_path, monkeypatch):
    import archsearch.report.page as page

    path, out = copy
    dest = tmp_path / "rep"
    assert main(["report", str(path), "--output-dir", str(out), "--out", str(dest), "--no-png"]) == 0
    old = (dest / "report.html").read_bytes()
    real = page.write_text

    def half(p, text):  # the writer dies after half of the page
        with atomic_open(p, "w", encoding="utf-8") as fh:
            fh.write(text[: len(text) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(page, "write_text", half)
    with pytest.raises(KeyboardInterrupt):
        page.write_report(load_study(path, None, out), out_dir=dest, png=False)
    monkeypatch.setattr(page, "write_text", real)
    assert (dest / "report.html").read_bytes() == old
    no_debris(dest)


def test_reexport_failing_midway_leaves_the_old_export_complete(tmp_path, monkeypatch):
    spec = zoo_spec("srcnn")
    torch.manual_seed(1)
    first = {k: torch.randn_like(v) for k, v in export_mod.build(spec).state_dict().items()}
    dest = tmp_path / "exp"
    (dest).mkdir()
    (dest / "other_model.py").write_text("# another model's export, kept\n")
    export_model(spec, dest, state_dict=first, formats=("py", "onnx"))
    old = snapshot(dest)
    assert "srcnn.onnx" in old

    def broken_onnx(net, example, dims, path, *rest):  # ONNX export dies after writing part of its file
        Path(path).write_bytes(b"partial")
        raise RuntimeError("onnx exporter crashed")

    monkeypatch.setattr(export_mod, "_export_onnx", broken_onnx)
    second = {k: v + 1 for k, v in first.items()}
    with pytest.raises(RuntimeError, match="crashed"):
        export_model(spec, dest, state_dict=second, formats=("py", "onnx"))
    assert snapshot(dest) == old  # the old .py/.safetensors/.json/.onnx, not new ones beside old ones
    assert not [p for p in tmp_path.iterdir() if is_temp(p.name)]
    monkeypatch.undo()
    paths = export_model(spec, dest, state_dict=second, formats=("py",))  # a re-export without ONNX ...
    names = {p.name for p in dest.iterdir()}
    assert "srcnn.onnx" not in names  # ... leaves no stale ONNX of the old weights
    assert {"other_model.py", "srcnn.py", "srcnn.json"} <= names and paths["py"].parent == dest


def test_atomic_folder_in_a_study_folder_moves_files_in_without_swapping(tmp_path):
    """A folder with subfolders (a study folder given as --out) is not swapped: its other contents stay."""
    folder = tmp_path / "study"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "ledger.db").write_bytes(b"ledger")
    (folder / "m.json").write_text("old")
    inode = folder.stat().st_ino
    with atomic_folder(folder, keep=lambda n: n != "m.json") as tmp:
        (tmp / "m.py").write_text("new")
    assert folder.stat().st_ino == inode
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "ledger.db", "m.py"]


def test_sigkill_mid_write_keeps_the_old_file(tmp_path):
    """A real SIGKILL half-way through a write: the old file is intact, and what is left is a hidden temporary
    file that nothing takes for an output."""
    target = tmp_path / "report.html"
    target.write_text("the good page")
    code = ("import os, signal, sys\n"
            "from archsearch.atomic import atomic_open\n"
            "with atomic_open(sys.argv[1], 'w') as fh:\n"
            "    fh.write('half of a new pa'); fh.flush()\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True, text=True)
    assert r.returncode == -9, r.stderr
    assert target.read_text() == "the good page"
    left = [p.name for p in tmp_path.iterdir() if p.name != "report.html"]
    assert len(left) == 1 and is_temp(left[0]) and left[0].startswith(".report.html.tmp-")


def test_a_database_error_anywhere_is_one_line_naming_the_ledger(copy, capsys, monkeypatch):
    """A ledger that fails mid-command (the disk fills under it): Optuna's wrapper and its guess ("exceeding max
    length") are looked through to SQLite's reason; exit 1, the study's ledger named."""
    path, out = copy

    def status(args):
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as err:
            raise optuna.exceptions.StorageInternalError("invalid data, e.g. exceeding max length") from err

    monkeypatch.setattr(cli_study, "cmd_status", status)
    rc = main(["status", str(path), "--output-dir", str(out)])
    line = one_line(capsys.readouterr().err)
    assert rc == 1, line
    assert f"ledger database {out / 'ledger.db'}: database or disk is full" in line and "exceeding" not in line
