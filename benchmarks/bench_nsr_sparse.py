"""NSR's Fig. 5 on this CPU (Fan et al., NeurIPS 2020, Sec. 4.2 "Computation time"). Run:
``.venv/bin/python benchmarks/bench_nsr_sparse.py [--quick]``.

The paper times "a single convolution layer" (batch 100, 64 input/output channels, 64 x 64 patches, quad-core
i5-2500): dense 1.96 ms; same size k = 2/4/8/16: 1.17/0.77/0.56/0.70; same FLOPs: 2.12/2.12/2.08/2.08.
Here, for {one conv layer, one residual block} x {batch 100, batch 32} x {forward, training step}:

* dense -- layer: ``nn.Conv2d(64, 64, 3, padding=1)``; block: the code base's ``ResidualBlock(64)`` (x + conv(ReLU(
  conv(x))), nn.Conv2d); in NCHW (PyTorch's default, the paper's baseline) and in NHWC (channels_last); every
  speed-up is printed against both, NCHW dense and the faster dense layout of that case;
* NSR same size (``NSRResBlock(64, 64, 3, k, regime="same_size")``: k groups of 64 / k kernels, the dense
  parameter count, 1/k of its conv MACs) and same FLOPs (``regime="same_flops"``: k groups of 64 kernels, k x the
  parameters, the dense conv MACs), k = 2, 4, 8, 16; layer: the block's conv1 with its selection (global pooling,
  MLP, softmax, kernel aggregation, then the conv -- 64 -> 64 / k channels same size, 64 -> 64 same FLOPs); block:
  the whole NSR block;
* each NSR model twice: ``new`` (the block's forward: per-image convs, ``nsr._image_conv`` -- oneDNN's per image
  where ``nsr._onednn``'s size rule says so, else the GEMM form) and ``old`` (the
  former grouped conv with groups = batch, ``nsr._grouped_conv`` / ``nsr._grouped_forward``).

Training step: forward, mean squared error against a fixed target (made per model before the timing), backward (the input requires grad, as inside
a network), Adam step. All models of one case run interleaved (one step of each per round, after a warm-up),
medians over rounds; 2 threads. Targets (issue): same size k = 4 >= 3.0x and k = 8 >= 4.0x faster than dense,
same FLOPs <= 1.10x the dense time for k <= 8 -- checked for the new formulation in every case.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import archsearch
from archsearch.allocator import keep_freed_memory
from archsearch.blocks import NSRResBlock, ResidualBlock, nsr
from archsearch.latency import cpu_model
from archsearch.published import published

C, SIZE, KS = 64, 64, [2, 4, 8, 16]


class NSRLayer(nn.Module):
    """One sparse conv layer: conv1 of an NSR block with its selection (pooling, MLP, aggregation), no ReLU."""

    def __init__(self, block: nn.Module, old: bool):
        super().__init__()
        self.m, self.old = block, old
        for name in ("select2", "weight2", "bias2", "gain2"):  # conv2's parameters are not part of the layer
            if hasattr(block, name) and getattr(block, name) is not None:
                getattr(block, name).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m
        n = x.shape[0]
        w1, b1 = m.kernels1(m._beta(m.select1, nsr.global_mean(x)))
        w1 = w1.view(n, m.g, m.c, m.ks, m.ks)
        b1 = None if b1 is None else b1.view(n, m.g)
        if self.old:
            return nsr._grouped_conv(x, w1, b1, m.ks // 2)
        return nsr._image_conv(x, w1, b1, None, False, 1.0)


class OldBlock(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.m = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nsr._grouped_forward(self.m, x)


class GemmForm(nn.Module):
    """The same NSR model in the per-image GEMM form (``nsr._ImageConv``, which oneDNN's per-image convs replaced
    on CPUs; ``--gemm``): ``nsr._onednn`` answers no while it runs forward (the Function chosen there also runs the
    backward). oneDNN itself stays on -- the GEMMs' ``bmm`` uses it too."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.m = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chooser = nsr._onednn
        nsr._onednn = lambda *_shape: False
        try:
            return self.m(x)
        finally:
            nsr._onednn = chooser


def models(kind: str, with_old: bool, with_gemm: bool = False) -> list[tuple[str, int, nn.Module]]:
    """(name, k, module); k = 1 for dense. Both formulations of one NSR model share its weights. Dense runs in
    both memory layouts (``dense NHWC``: module and input channels_last) and the faster one is the baseline, so
    no speed-up comes from a slow dense layout (NCHW's training step is the slower one here)."""
    torch.manual_seed(0)
    dense = nn.Conv2d(C, C, 3, padding=1) if kind == "layer" else ResidualBlock(C).build()
    dense_cl = copy.deepcopy(dense).to(memory_format=torch.channels_last)
    out = [("dense", 1, dense), ("dense NHWC", 1, dense_cl)]
    for regime in ("same_size", "same_flops"):
        for k in KS:
            m = NSRResBlock(C, C, 3, k, regime=regime).build()
            label = f"{regime.replace('_', '-')} k={k}"
            new = NSRLayer(m, old=False) if kind == "layer" else m
            out.append((label, k, new))
            if with_old:
                out.append((label + " old", k, NSRLayer(m, old=True) if kind == "layer" else OldBlock(m)))
            if with_gemm:
                out.append((label + " gemm", k, GemmForm(new)))
    return out


def bench_case(kind: str, batch: int, mode: str, rounds: int, warmup: int, with_old: bool,
               with_gemm: bool = False) -> list[dict]:
    ms = models(kind, with_old, with_gemm)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, C, SIZE, SIZE, generator=gen)
    steps = []
    for name, _k, m in ms:
        xm = x.contiguous(memory_format=torch.channels_last) if name.endswith("NHWC") else x
        if mode == "forward":
            m.eval()

            def step(m=m, xm=xm):
                with torch.no_grad():
                    m(xm)
        else:
            m.train()
            opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            xg = xm.clone().requires_grad_()
            with torch.no_grad():  # each model's own fixed target, made before the timing
                target = torch.zeros_like(m(xg))

            def step(m=m, opt=opt, xg=xg, target=target):
                y = m(xg)
                opt.zero_grad(set_to_none=True)
                xg.grad = None
                F.mse_loss(y, target).backward()
                opt.step()
        steps.append(step)
    times = [[] for _ in ms]
    for r in range(warmup + rounds):
        for i, step in enumerate(steps):
            t0 = time.perf_counter()
            step()
            if r >= warmup:
                times[i].append(time.perf_counter() - t0)
    nchw = statistics.median(times[0])  # PyTorch's default layout, the paper's baseline
    best = min(nchw, statistics.median(times[1]))  # the faster dense layout
    return [dict(name=name, k=k, ms=1e3 * statistics.median(t), ratio=nchw / statistics.median(t),
                 ratio_best=best / statistics.median(t)) for (name, k, _), t in zip(ms, times)]


def main() -> None:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 32 only, 2 rounds, no old formulation")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default 3; batch 100: 2)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-old", action="store_true", help="skip the former grouped-conv formulation")
    parser.add_argument("--gemm", action="store_true", help="also time the per-image GEMM form (nsr._ImageConv), which "
                                                                 "runs below nsr._onednn's size rule")
    parser.add_argument("--size", type=int, default=64, help="image side (the paper's: 64); smaller for a smoke run")
    parser.add_argument("--batch", type=int, default=None, help="one batch size instead of 100 and 32 (quick: 32)")
    parser.add_argument("--malloc", choices=("kept", "default"), default="kept",
                        help="kept (default): glibc keeps freed memory, as every archsearch CLI process sets it "
                             "(archsearch/allocator.py), for every model alike; default: glibc's defaults")
    args = parser.parse_args()
    SIZE = args.size
    torch.set_num_threads(args.threads)
    allocator = "kept, as the CLI" if args.malloc == "kept" and keep_freed_memory() else "glibc defaults"
    print(f"archsearch {archsearch.__version__}, torch {torch.__version__}, python {platform.python_version()}, "
          f"{args.threads} threads, CPU: {_cpu_name()}, freed memory: {allocator}")
    batches = [args.batch] if args.batch else [32] if args.quick else [100, 32]
    with_old = not (args.quick or args.no_old)
    checks = []
    t_start = time.perf_counter()
    for kind in ("layer", "block"):
        for batch in batches:
            for mode in ("forward", "train"):
                rounds = args.rounds or (2 if args.quick else (2 if batch == 100 else 3))
                res = bench_case(kind, batch, mode, rounds, args.warmup, with_old, args.gemm)
                label = f"{'one conv layer' if kind == 'layer' else 'one residual block'}, batch {batch}, " \
                        f"{'forward' if mode == 'forward' else 'training step'}"
                print(f"\n{label} ({C} ch, {SIZE}x{SIZE}; median of {rounds} interleaved rounds)")
                print(f"    {'model':<22} {'ms':>9} {'x NCHW dense':>13} {'x best dense':>13}"
                      + (f"  {'old ms':>9} {'new/old':>8}" if with_old else "")
                      + (f"  {'gemm ms':>9} {'new/gemm':>8}" if args.gemm else ""))
                by_name = {r["name"]: r for r in res}
                for r in res:
                    if r["name"].endswith((" old", " gemm")):
                        continue
                    extra = ""
                    for tag in ("old", "gemm"):
                        o = by_name.get(f"{r['name']} {tag}")
                        extra += f"  {o['ms']:>9.1f} {o['ms'] / r['ms']:>7.2f}x" if o else ""
                    print(f"    {r['name']:<22} {r['ms']:>9.1f} {r['ratio']:>12.2f}x {r['ratio_best']:>12.2f}x{extra}")
                    for base, key in (("NCHW dense", "ratio"), ("best dense", "ratio_best")):
                        if r["name"] in ("same-size k=4", "same-size k=8"):
                            need = 3.0 if r["k"] == 4 else 4.0
                            checks.append((base, label, f"{r['name']} speed-up {r[key]:.2f}x >= {need:.1f}x",
                                           r[key] >= need))
                        if r["name"].startswith("same-flops") and r["k"] <= 8:
                            checks.append((base, label, f"{r['name']} time {1 / r[key]:.2f}x dense <= 1.10x",
                                           1 / r[key] <= 1.10))
    print("\nthe paper's Fig. 5 (one conv layer, batch 100, quad-core i5; published rows), x dense:")
    dense = published("nsr_fig5_dense").value
    for regime, tag in (("same size", "size"), ("same FLOPs", "flops")):
        cells = [f"k={k} {dense / published(f'nsr_fig5_{tag}_k{k}').value:.2f}x" for k in KS]
        print(f"    {regime:<10} dense {dense:.2f} ms; " + ", ".join(cells))
    print(f"\ntargets (new formulation), {time.perf_counter() - t_start:.0f} s in all:")
    for base in ("NCHW dense", "best dense"):
        mine = [c for c in checks if c[0] == base]
        print(f"  against the {base}" + (" (PyTorch's default layout, as the paper)" if base == "NCHW dense"
                                        else " (NCHW or NHWC, whichever was faster in that case)"))
        for _, label, what, ok in mine:
            print(f"    {'PASS' if ok else 'FAIL'}  {label}: {what}")
        print(f"  {sum(ok for *_, ok in mine)}/{len(mine)} targets pass against the {base}")


def _cpu_name() -> str:
    return f"{cpu_model()}, {torch.get_num_threads()} torch threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"

if __name__ == "__main__":
    main()
