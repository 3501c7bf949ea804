"""The ``archsearch`` command line. User errors print one line (no traceback) and exit with status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ArchsearchError


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h < 1 or w < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x256, got {text!r}") from None
    return h, w


def _resolve(target: str):
    """A spec from a zoo name or a spec file."""
    from .spec import GraphSpec
    from .zoo import zoo_names, zoo_spec

    if target in zoo_names():
        return zoo_spec(target)
    path = Path(target)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise ArchsearchError(f"{target}: no such file")
        return GraphSpec.from_file(path)
    return zoo_spec(target)  # raises: unknown zoo model, with the list and a did-you-mean


def _row(spec, size):
    from .counting import count, macs

    c = count(spec)
    row = {
        "name": spec.name,
        "hash": spec.hash,
        "params": c.params,
        "macs_per_pixel": c.macs_per_pixel,
        "activation_param_pct": round(c.activation_param_pct, 4),
        "params_by_role": dict(c.params_by_role),
        "scale": spec.scale,
        "blocks": len(spec.nodes),
    }
    if size:
        row["input_size"] = list(size)
        row["macs"] = macs(spec, *size)
    return row


def cmd_inspect(args: argparse.Namespace) -> int:
    from .spec import ROLES
    from .zoo import zoo_entry, zoo_names

    if args.list:
        if args.format == "json":
            for name in zoo_names():
                e = zoo_entry(name)
                print(json.dumps({"name": name, "family": e.family, "arguments": e.kwargs, "paper": e.paper,
                                  "reported": e.reported, "task": e.task}))
        else:
            print(f"{'name':<22} {'family':<11} {'paper size':<32} source")
            for name in zoo_names():
                e = zoo_entry(name)
                print(f"{name:<22} {e.family:<11} {e.reported:<32} {e.paper}")
        return 0
    if not args.targets:
        raise ArchsearchError("inspect: name a zoo model or a spec file (or use --list to see the zoo)")
    rows = [_row(_resolve(t), args.input_size) for t in args.targets]
    if args.format == "json":
        for row in rows:
            print(json.dumps(row))
        return 0
    head = f"{'name':<22} {'params':>11} {'MACs/pixel':>13} {'act %':>7}" + "".join(f" {r:>13}" for r in ROLES)
    if args.input_size:
        head += f" {'MACs @ ' + 'x'.join(map(str, args.input_size)):>18}"
    print(head)
    for row in rows:
        line = (f"{row['name']:<22} {row['params']:>11,} {row['macs_per_pixel']:>13,.1f} "
                f"{row['activation_param_pct']:>7.2f}" + "".join(f" {row['params_by_role'][r]:>13,}" for r in ROLES))
        if args.input_size:
            line += f" {row['macs']:>18,}"
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="archsearch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="parameters, MACs/pixel, activation-parameter %% and roles of models",
                       description="Count a zoo model or a spec file (YAML/JSON) without building it.")
    p.add_argument("targets", nargs="*", help="zoo names (see --list) or spec files")
    p.add_argument("--list", action="store_true", help="list the reference zoo")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default) or one JSON object per model")
    p.add_argument("--input-size", type=_parse_size, metavar="HxW",
                   help="also give the exact MACs of one forward pass at this input size")
    p.set_defaults(func=cmd_inspect)
    from .cli_study import add_subcommands as add_study_commands

    add_study_commands(sub)
    from .cli_restore import add_subcommands as add_restore_commands

    add_restore_commands(sub)
    from .cli_report import add_subcommands as add_report_commands

    add_report_commands(sub)
    from .cli_export import add_subcommands as add_export_commands

    add_export_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArchsearchError as err:
        print(f"archsearch {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `archsearch inspect ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
