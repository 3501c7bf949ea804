"""The run's worker x thread layout (``executor.workers: auto``), the run record in the ledger, the last-third
validation gain and the throughput settings of the trainer."""

from __future__ import annotations

import pytest
import torch

from archsearch import build, get_family, load_study, run_study
from archsearch.errors import ArchsearchError
from archsearch.study import layout as layout_mod
from archsearch.study.layout import WORKERS_ENV, choose_layout
from archsearch.study.ledger import open_study
from archsearch.study.trial import last_third_gain
from archsearch.tasks import make_task
from archsearch.testing.studies import TINY_TRAINING, write_study
from archsearch.training import TrainConfig, TrainConfigError, train, uses_channels_last


@pytest.fixture
def auto_env(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)


def _study(tmp_path, **overrides):
    return load_study(write_study(tmp_path, **overrides))


@pytest.mark.parametrize("cpus, remaining, expect", [(2, 4, (2, 1)), (2, 1, (1, 2)), (1, 4, (1, 1)),
                                                     (8, 3, (3, 2)), (16, 40, (16, 1))])
def test_auto_layout_uses_one_single_thread_worker_per_core(tmp_path, monkeypatch, auto_env, cpus, remaining,
                                                            expect):
    monkeypatch.setattr(layout_mod, "machine_cpus", lambda: cpus)
    monkeypatch.setattr(layout_mod, "cuda_available", lambda: False)
    lay = choose_layout(_study(tmp_path), None, remaining, "local")
    assert (lay.workers, lay.threads) == expect
    assert lay.reason.startswith("auto")


def test_numbers_win_over_auto_and_the_environment_replaces_auto(tmp_path, monkeypatch, auto_env):
    monkeypatch.setattr(layout_mod, "machine_cpus", lambda: 4)
    study = _study(tmp_path)
    lay = choose_layout(study, 3, 10, "local")
    assert (lay.workers, lay.threads) == (3, 1)
    assert choose_layout(study, None, 10, "local").workers == 4
    monkeypatch.setenv(WORKERS_ENV, "1")
    lay = choose_layout(study, None, 10, "local")
    assert (lay.workers, lay.threads, lay.reason) == (1, 4, f"{WORKERS_ENV} 1")
    monkeypatch.setenv(WORKERS_ENV, "many")
    with pytest.raises(ArchsearchError, match=f"{WORKERS_ENV} must be auto or an integer >= 1, got 'many'"):
        choose_layout(study, None, 10, "local")
    fixed = _study(tmp_path, executor={"kind": "local", "workers": 2})
    assert choose_layout(fixed, None, 10, "local").reason == "executor.workers 2"


def test_lockstep_pruning_keeps_one_worker_and_says_a_requested_number_is_not_used(tmp_path, monkeypatch, auto_env):
    monkeypatch.setattr(layout_mod, "machine_cpus", lambda: 4)
    study = _study(tmp_path, seeds=[0, 1], pruning={"rungs": [2]})
    lay = choose_layout(study, None, 10, "local")
    assert (lay.workers, lay.threads) == (1, 4) and "not used" not in lay.reason
    lay = choose_layout(study, 3, 10, "local")
    assert (lay.workers, lay.threads) == (1, 4)
    assert lay.reason.endswith("(--workers 3 not used: one worker claims the whole grid)")


def test_gpu_runs_keep_one_worker(tmp_path, monkeypatch, auto_env):
    monkeypatch.setattr(layout_mod, "machine_cpus", lambda: 16)
    monkeypatch.setattr(layout_mod, "cuda_available", lambda: True)
    assert choose_layout(_study(tmp_path), None, 10, "local").workers == 1


def test_auto_run_spawns_workers_and_records_the_run(tmp_path, monkeypatch, auto_env):
    monkeypatch.setattr(layout_mod, "machine_cpus", lambda: 2)
    study = _study(tmp_path, seeds=[0, 1])
    lines = []
    summary = run_study(study, progress=False, echo=lines.append)
    assert summary.status == "complete" and summary.complete == 6  # 3 grid points x 2 seeds
    assert any(line.startswith("layout: 2 worker(s) x 1 thread(s)") for line in lines)
    ostudy = open_study(study, create=False)
    (run,) = ostudy.user_attrs["runs"]
    assert run["workers"] == 2 and run["threads"] == 1 and run["device"] == "cpu" and run["profile"] == "default"
    assert run["wall_s"] > 0 and "cores" in run["machine"] and run["started"] <= run["finished"]
    for t in ostudy.get_trials(deepcopy=False):  # each trial says how it was trained
        assert t.user_attrs["train_settings"]["threads"] == 1
        assert t.user_attrs["train_settings"]["channels_last"] is t.user_attrs["label"].startswith("xnet")
    run_study(study, progress=False, echo=lambda *_: None)  # a resume appends a second record
    assert len(open_study(study, create=False).user_attrs["runs"]) == 2


def test_last_third_gain():
    hist = [(100, 20.0), (200, 21.0), (400, 22.0), (500, 22.5), (600, 22.6)]
    assert last_third_gain(hist, 600) == pytest.approx(0.6)  # final 22.6 - 22.0 at step 400 (= 2/3 of 600)
    assert last_third_gain([(600, 22.6)], 600) is None  # nothing validated before the last third
    assert last_third_gain([], 600) is None
    assert last_third_gain([(300, 20.0), (400, 21.0)], 600) is None  # stopped before the last third


def test_throughput_settings_are_validated():
    with pytest.raises(TrainConfigError, match="compile"):
        TrainConfig(compile="yes")
    with pytest.raises(TrainConfigError, match="channels_last"):
        TrainConfig(channels_last="on")
    assert TrainConfig().channels_last == "auto" and TrainConfig().amp is False and TrainConfig().compile is False


def test_channels_last_auto_follows_the_blocks():
    """auto is NHWC where a block prefers it (xUnit, MemNet) and none prefers NCHW (NSR's per-image GEMMs); plain
    conv nets stay NCHW; an explicit value wins; the result (and so the ledger's train_settings) records the
    layout actually used."""
    xnet = build(get_family("xnet").fn(depth=3, width=8, xunit_kernel_size=3))
    nsr = build(get_family("nsr_resnet").fn(n_blocks=1, channels=8, expansion=2, sparsity_groups=2))
    auto, on, off = TrainConfig(), TrainConfig(channels_last=True), TrainConfig(channels_last=False)
    convnet = build(get_family("convnet").fn(depth=3, width=8))
    memnet = build(get_family("memnet").fn(n_blocks=1, recursions=1, channels=8))
    assert uses_channels_last(xnet, auto) and uses_channels_last(memnet, auto)
    assert not uses_channels_last(nsr, auto) and not uses_channels_last(convnet, auto)  # NCHW / neutral
    assert uses_channels_last(nsr, on) and not uses_channels_last(xnet, off)
    cfg = TrainConfig(**{**TINY_TRAINING, "steps": 2, "val_every": 0, "progress": False})
    res = train(nsr, make_task("denoise", sigma=25), _images(), (), cfg)
    assert res.config["channels_last"] is False and next(nsr.parameters()).is_contiguous()


def _images():
    from archsearch.data import embedded_split

    return embedded_split("train")


def _trained(**settings):
    from archsearch.data import embedded_split

    torch.manual_seed(0)
    model = build(get_family("xnet").fn(depth=3, width=8, xunit_kernel_size=3))
    cfg = TrainConfig(**{**TINY_TRAINING, "steps": 6, "val_every": 0, "progress": False, "seed": 0, **settings})
    images = embedded_split("train")
    res = train(model, make_task("denoise", sigma=25), images, images[:1], cfg)
    return res.losses, res.final_val_psnr


def test_channels_last_is_the_same_function_and_deterministic():
    """channels_last changes the float rounding, not the function: the same run in NCHW agrees to float noise, and
    each layout repeats bit for bit (the settings that are bit-deterministic per thread count)."""
    a, pa = _trained()
    b, pb = _trained()
    c, pc = _trained(channels_last=False)
    assert a == b and pa == pb
    assert a == pytest.approx(c, rel=1e-4) and pa == pytest.approx(pc, abs=1e-3)


def test_bf16_autocast_runs_on_cpu_and_stays_close():
    a, pa = _trained()
    b, pb = _trained(amp=True)
    assert all(torch.isfinite(torch.tensor(b)))
    assert pb == pytest.approx(pa, abs=0.1)  # bfloat16: 8 bits of mantissa; a tolerance, not bit equality


def test_the_layout_never_changes_which_trials_exist_or_their_numbers(tmp_path, monkeypatch, auto_env):
    """1 worker x 2 threads and 2 workers x 1 thread run the same trials with the same seeds; the metrics agree to
    float noise (the thread count changes oneDNN's reduction order, so they are not bit-identical)."""
    monkeypatch.setattr(layout_mod, "machine_cpus", lambda: 2)
    out = {}
    for workers in (1, 2):
        (tmp_path / f"w{workers}").mkdir()
        study = load_study(write_study(tmp_path / f"w{workers}", seeds=[0, 1]))
        run_study(study, workers=workers, progress=False, echo=lambda *_: None)
        trials = open_study(study, create=False).get_trials(deepcopy=False)
        out[workers] = {(t.user_attrs["label"], t.user_attrs["seed"]): t.user_attrs["psnr"] for t in trials}
        assert {t.user_attrs["train_settings"]["threads"] for t in trials} == {3 - workers}
    assert out[1].keys() == out[2].keys() and len(out[1]) == 6
    for key, psnr in out[1].items():
        assert out[2][key] == pytest.approx(psnr, abs=1e-3)
