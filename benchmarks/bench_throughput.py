"""Training throughput of archsearch's trainer against the loop a user would write, and the PSNR it reaches.

    python benchmarks/bench_throughput.py                 # 5 models, steps/s ratios + 1,000-step PSNR parity
    python benchmarks/bench_throughput.py --quick         # ratios only, 2 models
    python benchmarks/bench_throughput.py --parity-steps 0

**Peer**: the same built model in a plain fp32 loop with PyTorch's defaults (contiguous NCHW, Adam, MSE, the
default thread count), fed the same patch batches (archsearch's seeded sampler, so data cost is equal).
**archsearch**: the trainer's loop body -- a batch from its seeded sampler, then
:func:`archsearch.training.train_step` prepared by :func:`~archsearch.training.prepare_step` as
:func:`~archsearch.training.train` prepares it, under the trainer's deterministic mode -- with the default
throughput settings (``channels_last: auto``: NHWC except for NSR models), and with ``compile: true`` where asked
(``--compile``; the compile time is the warm-up's). Step times are medians of chunks of steps, the peer and
archsearch interleaved in one run, so machine load affects both alike; the conv peak ("of peak") is timed between
those chunks too. Freed memory is kept as every CLI process keeps it (``archsearch.allocator``), for both loops
(``--malloc default``: glibc's defaults).
**Parity**: a 1,000-step run of each model with the default settings vs the same run in fp32 NCHW
(``channels_last: false``); the final validation PSNR (full embedded validation images) must agree within
0.05 dB.

Models: convnet_fig4, xnet_fig4, dncnn_s, nsr_dn_sparse_minus (zoo) and a small MemNet (M=2, R=2, 32 channels,
built from the memnet family: the zoo's M6R6 is 2.9M MACs/pixel, too slow for a 1,000-step CPU run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from archsearch import build, get_family, zoo_spec
from archsearch.allocator import keep_freed_memory
from archsearch.counting import count
from archsearch.data import embedded_split
from archsearch.latency import cpu_model
from archsearch.tasks import make_task
from archsearch.training import (
    PatchSampler,
    StepSetup,
    TrainConfig,
    deterministic_mode,
    prepare_step,
    seed_everything,
    train,
    train_step,
    uses_channels_last,
)

MODELS = ["convnet_fig4", "xnet_fig4", "dncnn_s", "nsr_dn_sparse_minus", "memnet_m2r2_c32"]


def spec_of(name: str):
    if name == "memnet_m2r2_c32":
        return get_family("memnet").fn(n_blocks=2, recursions=2, channels=32)
    return zoo_spec(name)


def peer_loss(model, x, y):
    """What a user writes: residual learning (the denoise task restores x - model(x)), MSE; for MemNet its
    multi-supervised loss (Tai et al. 2017 Eq. 12: alpha = 1/(M+1) on the final output, the rest shared by the
    M intermediate reconstructions), so both loops do the same work."""
    loss = F.mse_loss(x - model(x), y)
    inter = []
    for m in model.modules():
        if isinstance(getattr(m, "intermediate", None), list) and m.intermediate:
            inter += m.intermediate
            m.intermediate = []
    if inter:
        alpha = 1 / (len(inter) + 1)
        loss = alpha * loss + (1 - alpha) * sum(F.mse_loss(x - p, y) for p in inter) / len(inter)
    return loss


def peer_steps(model, sampler, opt, n: int, batch: int) -> float:
    """The hand-written loop: n steps, seconds per step."""
    model.train()
    t = time.perf_counter()
    for _ in range(n):
        x, y = sampler.batch(batch)
        loss = peer_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / n


def ours_setup(spec, task, images, batch: int, patch: int, **settings) -> tuple[StepSetup, PatchSampler]:
    """archsearch's side: a built model prepared for the trainer's step, and the trainer's sampler (seed 0, as
    the peer's). A constant schedule: the learning rate does not change the cost of a step."""
    config = TrainConfig(batch_size=batch, patch_size=patch, schedule="constant", progress=False, **settings)
    return prepare_step(build(spec), task, config), PatchSampler(task, images, patch, seed=0)


def ours_steps(setup: StepSetup, sampler: PatchSampler, n: int, batch: int) -> float:
    """n steps of the trainer's loop body (draw a batch, train_step) under its deterministic mode, s/step."""
    with deterministic_mode(setup.config.deterministic):
        setup.model.train()
        t = time.perf_counter()
        for _ in range(n):
            x, y = sampler.batch(batch)
            train_step(setup, x, y)
        return (time.perf_counter() - t) / n


def ratios(name: str, task, images, batch: int, patch: int, chunk: int, repeats: int, compile_: bool) -> dict:
    seed_everything(0)
    spec = spec_of(name)
    peer = build(spec)
    sampler = PatchSampler(task, images, patch, seed=0)
    opt = torch.optim.Adam(peer.parameters(), lr=TrainConfig.lr)  # the trainer's default: both optimise alike
    ours = {"archsearch": ours_setup(spec, task, images, batch, patch)}
    if compile_:
        ours["archsearch+compile"] = ours_setup(spec, task, images, batch, patch, compile=True)
    times: dict[str, list[float]] = {"peer": [], **{k: [] for k in ours}}
    peak = ConvPeak(batch, patch)
    peer_steps(peer, sampler, opt, 2, batch)  # warm-up
    ours_steps(*ours["archsearch"], 2, batch)
    t0 = time.perf_counter()
    if compile_:
        ours_steps(*ours["archsearch+compile"], 2, batch)  # compiles
    compile_s = time.perf_counter() - t0
    for _ in range(repeats):
        times["peer"].append(peer_steps(peer, sampler, opt, chunk, batch))
        for k, (setup, ours_sampler) in ours.items():
            times[k].append(ours_steps(setup, ours_sampler, chunk, batch))
        peak.chunk()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"med": med, "compile_s": compile_s if compile_ else None, "peak": peak.rate()}


class ConvPeak:
    """This machine's fp32 convolution rate in MACs/s: a 64->64 3x3 conv, forward + backward (3x the forward
    MACs), NHWC, the batch and patch of the benchmark. A training step whose every MAC ran at this rate bounds
    what any fp32 setting can gain (bf16 conv measured slower on this CPU: no AMX). Timed in chunks between the
    models' chunks, so that a shared machine's load moves the rate and the steps alike."""

    def __init__(self, batch: int, patch: int):
        self.conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
        self.x = torch.randn(batch, 64, patch, patch).contiguous(memory_format=torch.channels_last).requires_grad_()
        self.macs = 3 * batch * patch * patch * 64 * 64 * 9
        self.rates: list[float] = []
        self.chunk(2)  # warm-up

    def chunk(self, n: int = 3) -> None:
        """n passes; keeps the best pass's rate (a rate the machine reaches)."""
        times = []
        for _i in range(n):
            t = time.perf_counter()
            self.conv(self.x).sum().backward()
            times.append(time.perf_counter() - t)
        self.rates.append(self.macs / min(times))

    def rate(self) -> float:
        return statistics.median(self.rates)


def parity(name: str, task, train_images, val_images, steps: int, batch: int, patch: int, compile_: bool) -> dict:
    out = {}
    variants = [("fp32 NCHW", {"channels_last": False}), ("default", {})]
    if compile_:
        variants.append(("+compile", {"compile": True}))
    for label, settings in variants:
        if label == "default" and not uses_channels_last(build(spec_of(name)), TrainConfig()):
            out[label] = out["fp32 NCHW"]  # auto keeps NCHW for this model: the same settings, the same run
            continue
        seed_everything(0)
        model = build(spec_of(name))
        config = TrainConfig(steps=steps, batch_size=batch, patch_size=patch, schedule="cosine", progress=False,
                             seed=0, **settings)
        res = train(model, task, train_images, val_images, config)
        out[label] = (res.final_val_psnr, res.seconds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--batch", type=int, default=TrainConfig.batch_size)
    ap.add_argument("--patch", type=int, default=TrainConfig.patch_size)
    ap.add_argument("--chunk", type=int, default=5, help="steps per timed chunk")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--parity-steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (compile time reported) and "
                                                           "check its PSNR parity")
    ap.add_argument("--no-ratios", action="store_true", help="only the PSNR parity runs")
    ap.add_argument("--malloc", choices=("kept", "default"), default="kept",
                    help="kept (default): glibc keeps freed memory, as every archsearch CLI process sets it "
                         "(archsearch/allocator.py), for both loops alike; default: glibc's defaults")
    args = ap.parse_args()
    allocator = "kept, as the CLI (both loops)" if args.malloc == "kept" and keep_freed_memory() else "glibc defaults"
    models = args.models or (["convnet_fig4", "xnet_fig4"] if args.quick else MODELS)
    if args.quick:
        args.parity_steps, args.repeats = 0, 3
    task = make_task("denoise", sigma=25)
    train_images, val_images = embedded_split("train"), embedded_split("val")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_model()}"
          f"; batch {args.batch} x {args.patch}x{args.patch}, chunks of {args.chunk} steps x {args.repeats}"
          f"; freed memory: {allocator}")
    models_timed = [] if args.no_ratios else models
    print("'peak': this machine's fp32 conv rate (64->64 3x3 forward+backward, NHWC), timed between the model's "
          "chunks; 'of peak': archsearch's step (default settings) as counted MACs x 3 / its time / the peak; "
          "'fp32 ceiling': the most any fp32 setting could gain over the peer (every MAC at the peak rate)")
    print(f"{'model':22s} {'peer ms/step':>12s} {'archsearch':>11s} {'ratio':>6s}"
          + (f" {'+compile':>9s} {'ratio':>6s} {'compile s':>9s}" if args.compile else "")
          + f" {'peak GMAC/s':>11s} {'of peak':>8s} {'fp32 ceiling':>12s}")
    for name in models_timed:
        r = ratios(name, task, train_images, args.batch, args.patch, args.chunk, args.repeats, args.compile)
        m = r["med"]
        line = f"{name:22s} {m['peer'] * 1e3:12.1f} {m['archsearch'] * 1e3:11.1f} {m['peer'] / m['archsearch']:6.2f}"
        if args.compile:
            line += (f" {m['archsearch+compile'] * 1e3:9.1f} {m['peer'] / m['archsearch+compile']:6.2f}"
                     f" {r['compile_s']:9.1f}")
        macs = 3 * count(spec_of(name)).macs_per_pixel * args.batch * args.patch ** 2
        peak = r["peak"]
        line += f" {peak / 1e9:11.0f} {100 * macs / m['archsearch'] / peak:7.0f}% {m['peer'] * peak / macs:11.2f}x"
        print(line, flush=True)
    if args.parity_steps:
        print(f"\nPSNR parity: {args.parity_steps} steps, cosine lr {TrainConfig.lr:g}, final validation PSNR (embedded val images)")
        print(f"{'model  setting':31s} {'fp32 NCHW dB':>12s} {'setting dB':>11s} {'diff':>7s} {'s fp32':>7s} "
              f"{'s set':>7s}")
        for name in models:
            p = parity(name, task, train_images, val_images, args.parity_steps, args.batch, args.patch, args.compile)
            (a, ta) = p["fp32 NCHW"]
            for label in [k for k in p if k != "fp32 NCHW"]:
                b, tb = p[label]
                ok = "ok" if abs(a - b) <= 0.05 else "FAIL"
                same = "  (auto keeps NCHW: same run)" if p[label] is p["fp32 NCHW"] else ""
                print(f"{name + ' ' + label:31s} {a:12.3f} {b:11.3f} {b - a:+7.3f} {ta:7.0f} {tb:7.0f}  {ok}{same}",
                      flush=True)


if __name__ == "__main__":
    main()
