"""Data-loader throughput vs training speed, and training steps/s and evaluation images/s of zoo models.

    python benchmarks/bench_data_train.py            # all zoo models listed below
    python benchmarks/bench_data_train.py --quick    # loader check and two small models

Training data: Train400 from the data root ($ARCHSEARCH_DATA_ROOT) when available, else the embedded default.
The loader must produce batches at least 5x faster than a training step of a ~100K-parameter model consumes
them; the ratio is printed. Evaluation runs full-image inference (default protocol) on 256x256 crops
of the embedded test images.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from archsearch import build, count, zoo_spec
from archsearch.data import Image, embedded_split, load_dataset, resolve_dataset
from archsearch.errors import ArchsearchError
from archsearch.evaluate import evaluate
from archsearch.tasks import Task, make_task
from archsearch.training import PatchSampler, TrainConfig, seed_everything, train

MODELS = ["convnet_fig4", "xnet_fig4", "srcnn", "xsrcnn_f", "xdncnn", "dncnn_s", "nsr_dn_sparse_minus",
          "nsr_dn_baseline", "memnet_m6r6", "wdsr_nsr_x2"]


def _task_for(name: str) -> Task:
    spec = zoo_spec(name)
    if spec.scale > 1:
        return make_task("sr", scale=spec.scale, channels=spec.in_channels)
    if name.startswith(("srcnn", "xsrcnn")):
        return make_task("sr", scale=3)
    return make_task("denoise", sigma=25)


def _train_images(task: Task) -> tuple[list[Image], str]:
    if task.kind == "denoise":
        try:
            resolve_dataset("Train400")
            return load_dataset("Train400", color=task.color), "Train400"
        except ArchsearchError:
            pass
    return embedded_split("train", task.color), "embedded default"


def loader_rate(task: Task, images: list[Image], batch: int, patch: int, seconds: float = 2.0) -> float:
    sampler = PatchSampler(task, images, patch, seed=0)
    sampler.batch(batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sampler.batch(batch)
        n += 1
    return n / (time.perf_counter() - t0)


def train_rate(name: str, task: Task, images: list[Image], batch: int, patch: int, steps: int) -> float:
    seed_everything(0)
    model = build(zoo_spec(name))
    config = TrainConfig(steps=steps + 1, batch_size=batch, patch_size=patch, progress=False)
    train(model, task, images, (), TrainConfig(steps=1, batch_size=batch, patch_size=patch, progress=False))  # warm
    result = train(model, task, images, (), config)
    return result.steps_per_second


def eval_rate(name: str, task: Task) -> float:
    model = build(zoo_spec(name))
    images = [Image(im.name, im.pixels[:, :256, :256]) for im in embedded_split("test", task.color)]
    evaluate(model, task, images[:1])
    return evaluate(model, task, images).images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patch", type=int, default=TrainConfig.patch_size)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")

    task = make_task("denoise", sigma=25)
    images, source = _train_images(task)
    lr = loader_rate(task, images, args.batch, args.patch)
    print(f"\nloader ({source}, batch {args.batch}, {args.patch}x{args.patch}, flips/rotations, noise): "
          f"{lr:,.0f} batches/s")
    for name in ("convnet_fig4", "xnet_fig4"):
        sr = train_rate(name, task, images, args.batch, args.patch, steps=5)
        print(f"  {name:<14} {count(zoo_spec(name)).params:>8,} params: {sr:6.2f} steps/s -> loader is "
              f"{lr / sr:,.0f}x faster than training consumes")

    print(f"\n{'model':<22} {'params':>10} {'task':<12} {'train steps/s':>14} {'eval img/s (256x256)':>21}")
    for name in MODELS[:2] if args.quick else MODELS:
        t = _task_for(name)
        imgs, _ = _train_images(t)
        patch = 48 if t.kind == "sr" else args.patch  # a multiple of 2 and 3
        steps = 2 if name.startswith("memnet") else 4
        sr = train_rate(name, t, imgs, args.batch, patch, steps)
        er = eval_rate(name, t)
        label = f"{t.kind} x{t.scale}" if t.kind == "sr" else f"{t.kind} {t.sigma:g}"
        print(f"{name:<22} {count(zoo_spec(name)).params:>10,} {label:<12} {sr:>14.3f} {er:>21.3f}")


if __name__ == "__main__":
    main()
