"""``archsearch export``: a study's trial (best, by number, or the Pareto set) or a zoo model as standalone files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ArchsearchError, did_you_mean
from ..export import FORMATS, export_model
from ..study.winners import export_trials
from ..weights import state_dict_of
from ..zoo import zoo_spec
from .args import add_study_args, check_writable, load_study_args, read_weights_arg


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    for f in formats:
        if f not in FORMATS:
            raise ArchsearchError(f"--format: unknown export format {f!r}{did_you_mean(f, FORMATS)}; allowed: "
                                  f"{', '.join(FORMATS)} (comma-separated)")
    if not formats:
        raise ArchsearchError(f"--format: give one or more of {', '.join(FORMATS)}, got {text!r}")
    return formats


def _trial(text: str) -> str:
    if text in ("best", "pareto") or (text.isdigit() and text.isascii()):
        return text
    raise ArchsearchError(f"--trial: must be best, pareto or a trial number, got {text!r}")


def cmd_export(args: argparse.Namespace) -> int:
    formats = _formats(args.format)
    if bool(args.zoo) == bool(args.study):
        raise ArchsearchError("give a study file (with --trial) or --zoo NAME, not both or neither")
    if args.out:
        check_writable(args.out, "--out", folder=True)
    if args.zoo:
        spec = zoo_spec(args.zoo)

        state = (state_dict_of(read_weights_arg(args.weights), f"--weights {args.weights}") if args.weights
                 else None)
        out = Path(args.out or f"exports/{args.zoo}")
        if not args.out:
            check_writable(out, "--out", folder=True)
        paths = export_model(spec, out, state_dict=state, formats=formats, weights_source=args.weights or "",
                             provenance={"source": f"zoo:{args.zoo}", "weights": args.weights or "fresh init"})
        for key, path in paths.items():
            print(f"{key:>12}: {path}")
        return 0
    if args.weights:
        raise ArchsearchError("--weights: only with --zoo (a study's trials export their own trained weights)")
    trial = _trial(args.trial)
    study = load_study_args(args)
    for t, paths in export_trials(study, trial, out=args.out, formats=formats, any_config=args.any_config):
        ua = t.user_attrs
        print(f"trial {t.number} ({ua.get('label', '')}, PSNR {ua.get('psnr', float('nan')):.3f} dB, "
              f"{ua.get('n_params'):,} params) -> " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_subcommands(sub) -> None:
    p = sub.add_parser("export", help="export a trial or a zoo model as a standalone torch model",
                       description="Writes NAME.py (torch only), NAME.safetensors, NAME.yaml (spec), NAME.json "
                                   "(counts, dynamic dimensions, ONNX exporter and opset), and optionally NAME.pt2 "
                                   "(torch.export; load with torch.export.load), NAME.onnx (the dynamo exporter) "
                                   "and NAME.torchscript.pt (TorchScript: deprecated by PyTorch, use pt2).")
    add_study_args(p, optional=True, reader=True)
    p.add_argument("--trial", default="best", help="best (default), pareto, or a trial number")
    p.add_argument("--zoo", help="export a zoo model instead of a trial")
    p.add_argument("--weights", help="with --zoo: a safetensors or state_dict file (official DnCNN keys are mapped)")
    p.add_argument("--format", default="py",
                   help="comma-separated: py, pt2 (torch.export, dynamic batch/height/width where the model "
                        "allows), onnx (dynamo exporter), torchscript (deprecated: use pt2); py files are "
                        "always written")
    p.add_argument("--out", help="output folder (default: <study output>/export or exports/<zoo name>)")
    p.set_defaults(func=cmd_export)
