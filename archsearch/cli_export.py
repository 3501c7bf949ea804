"""``archsearch export``: a study's trial (best, by number, or the Pareto set) or a zoo model as standalone files."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import ArchsearchError


def select_trials(study, which: str):
    """The finished trials to export: ``best`` (highest PSNR), a trial number, or ``pareto`` (PSNR vs params)."""
    from .study import ledger as L

    ostudy = L.open_study(study, create=False)
    trials = ostudy.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE" and "checkpoint" in t.user_attrs]
    if which == "best":
        if not complete:
            raise ArchsearchError(f"study {study.name!r} has no complete trial to export yet")
        return [max(complete, key=lambda t: t.user_attrs["psnr"])]
    if which == "pareto":
        if not complete:
            raise ArchsearchError(f"study {study.name!r} has no complete trial to export yet")
        from .report import pareto_mask

        mask = pareto_mask([t.user_attrs["n_params"] for t in complete], [t.user_attrs["psnr"] for t in complete])
        return sorted((t for t, keep in zip(complete, mask) if keep), key=lambda t: t.user_attrs["n_params"])
    try:
        number = int(which)
    except ValueError:
        raise ArchsearchError(f"--trial must be best, pareto or a trial number, got {which!r}") from None
    match = [t for t in trials if t.number == number]
    if not match:
        numbers = ", ".join(str(t.number) for t in trials) or "none"
        raise ArchsearchError(f"study {study.name!r} has no trial {number}; trials: {numbers}")
    t = match[0]
    if t.state.name != "COMPLETE":
        reason = t.user_attrs.get("fail_reason", "")
        raise ArchsearchError(f"trial {number} of study {study.name!r} is {t.state.name}"
                              f"{f' ({reason})' if reason else ''}: only complete trials have weights to export")
    return [t]


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    if bool(args.zoo) == bool(args.study):
        raise ArchsearchError("export: give a study file (with --trial) or --zoo NAME, not both or neither")
    if args.zoo:
        from .zoo import zoo_spec

        spec = zoo_spec(args.zoo)
        from .weights import read_weights, state_dict_of

        state = state_dict_of(read_weights(args.weights), args.weights) if args.weights else None
        out = Path(args.out or f"exports/{args.zoo}")
        paths = export_model(spec, out, state_dict=state, formats=formats,
                             provenance={"source": f"zoo:{args.zoo}", "weights": args.weights or "fresh init"})
        for key, path in paths.items():
            print(f"{key:>12}: {path}")
        return 0
    from safetensors.torch import load_file

    from .spec import GraphSpec
    from .study.schema import load_study

    study = load_study(args.study, args.profile)
    out = Path(args.out) if args.out else Path(study.output_dir) / "export"
    for t in select_trials(study, args.trial):
        ua = t.user_attrs
        spec = GraphSpec.from_file(ua["spec_path"])
        name = f"{study.name}_trial{t.number}"
        paths = export_model(spec, out, state_dict=load_file(ua["checkpoint"]), formats=formats, name=name,
                             provenance={"source": f"study:{study.name}", "trial": t.number, "psnr": ua.get("psnr"),
                                         "seed": ua.get("seed"), "label": ua.get("label"),
                                         "fidelity": study.config.fidelity})
        print(f"trial {t.number} ({ua.get('label', '')}, PSNR {ua.get('psnr', float('nan')):.3f} dB, "
              f"{ua.get('n_params'):,} params) -> " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_subcommands(sub) -> None:
    p = sub.add_parser("export", help="export a trial or a zoo model as a standalone torch model",
                       description="Writes NAME.py (torch only), NAME.safetensors, NAME.yaml (spec), NAME.json "
                                   "(counts), and optionally TorchScript and ONNX.")
    p.add_argument("study", nargs="?", help="a study file (its ledger must exist)")
    p.add_argument("--trial", default="best", help="best (default), pareto, or a trial number")
    p.add_argument("--zoo", help="export a zoo model instead of a trial")
    p.add_argument("--weights", help="with --zoo: a safetensors or state_dict file (official DnCNN keys are mapped)")
    p.add_argument("--format", default="py", help="comma-separated: py, torchscript, onnx (py files are always written)")
    p.add_argument("--profile")
    p.add_argument("--out", help="output folder (default: <study output>/export or exports/<zoo name>)")
    p.set_defaults(func=cmd_export)
