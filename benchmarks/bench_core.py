"""Benchmark of the architecture core (CPU). Run: ``.venv/bin/python benchmarks/bench_core.py``.

(a) counting: ``archsearch.count`` on 10,000 sampled specs of six families (specs built first, only ``count``
    timed; the per-block count cache is cleared first, so this is the cold cost)          -- target <= 1 s total
(b) one budget solve (xNet width for 99,136 parameters), median of 50 runs, cold cache   -- target <= 10 ms
(c) forward + backward of built models vs equivalent hand-written ``nn.Module``s with the same weights
    (outputs checked equal), batch 8, 64 x 64, interleaved runs (ABAB...) after a warm-up  -- target ratio <= 1.02
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import torch
from torch import nn

import archsearch
from archsearch import build, count, get_family
from archsearch.counting import _block_counts
from archsearch.solver import Budget, solve


# ---------------------------------------------------------------------------------------------------------
# (a) counting
# ---------------------------------------------------------------------------------------------------------
def sample_spec(rng: random.Random):
    """A random valid spec from one of six families, knobs in ranges a search would visit."""
    family = rng.choice(["xnet", "convnet", "memnet", "nsr_resnet", "resnet", "srcnn"])
    fam = get_family(family)
    if family == "convnet":
        kw = dict(depth=rng.randint(2, 40), width=rng.randint(8, 256))
    elif family == "xnet":
        kw = dict(depth=rng.randint(2, 30), width=rng.randint(8, 256), xunit_kernel_size=rng.choice(range(1, 16, 2)),
                  batch_norm=rng.random() < 0.5)
    elif family == "srcnn":
        kw = dict(n1=rng.randint(8, 128), n2=rng.randint(8, 64), activation=rng.choice(["relu", "xunit"]),
                  xunit_kernel_size=rng.choice(range(1, 16, 2)))
    elif family == "memnet":
        kw = dict(n_blocks=rng.randint(1, 8), recursions=rng.randint(1, 8), channels=rng.randint(8, 64),
                  long_term=rng.random() < 0.7, multi_supervised=rng.random() < 0.3)
    elif family == "resnet":
        kw = dict(n_blocks=rng.randint(1, 32), channels=rng.randint(8, 128), expansion=rng.randint(1, 4),
                  activation=rng.choice(["relu", "prelu", "xunit"]), batch_norm=rng.random() < 0.3)
    else:
        k = rng.choice([1, 2, 4, 8])
        kw = dict(n_blocks=rng.randint(1, 32), channels=8 * rng.randint(1, 16), expansion=rng.randint(1, 4),
                  sparsity_groups=k, regime=rng.choice(["same_size", "same_flops"]), pool=rng.choice([0, 0, 8]))
    return fam(**kw)


def bench_counting(n: int = 10_000, seed: int = 0) -> dict:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    specs = [sample_spec(rng) for _ in range(n)]
    t_build = time.perf_counter() - t0
    nodes = sum(len(s.nodes) for s in specs)
    _block_counts.cache_clear()
    t0 = time.perf_counter()
    for s in specs:
        count(s)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in specs:
        count(s)
    warm = time.perf_counter() - t0
    return dict(n=n, nodes=nodes, build_s=t_build, cold_s=cold, warm_s=warm)


# ---------------------------------------------------------------------------------------------------------
# (b) one budget solve
# ---------------------------------------------------------------------------------------------------------
def bench_solve(runs: int = 50) -> dict:
    budget = Budget("params", 99_136)
    times_cold, times_warm = [], []
    sol = None
    for _ in range(runs):
        _block_counts.cache_clear()
        t0 = time.perf_counter()
        sol = solve("xnet", "width", budget, {"depth": 4})
        times_cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        solve("xnet", "width", budget, {"depth": 4})
        times_warm.append(time.perf_counter() - t0)
    t_share = []
    for _ in range(5):
        _block_counts.cache_clear()
        t0 = time.perf_counter()
        share = solve("xnet", "width", budget, {"depth": 4}, target_activation_pct=15.0, via="xunit_kernel_size")
        t_share.append(time.perf_counter() - t0)
    return dict(cold_ms=1e3 * statistics.median(times_cold), warm_ms=1e3 * statistics.median(times_warm),
                solution=sol, share_ms=1e3 * statistics.median(t_share), share=share)


# ---------------------------------------------------------------------------------------------------------
# (c) framework vs hand-written modules
# ---------------------------------------------------------------------------------------------------------
class HandXUnit(nn.Module):
    """The xUnit paper's unit written out: z * exp(-BN(dw(ReLU(BN(z))))^2)."""

    def __init__(self, c: int, r: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c)
        self.dw = nn.Conv2d(c, c, r, padding=r // 2, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        d = self.bn2(self.dw(torch.relu(self.bn1(z))))
        return z * torch.exp(-d * d)


class HandResidual(nn.Module):
    """output = x - body(x) (DnCNN residual learning)."""

    def __init__(self, body: nn.Sequential):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


def hand_convnet(depth: int, width: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    layers.append(nn.Conv2d(width, 1, 3, padding=1, bias=False))
    return HandResidual(nn.Sequential(*layers))


def hand_xnet(depth: int, width: int, r: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), HandXUnit(width, r)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), HandXUnit(width, r)]
    layers.append(nn.Conv2d(width, 1, 3, padding=1, bias=False))
    return HandResidual(nn.Sequential(*layers))


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters and buffers in registration order (shapes must agree one to one)."""
    s, d = list(src.state_dict().values()), dst.state_dict()
    if len(s) != len(d):
        raise ValueError(f"state_dicts differ in length: {len(s)} vs {len(d)}")
    new = {}
    for (key, dv), sv in zip(d.items(), s):
        if dv.shape != sv.shape:
            raise ValueError(f"{key}: shape {tuple(dv.shape)} vs {tuple(sv.shape)}")
        new[key] = sv.clone()
    dst.load_state_dict(new, strict=True)


def _step(model: nn.Module, x: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    model(x).square().mean().backward()
    return time.perf_counter() - t0


def bench_forward_backward(name: str, spec, hand: nn.Module, rounds: int, warmup: int, batch: int = 8,
                           size: int = 64) -> dict:
    torch.manual_seed(0)
    ours = build(spec)
    copy_weights(ours, hand)
    x = torch.randn(batch, 1, size, size)
    for mode in ("train", "eval"):
        ours.train(mode == "train")
        hand.train(mode == "train")
        with torch.no_grad():
            diff = (ours(x) - hand(x)).abs().max().item()
        if diff > 1e-5:
            raise AssertionError(f"{name}: outputs differ by {diff} in {mode} mode")
    ours.train()
    hand.train()
    for _ in range(warmup):
        _step(ours, x)
        _step(hand, x)
    t_ours, t_hand = [], []
    for i in range(rounds):  # ABAB..., alternating who goes first
        if i % 2 == 0:
            t_ours.append(_step(ours, x))
            t_hand.append(_step(hand, x))
        else:
            t_hand.append(_step(hand, x))
            t_ours.append(_step(ours, x))
    mo, mh = statistics.median(t_ours), statistics.median(t_hand)
    return dict(name=name, params=count(spec).params, max_abs_diff=diff, ours_ms=1e3 * mo, hand_ms=1e3 * mh,
                ratio=mo / mh, ours_min_ms=1e3 * min(t_ours), hand_min_ms=1e3 * min(t_hand))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="timed fwd+bwd steps per model in (c)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"archsearch {archsearch.__version__}, torch {torch.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, torch threads {torch.get_num_threads()}")

    a = bench_counting()
    ok = "PASS" if a["cold_s"] <= 1.0 else "FAIL"
    print(f"\n(a) count() on {a['n']:,} sampled specs ({a['nodes']:,} nodes; building them took {a['build_s']:.2f} s)")
    print(f"    cold block cache: {a['cold_s']:.3f} s total, {1e6 * a['cold_s'] / a['n']:.1f} us/spec   "
          f"[target <= 1 s: {ok}]")
    print(f"    warm block cache: {a['warm_s']:.3f} s total, {1e6 * a['warm_s'] / a['n']:.1f} us/spec")

    b = bench_solve()
    s = b["solution"]
    ok = "PASS" if b["cold_ms"] <= 10 else "FAIL"
    print(f"\n(b) solve(xnet, width, 99,136 params, depth=4) -> width={s.value}, {s.achieved:,.0f} params "
          f"(rel. error {s.rel_error:.2%})")
    print(f"    median of 50: {b['cold_ms']:.2f} ms cold cache, {b['warm_ms']:.2f} ms warm   [target <= 10 ms: {ok}]")
    sh = b["share"]
    print(f"    with target_activation_pct=15 via xunit_kernel_size (16 values): {b['share_ms']:.1f} ms -> "
          f"r={sh.arguments['xunit_kernel_size']}, width={sh.value}, {sh.counts.activation_param_pct:.1f}% in "
          "activations")

    print(f"\n(c) forward+backward, batch 8, 1x64x64, {args.rounds} interleaved rounds after {args.warmup} warm-up")
    cases = [
        ("xNet depth 6, width 64, r=9", get_family("xnet")(depth=6, width=64, xunit_kernel_size=9), hand_xnet(6, 64, 9)),
        ("ConvNet depth 8, width 64", get_family("convnet")(depth=8, width=64), hand_convnet(8, 64)),
    ]
    print(f"    {'model':<30} {'params':>8} {'framework ms':>13} {'hand ms':>9} {'ratio':>7} {'min ratio':>9}  "
          "target <= 1.02")
    for name, spec, hand in cases:
        c = bench_forward_backward(name, spec, hand, args.rounds, args.warmup)
        ok = "PASS" if c["ratio"] <= 1.02 else "FAIL"
        print(f"    {name:<30} {c['params']:>8,} {c['ours_ms']:>13.1f} {c['hand_ms']:>9.1f} {c['ratio']:>7.3f} "
              f"{c['ours_min_ms'] / c['hand_min_ms']:>9.3f}  {ok}  (outputs equal: max |diff| {c['max_abs_diff']:.1e})")


if __name__ == "__main__":
    main()
