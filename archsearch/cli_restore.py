"""``archsearch train``, ``archsearch evaluate`` and ``archsearch data`` (registered by :func:`add_subcommands`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import ArchsearchError
from .weights import CHECKPOINT_FORMAT


# --------------------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------------------
def _model_args(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--zoo", metavar="NAME", help="a reference zoo model (see `archsearch inspect --list`)")
    g.add_argument("--spec", metavar="FILE", help="a spec file (YAML/JSON)")


def _task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", help="denoise, sr or jpeg (default: the checkpoint's, else the zoo model's)")
    p.add_argument("--sigma", type=float, help="denoise: noise level on the 0-255 scale, in (0, 255] (default 25)")
    p.add_argument("--scale", type=int, help="sr: 2, 3 or 4 (default: the model's scale if > 1, else 2)")
    p.add_argument("--quality", type=int, help="jpeg: quality 1-100 (default 10)")
    p.add_argument("--channels", type=int, help="1 (grayscale) or 3 (RGB); default: the model's")
    p.add_argument("--residual", action="store_true",
                   help="denoise: the model predicts the noise (output = input - model(input))")


def _data_args(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--dataset", default=default,
                   help=f"default[:train|val|test] (embedded), a standard set (Train400, BSD68, Set12, Set5, Set14, "
                        f"classic5, LIVE1; read from the data root) or a folder of images (default {default})")
    p.add_argument("--data-root", metavar="DIR",
                   help="folder holding the standard sets (default: $ARCHSEARCH_DATA_ROOT)")


def _load_spec(args: argparse.Namespace, checkpoint: dict[str, Any] | None):
    from .spec import GraphSpec
    from .zoo import zoo_spec

    if args.zoo:
        return zoo_spec(args.zoo)
    if args.spec:
        path = Path(args.spec)
        if not path.is_file():
            raise ArchsearchError(f"{path}: no such spec file")
        return GraphSpec.from_file(path)
    if checkpoint is not None and "spec" in checkpoint:
        return GraphSpec.from_dict(checkpoint["spec"])
    raise ArchsearchError("name the model with --zoo NAME or --spec FILE (or give a checkpoint with --weights)")


def _make_task(args: argparse.Namespace, spec, checkpoint: dict[str, Any] | None):
    from .tasks import make_task, task_from_dict
    from .zoo import zoo_entry, zoo_names

    given = any(v is not None for v in (args.sigma, args.scale, args.quality, args.channels)) or args.residual
    if args.task is None and checkpoint is not None and "task" in checkpoint and not given:
        return task_from_dict(checkpoint["task"])
    name = args.task
    if name is None and checkpoint is not None and "task" in checkpoint:
        name = checkpoint["task"]["task"]
    if name is None and spec.name in zoo_names():
        name = zoo_entry(spec.name).task or None
    if name is None:
        raise ArchsearchError("name the task with --task (allowed: denoise, sr, jpeg)")
    channels = args.channels if args.channels is not None else spec.in_channels
    scale = args.scale
    if scale is None and name == "sr":
        scale = spec.scale if spec.scale > 1 else None
    return make_task(name, channels=channels, sigma=args.sigma, scale=scale, quality=args.quality,
                     residual_learning=True if args.residual else None)


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, default=float)


# --------------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from .builder import build
    from .data import load_dataset
    from .evaluate import evaluate, select_device
    from .weights import apply_weights, is_checkpoint, read_weights, state_dict_of

    checkpoint = read_weights(args.weights) if args.weights else None
    ckpt = checkpoint if checkpoint and is_checkpoint(checkpoint) else None
    spec = _load_spec(args, ckpt)
    task = _make_task(args, spec, ckpt)
    task.check_model(spec.in_channels, spec.out_channels, spec.scale, spec.global_residual)
    model = build(spec)
    if checkpoint is not None:
        apply_weights(model, state_dict_of(checkpoint, args.weights), args.weights)
    images = load_dataset(args.dataset, color=task.color, data_root=args.data_root, split="test")
    device = select_device(args.device)
    model.to(device)
    result = evaluate(model, task, images, protocol=args.protocol, seed=args.seed, tile=args.tile,
                      overlap=args.overlap)
    if args.format == "json":
        out = {"model": spec.name, "dataset": args.dataset, **result.to_dict(per_image=True),
               "images_per_second": round(result.images_per_second, 4)}
        print(_dump(out))
        return 0
    print(f"{spec.name} on {args.dataset} ({task.describe()}; protocol {result.protocol})")
    print(f"{'image':<24} {'PSNR dB':>9} {'SSIM':>7}")
    for s in result.per_image:
        print(f"{s.name:<24} {s.psnr:>9.3f} {s.ssim:>7.4f}")
    print(f"{'mean of ' + str(result.n_images):<24} {result.psnr:>9.3f} {result.ssim:>7.4f}")
    return 0


# --------------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .builder import build
    from .data import is_embedded, load_dataset
    from .training import TrainConfig, seed_everything, train

    spec = _load_spec(args, None)
    task = _make_task(args, spec, None)
    task.check_model(spec.in_channels, spec.out_channels, spec.scale, spec.global_residual)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size, lr=args.lr,
        schedule=args.schedule, loss=args.loss, grad_clip=args.grad_clip, seed=args.seed,
        val_every=args.val_every, val_crop=args.val_crop, device=args.device, amp=args.amp,
        channels_last=args.channels_last)
    train_images = load_dataset(args.dataset, color=task.color, data_root=args.data_root, split="train")
    val_name = args.val_dataset
    if val_name is None and is_embedded(args.dataset):
        val_name = "default:val"
    val_images = (load_dataset(val_name, color=task.color, data_root=args.data_root, split="val")
                  if val_name and val_name != "none" else [])
    seed_everything(args.seed)  # before build: the initial weights depend on the seed too
    model = build(spec)
    result = train(model, task, train_images, val_images, config)
    out_path = Path(args.out or f"{spec.name}.pt")
    if not result.diverged:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": CHECKPOINT_FORMAT, "spec": spec.to_dict(), "task": task.to_dict(),
                    "config": config.to_dict(), "result": result.to_dict(),
                    "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, out_path)
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


# --------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------
def cmd_data_fetch(args: argparse.Namespace) -> int:
    from .fetch import fetch_dataset

    files = fetch_dataset(args.name, args.url, args.dest, manifest_url=args.manifest_url)
    print(f"{args.name}: {len(files)} files verified in {files[0].parent}")
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from .data import EMBEDDED_SPLIT, STANDARD_SETS, data_root, list_image_files

    for split, names in EMBEDDED_SPLIT.items():
        print(f"default:{split:<6} {len(names):>4} images (embedded: {', '.join(names)})")
    root = data_root(args.data_root)
    for name in STANDARD_SETS:
        folder = root / name if root else None
        if folder is not None and folder.is_dir():
            try:
                state = f"{len(list_image_files(folder)):>4} images in {folder}"
            except ArchsearchError as err:
                state = f"   - {err}"
        else:
            state = "   - not found" + (f" under {root}" if root else " (no data root set: ARCHSEARCH_DATA_ROOT)")
        print(f"{name:<14} {state}")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register ``train``, ``evaluate`` and ``data`` on the main parser's subparsers."""
    p = sub.add_parser("evaluate", help="PSNR/SSIM of one model on a dataset",
                       description="Evaluate a zoo model or spec file (with weights) on whole images.")
    _model_args(p, required=False)
    p.add_argument("--weights", metavar="PATH", help="a state_dict or an archsearch checkpoint (from train)")
    _task_args(p)
    _data_args(p, "default")
    p.add_argument("--protocol", choices=("default", "dncnn"), default="default",
                   help="default: clamp + 8-bit rounding, per-image seeded noise; dncnn: the DnCNN authors' test")
    p.add_argument("--seed", type=int, default=0, help="test-noise seed of the default protocol (default 0)")
    p.add_argument("--tile", type=int, help="tile size for large images (default: only above 4 MP, 512)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default 32)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train one model on a dataset and write a checkpoint",
                       description="Train a zoo model or spec file on random patches; writes a checkpoint.")
    _model_args(p, required=True)
    _task_args(p)
    _data_args(p, "default")
    p.add_argument("--val-dataset", help="validation set (default: default:val with the embedded default, else "
                                         "none); 'none' disables validation")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=40, help="target patch size (default 40)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=("step", "cosine", "constant"), default="step")
    p.add_argument("--loss", choices=("l1", "l2"), default="l2")
    p.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, default=0, help="validate every N steps (default: at the end)")
    p.add_argument("--val-crop", type=int, help="centre-crop validation images to this size")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (CUDA only)")
    p.add_argument("--out", metavar="PATH", help="checkpoint path (default: <model name>.pt)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("data", help="list or download datasets", description="Datasets: list, fetch.")
    dsub = p.add_subparsers(dest="data_command", required=True)
    q = dsub.add_parser("fetch", help="download a standard set and verify its sha256 sums")
    q.add_argument("name", help="set name, e.g. Set12")
    q.add_argument("--url", help="base URL holding MANIFEST.sha256 and the files (default: $ARCHSEARCH_DATA_URL)")
    q.add_argument("--dest", help="data root to write into (default: $ARCHSEARCH_DATA_ROOT)")
    q.add_argument("--manifest-url", help="manifest URL (default: <url>/MANIFEST.sha256)")
    q.set_defaults(func=cmd_data_fetch)
    q = dsub.add_parser("list", help="the embedded split and which standard sets the data root holds")
    q.add_argument("--data-root", metavar="DIR", help="default: $ARCHSEARCH_DATA_ROOT")
    q.set_defaults(func=cmd_data_list)
