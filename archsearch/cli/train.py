"""``archsearch evaluate`` and ``archsearch train``: one model, outside any study."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any

import torch

from ..atomic import atomic_path
from ..builder import build
from ..data import DataError, check_images, is_embedded
from ..errors import ArchsearchError, SpecError
from ..evaluate import evaluate, select_device
from ..text import json_text, shown
from ..tracking import TrackingConfig, check_available, open_run
from ..training import LOSSES, MAX_STEPS, SCHEDULES, TrainConfig, seed_everything, train
from ..weights import CHECKPOINT_FORMAT, apply_weights, is_checkpoint, state_dict_of
from .args import (
    add_data_args,
    add_model_args,
    add_task_args,
    check_writable,
    device,
    finite_float,
    flag_error,
    load_dataset_arg,
    load_spec,
    make_task_from_args,
    non_negative_int,
    positive_int,
    read_weights_arg,
    seed,
)


def _check_images(images, flag: str, **kw) -> None:
    """Images too small for their use: one line naming the image file and the flag to change."""
    try:
        check_images(images, key=flag, **kw)
    except DataError as err:
        raise ArchsearchError(f"{flag}: {err}") from None


def _dump(obj: dict[str, Any]) -> str:
    return json_text(obj, default=float)


# --------------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------------
def _check_finite(result, model: str, weights: str) -> None:
    """A NaN or infinite PSNR/SSIM is a failed evaluation, not a score (NaN weights, an overflowing model)."""
    for s in result.per_image:
        bad = [f"{k} {v}" for k, v in (("PSNR", s.psnr), ("SSIM", s.ssim)) if not math.isfinite(v)]
        if bad:
            source = f" with {shown(weights)}" if weights else ""
            raise ArchsearchError(f"model {model!r}{source} scores {' and '.join(bad)} on image {shown(s.name)}: "
                                  "not a number; its output is not finite (NaN or infinite weights or "
                                  "activations?)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    checkpoint = read_weights_arg(args.weights) if args.weights else None
    ckpt = checkpoint if checkpoint and is_checkpoint(checkpoint) else None
    spec = load_spec(args, ckpt)
    task = make_task_from_args(args, spec, ckpt)
    task.check_model(spec.in_channels, spec.out_channels, spec.scale, spec.global_residual)
    model = build(spec)
    if checkpoint is not None:
        apply_weights(model, state_dict_of(checkpoint, f"--weights {args.weights}"), f"--weights {args.weights}")
    images = load_dataset_arg(args.dataset, "--dataset", color=task.color, data_root=args.data_root, split="test")
    _check_images(images, "--dataset", role="test", factor=task.input_factor(spec.scale),
                  multiple=int(getattr(task, "scale", 1) or 1), border=task.border)
    model.to(select_device(args.device))
    if args.draws > 1 and args.protocol == "dncnn":  # checked before any image is scored
        raise ArchsearchError(f"--draws {args.draws}: the dncnn protocol has one fixed noise draw (its noise ignores "
                              "the seed); use --draws 1 or --protocol default")
    result = evaluate(model, task, images, protocol=args.protocol, seed=args.seed, draws=args.draws, tile=args.tile,
                      overlap=args.overlap)
    _check_finite(result, spec.name, f"--weights {args.weights}" if args.weights else "")
    if args.format == "json":
        out = {"model": spec.name, "dataset": args.dataset, **result.to_dict(per_image=True),
               "images_per_second": round(result.images_per_second, 4)}
        print(_dump(out))
        return 0
    draws = f"; {result.draws} noise draws per image" if result.draws > 1 else ""
    print(f"{spec.name} on {args.dataset} ({task.describe()}; protocol {result.protocol}{draws})")
    if result.draws == 1:
        print(f"{'image':<24} {'PSNR dB':>9} {'SSIM':>7}")
        for s in result.per_image:
            print(f"{s.name:<24} {s.psnr:>9.3f} {s.ssim:>7.4f}")
    else:  # one row per image: its mean over the draws and the draws' spread (sample sd)
        print(f"{'image':<24} {'PSNR dB':>9} {'sd':>6} {'SSIM':>7}")
        for name, pairs in result.by_image().items():
            psnrs, ssims = [p for p, _ in pairs], [s for _, s in pairs]
            print(f"{name:<24} {statistics.fmean(psnrs):>9.3f} {statistics.stdev(psnrs):>6.3f} "
                  f"{statistics.fmean(ssims):>7.4f}")
    print(f"{'mean of ' + str(result.n_images):<24} {result.psnr:>9.3f}" + (" " * 7 if result.draws > 1 else "")
          + f" {result.ssim:>7.4f}")
    return 0



# --------------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------------
def _tracking(args: argparse.Namespace) -> TrackingConfig:
    """``--tensorboard``/``--mlflow`` as a :class:`TrackingConfig`, checked (and the library's presence) before
    any data is read or anything trained."""
    try:
        config = TrackingConfig(tensorboard=args.tensorboard, mlflow=args.mlflow)
    except SpecError as err:
        raise ArchsearchError(f"--{err.path}: {err.message}") from None
    check_available(config, {"tensorboard": "--tensorboard", "mlflow": "--mlflow"})
    return config


def cmd_train(args: argparse.Namespace) -> int:
    spec = load_spec(args, None)
    task = make_task_from_args(args, spec, None)
    task.check_model(spec.in_channels, spec.out_channels, spec.scale, spec.global_residual)
    try:
        config = TrainConfig(
            steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size, lr=args.lr,
            schedule=args.schedule, loss=args.loss, grad_clip=args.grad_clip, seed=args.seed,
            val_every=args.val_every, val_crop=args.val_crop, device=args.device, amp=args.amp,
            channels_last={"on": True, "off": False}.get(args.channels_last, "auto"), compile=args.compile)
    except SpecError as err:
        raise flag_error(err, {}) from None
    tracking_config = _tracking(args)
    out_path = check_writable(args.out or f"{spec.name}.pt", "--out", folder=False)  # before the long work
    train_images = load_dataset_arg(args.dataset, "--dataset", color=task.color, data_root=args.data_root,
                                    split="train")
    val_name = args.val_dataset
    if val_name is None and is_embedded(args.dataset):
        val_name = "default:val"
    val_images = (load_dataset_arg(val_name, "--val-dataset", color=task.color, data_root=args.data_root,
                                   split="val") if val_name and val_name != "none" else [])
    factor = task.input_factor(spec.scale)
    multiple = int(getattr(task, "scale", 1) or 1)
    _check_images(train_images, "--patch-size", role="training", patch_size=config.patch_size, factor=factor,
                  multiple=multiple)
    if val_images:
        _check_images(val_images, "--val-crop" if config.val_crop else "--val-dataset", role="validation",
                      crop=config.val_crop, factor=factor, multiple=multiple, border=task.border)
    seed_everything(args.seed)  # before build: the initial weights depend on the seed too
    model = build(spec)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    tracking = open_run(tracking_config, experiment="archsearch-train", run_name=f"{spec.name}_seed{args.seed}_{stamp}",
                        tags={"model": spec.name, "label": spec.name, "seed": args.seed, "spec_hash": spec.hash,
                              "task": task.describe()})
    try:
        result = train(model, task, train_images, val_images, config, callback=tracking)
    except BaseException:
        if tracking is not None:
            tracking.finish("failed")
        raise
    if tracking is not None:
        tracking.finish(result.status, step=result.steps)
    if not result.diverged:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_path) as tmp:  # a kill or a full disk keeps the previous checkpoint, never half of one
            torch.save({"format": CHECKPOINT_FORMAT, "spec": spec.to_dict(), "task": task.to_dict(),
                        "config": result.config, "result": result.to_dict(),
                        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, tmp)
    row = {"model": spec.name, "dataset": args.dataset, "val_dataset": val_name, "task": task.to_dict(),
           **result.to_dict(), "checkpoint": None if result.diverged else str(out_path)}
    if args.format == "json":
        print(_dump(row))
    else:
        val = f", validation PSNR {result.final_val_psnr:.3f} dB" if result.final_val_psnr is not None else ""
        print(f"{spec.name}: {result.status} after {result.steps} steps ({result.steps_per_second:.2f} steps/s)"
              f", final loss {result.losses[-1]:.4g}{val}" + (f"; {result.reason}" if result.reason else ""))
        if not result.diverged:
            print(f"checkpoint: {out_path}")
    if result.diverged:
        print(f"archsearch train: diverged: {result.reason}", file=sys.stderr)
        return 1
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate`` and ``train``."""
    # the flags' defaults are TrainConfig's (importing it costs little: the package has loaded torch already)
    p = sub.add_parser("evaluate", help="PSNR/SSIM of one model on a dataset",
                       description="Evaluate a zoo model or spec file (with weights) on whole images.")
    add_model_args(p, required=False)
    p.add_argument("--weights", metavar="PATH", help="a state_dict or an archsearch checkpoint (from train)")
    add_task_args(p)
    add_data_args(p, "default")
    p.add_argument("--protocol", choices=("default", "dncnn"), default="default",
                   help="default: clamp + 8-bit rounding, per-image seeded noise; dncnn: the DnCNN authors' test")
    p.add_argument("--seed", type=seed, default=0,
                   help="test-noise seed of the default protocol, 0 <= seed < 2**31 (default 0)")
    p.add_argument("--draws", type=positive_int, default=1,
                   help="noise draws per image (default 1; draw d uses seed + d, the studies' test_draws): the "
                        "table gives each image's mean over its draws and the spread between draws")
    p.add_argument("--tile", type=positive_int, help="tile size for large images (default: only above 4 MP, 512)")
    p.add_argument("--overlap", type=non_negative_int, default=32, help="tile overlap in pixels (default 32)")
    p.add_argument("--device", type=device, default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train one model on a dataset and write a checkpoint",
                       description="Train a zoo model or spec file on random patches; writes a checkpoint.")
    add_model_args(p, required=True)
    add_task_args(p)
    add_data_args(p, "default")
    p.add_argument("--val-dataset", help="validation set (default: default:val with the embedded default, else "
                                         "none); 'none' disables validation")
    d = TrainConfig
    p.add_argument("--steps", type=positive_int, default=d.steps,
                   help=f"training steps, 1..{MAX_STEPS:,} (default {d.steps})")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help=f"patches per step (default {d.batch_size})")
    p.add_argument("--patch-size", type=positive_int, default=d.patch_size,
                   help=f"target patch size (default {d.patch_size})")
    p.add_argument("--lr", type=finite_float, default=d.lr, help=f"learning rate > 0 (default {d.lr:g})")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--grad-clip", type=finite_float, help="clip the gradient norm to this value (> 0)")
    p.add_argument("--seed", type=seed, default=d.seed, help=f"0 <= seed < 2**31 (default {d.seed})")
    p.add_argument("--val-every", type=non_negative_int, default=d.val_every,
                   help=f"validate every N steps (0: at the end only; default {d.val_every})")
    p.add_argument("--val-crop", type=positive_int, help="centre-crop validation images to this size")
    p.add_argument("--device", type=device, default=d.device, help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CPU or CUDA; measured slower on the "
                                                       "2-core AVX-512 CPU, see docs/speed.md)")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="NHWC memory format; auto: on for models whose blocks prefer it (xUnit, MemNet), else off")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward (compiles first)")
    p.add_argument("--out", metavar="PATH", help="checkpoint path (default: <model name>.pt)")
    p.add_argument("--tensorboard", metavar="DIR", help="log the training curves (loss, learning rate, gradient "
                                                        "norm, steps/s, validation PSNR) as TensorBoard event files "
                                                        "under DIR (needs the [tensorboard] extra)")
    p.add_argument("--mlflow", metavar="URI", help="log the same curves as an MLflow run of the experiment "
                                                   "'archsearch-train' (file:PATH or sqlite:///PATH need no server; "
                                                   "needs the [mlflow] extra)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_train)
