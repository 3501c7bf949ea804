"""``archsearch export``: a study's trial (best, by number, or the Pareto set) or a zoo model as standalone files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ArchsearchError


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    if bool(args.zoo) == bool(args.study):
        raise ArchsearchError("export: give a study file (with --trial) or --zoo NAME, not both or neither")
    if args.zoo:
        from ..zoo import zoo_spec

        spec = zoo_spec(args.zoo)
        from ..weights import read_weights, state_dict_of

        state = state_dict_of(read_weights(args.weights), args.weights) if args.weights else None
        out = Path(args.out or f"exports/{args.zoo}")
        paths = export_model(spec, out, state_dict=state, formats=formats,
                             provenance={"source": f"zoo:{args.zoo}", "weights": args.weights or "fresh init"})
        for key, path in paths.items():
            print(f"{key:>12}: {path}")
        return 0
    from ..study.export import export_trials
    from .args import load_study_args

    study = load_study_args(args)
    for t, paths in export_trials(study, args.trial, out=args.out, formats=formats):
        ua = t.user_attrs
        print(f"trial {t.number} ({ua.get('label', '')}, PSNR {ua.get('psnr', float('nan')):.3f} dB, "
              f"{ua.get('n_params'):,} params) -> " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_subcommands(sub) -> None:
    p = sub.add_parser("export", help="export a trial or a zoo model as a standalone torch model",
                       description="Writes NAME.py (torch only), NAME.safetensors, NAME.yaml (spec), NAME.json "
                                   "(counts), and optionally TorchScript and ONNX.")
    p.add_argument("study", nargs="?", help="a study file (its ledger must exist)")
    p.add_argument("--output-dir", help="the study's output folder, if `run` was given --output-dir")
    p.add_argument("--trial", default="best", help="best (default), pareto, or a trial number")
    p.add_argument("--zoo", help="export a zoo model instead of a trial")
    p.add_argument("--weights", help="with --zoo: a safetensors or state_dict file (official DnCNN keys are mapped)")
    p.add_argument("--format", default="py", help="comma-separated: py, torchscript, onnx (py files are always written)")
    p.add_argument("--profile")
    p.add_argument("--out", help="output folder (default: <study output>/export or exports/<zoo name>)")
    p.set_defaults(func=cmd_export)
