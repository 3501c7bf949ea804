"""The throughput benchmarks run end to end at toy sizes (their numbers are quoted in docs/speed.md; a benchmark that no longer runs would leave those numbers unreproducible)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(*argv: str, cwd: Path = ROOT) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARCHSEARCH_WORKERS": "auto"}  # the defaults, as users run it
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_bench_study_compares_the_old_way_with_the_defaults(tmp_path):
    out = _bench("benchmarks/bench_study.py", "studies/xunit_budget.yaml", "--profile", "smoke", "--compare-old",
                 "--output-dir", str(tmp_path))
    assert "[old] 2 complete, 0 failed" in out and "channels_last False, amp False" in out
    assert "[new] 2 complete, 0 failed" in out and "channels_last False/True" in out  # convnet NCHW, xnet NHWC
    assert "same trials (design points x seeds): yes" in out and "new / old wall time:" in out
    assert (tmp_path / "old" / "ledger.db").exists() and (tmp_path / "new" / "ledger.db").exists()


def test_bench_throughput_times_and_checks_parity():
    out = _bench("benchmarks/bench_throughput.py", "--models", "xnet_fig4", "nsr_dn_sparse_minus", "--batch", "2",
                 "--patch", "16", "--chunk", "1", "--repeats", "1", "--parity-steps", "2")
    lines = {line.split()[0] + " " + line.split()[1]: line for line in out.splitlines() if line.count(" ") > 3}
    assert "'peak': this machine's fp32 conv rate" in out and "freed memory: kept, as the CLI" in out
    timed = next(line for line in out.splitlines() if line.startswith("xnet_fig4 ") and "%" in line)
    assert float(timed.split()[-3]) > 0 and timed.split()[-2].endswith("%")  # the peak measured beside the steps
    assert lines["xnet_fig4 default"].rstrip().endswith("ok")  # NHWC vs NCHW after 2 steps: float noise
    assert lines["nsr_dn_sparse_minus default"].endswith("(auto keeps NCHW: same run)")


def test_bench_nsr_sparse_times_both_forms_and_checks_its_targets():
    """NSR's Fig. 5 benchmark at a toy size: every case, the GEMM form beside the chosen one, the target lines."""
    out = _bench("benchmarks/bench_nsr_sparse.py", "--quick", "--gemm", "--size", "12", "--batch", "2",
                 "--rounds", "1", "--warmup", "0")
    assert "freed memory: kept, as the CLI" in out and out.count("gemm ms") == 4, out
    assert "one residual block, batch 2, training step (64 ch, 12x12" in out
    assert "targets pass against the NCHW dense" in out and "targets pass against the best dense" in out


def test_bench_seed_noise_runs_its_variants(tmp_path):
    out = _bench("benchmarks/bench_seed_noise.py", "studies/xunit_budget.yaml", "--profile", "smoke", "--variants",
                 "base", "ema", "--precise-bn", "2", "--out", str(tmp_path))
    assert "[base] complete: pooled paired sd" in out and "[ema] complete: pooled paired sd" in out, out
    assert "[base] precise BN (2 batches; 2 of 2 trials have BatchNorm)" in out, out  # the ConvNet and the xNet
    ema = (tmp_path / "ema.yaml").read_text()
    assert "ema: 0.999" in ema and str(tmp_path / "ema") in ema


def test_bench_seed_noise_variant_files_double_the_lr_and_fix_the_seeds(tmp_path):
    import yaml

    bench = _bench_module("bench_seed_noise")
    study = ROOT / "studies" / "xunit_budget.yaml"
    body = yaml.safe_load(bench.variant_file(study, None, "lr2x", tmp_path, None, seeds=3).read_text())
    base = yaml.safe_load(study.read_text())
    assert body["training"]["lr"] == 2 * base["training"]["lr"] and body["training"]["schedule"] == "cosine"
    assert body["seeds"] == base["seeds"][:3] and body["sequential"] is None  # every variant trains seeds 0-2
    half_lr = yaml.safe_load(bench.variant_file(study, None, "lr_half", tmp_path, None, seeds=3).read_text())
    assert half_lr["training"]["lr"] == base["training"]["lr"] / 2
    smoke = yaml.safe_load(bench.variant_file(study, "smoke", "batch16", tmp_path, None).read_text())
    training = smoke["profiles"]["smoke"]["training"]  # a profile's variant overrides the profile's settings
    half = max(1, base["profiles"]["smoke"]["training"]["steps"] // 2)  # the same patches at batch 16
    assert training["batch_size"] == 16 and training["steps"] == half
    assert training["lr"] == base["training"]["lr"] and smoke["profiles"]["smoke"]["seeds"] == [0]


def test_bench_lidia_times_the_block_against_the_reference():
    out = _bench("benchmarks/bench_lidia.py", "--size", "24", "--threads", "1", "--model", "lidia_s")
    line = next(line for line in out.splitlines() if line.startswith("threads 1:"))
    assert "ratio" in line and float(line.split("max |diff| ")[1]) <= 1e-5


def test_bench_pruning_replays_every_rule_on_a_finished_grid(tmp_path):
    """A tiny 3-seed grid (4 steps, validation at 2), then every pruning rule replayed on its curves."""
    from archsearch.study import load_study, run_study
    from archsearch.testing.studies import write_study

    path = write_study(tmp_path, seeds=[0, 1, 2], latency={"enabled": False})
    run_study(load_study(path))
    out = _bench("benchmarks/bench_pruning.py", str(path), "--rungs", "2", "--tolerance", "0", "0.5")
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines() if "%" in line}
    for method in ("grid", "sh", "hyperband", "median", "paired design tol 0", "paired study tol 0.5"):
        assert method in lines, out
    assert "the grid's best" in lines["grid"] and "the paired rule (rungs [2]: given; alpha 0.05) stopped:" in out


def test_bench_pruning_replays_a_multi_objective_search(tmp_path):
    """A tiny NSGA-II search (PSNR vs parameters, 3 seeds): the search's replay (design lockstep only, Optuna's
    pruners on the first seed's curve) and the Pareto section with each method's front coverage."""
    from archsearch.study import load_study, run_study
    from archsearch.testing.studies import write_study

    space = tmp_path / "space.yaml"
    space.write_text("name: tiny_space\ndesigns:\n  - name: convnet\n    family: convnet\n    search:\n"
                     "      depth: {low: 2, high: 4}\n      width: {choices: [4, 8]}\n")
    path = write_study(tmp_path, search_space=str(space), budget=None, sweep=None, seeds=[0, 1, 2],
                       search={"sampler": "nsga2", "n_trials": 4, "objectives": ["psnr", "params"]},
                       latency={"enabled": False}, executor={"kind": "local", "workers": 1})
    run_study(load_study(path))
    out = _bench("benchmarks/bench_pruning.py", str(path), "--rungs", "2", "--tolerance", "0")
    assert "nsga2 search" in out and "paired design tol 0" in out and "paired study" not in out, out
    assert "Pareto front of the grid" in out and "front covered" in out
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines() if "%" in line}
    for method in ("sh (PSNR only)", "hyperband (PSNR only)", "paired PSNR only tol 0", "paired Pareto tol 0"):
        assert method in lines and ("meets the goal" in lines[method] or "misses the goal" in lines[method]), out


def _bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pareto_coverage_counts_a_smaller_indistinguishable_design_and_loses_a_stopped_one():
    bench = _bench_module("bench_pruning")
    curve = {1: 0.0}
    runs = {  # test PSNR per seed 0..2
        "small": {s: (curve, v) for s, v in enumerate([25.0, 25.1, 24.9])},
        "mid": {s: (curve, v) for s, v in enumerate([26.0, 26.2, 25.8])},
        "mid_twin": {s: (curve, v) for s, v in enumerate([25.9, 26.1, 25.85])},  # smaller than mid, paired tie
        "big": {s: (curve, v) for s, v in enumerate([27.0, 27.1, 26.9])},
        "bad": {s: (curve, v) for s, v in enumerate([24.0, 24.1, 23.9])},
    }
    sizes = {"small": 100, "mid": 300, "mid_twin": 250, "big": 900, "bad": 500}
    means = {p: sum(v for _, v in r.values()) / 3 for p, r in runs.items()}
    front = bench.pareto_front(list(runs), means, sizes)
    assert front == ["small", "mid_twin", "mid", "big"]  # "bad" is beaten by mid on both objectives
    steps, order = 10, list(runs)
    every = {p: {s: steps for s in range(3)} for p in order}
    assert bench.coverage(every, order, runs, steps, sizes, front) == (4, [])
    # mid stopped: mid_twin (smaller, paired differences -0.1/-0.1/+0.05 dB: the interval holds 0) covers it;
    # small stopped: nothing as small is left, so the front loses it
    cut = {**every, "mid": {s: 4 for s in range(3)}, "small": {0: 4, 1: 0, 2: 0}}
    assert bench.coverage(cut, order, runs, steps, sizes, front) == (3, ["small"])
    # big stopped: nothing no larger is its equal (mid is 1 dB under it on every seed)
    assert bench.coverage({**every, "big": {s: 2 for s in range(3)}}, order, runs, steps, sizes, front) == (3, ["big"])
