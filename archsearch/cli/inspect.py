"""``archsearch inspect``: parameters, MACs and roles of zoo models, spec files and search-space designs, counted
from the spec alone."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..counting import count, macs
from ..errors import ArchsearchError, BudgetError
from ..families import get_family
from ..schema import load_yaml
from ..solver import Budget, solve
from ..spec import ROLES, GraphSpec
from ..study.space import load_search_space
from ..text import json_text, shown
from ..zoo import zoo_entry, zoo_names, zoo_spec
from .args import parse_size, positive_float


def _resolve(target: str, budget=None) -> list:
    """Specs from a zoo name, a spec file, or a search-space file (one spec per design and searched choice;
    with ``budget`` the design's free knob is solved for it)."""
    if target in zoo_names():
        return [zoo_spec(target)]
    path = Path(target)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise ArchsearchError(f"{shown(target)}: no such file")
        if path.suffix != ".json":
            try:
                data = load_yaml(path.read_text())
            except Exception:  # GraphSpec.from_file reports malformed files with the file name
                data = None
            if isinstance(data, dict) and "designs" in data:
                return _space_specs(path, budget)
        return [GraphSpec.from_file(path)]
    return [zoo_spec(target)]  # raises: unknown zoo model, with the list and a did-you-mean


def _space_specs(path: Path, budget) -> list:
    out = []
    for design in _load_space(path).designs:
        first = next(iter(design.search.items()), None)
        choices = [{}] if first is None or first[1].choices is None else [{first[0]: c} for c in first[1].choices]
        for extra in choices:
            args = {**design.fixed, **extra}
            if budget is not None and design.free_knob:
                try:
                    spec = solve(design.family, design.free_knob, budget, args).spec
                except BudgetError as err:
                    raise ArchsearchError(f"--budget: {path}: design {design.name!r}: {err}") from None
            else:
                spec = get_family(design.family)(**args)
            label = design.name + "".join(f" {k}={v}" for k, v in extra.items())
            out.append(GraphSpecLabel(label, spec))
    return out


def _load_space(path: Path):
    return load_search_space(path)


class GraphSpecLabel:
    """A spec shown under another name (a search-space design and choice)."""

    def __init__(self, label: str, spec):
        self.label, self.spec = label, spec


def _row(item, size):
    spec = item.spec if isinstance(item, GraphSpecLabel) else item
    c = count(spec)
    row = {
        "name": item.label if isinstance(item, GraphSpecLabel) else spec.name,
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
    if args.list:
        if args.format == "json":
            for name in zoo_names():
                e = zoo_entry(name)
                print(json_text({"name": name, "family": e.family, "arguments": e.kwargs, "paper": e.paper,
                                  "reported": e.reported, "task": e.task}))
        else:
            print(f"{'name':<22} {'family':<11} {'paper size':<32} source")
            for name in zoo_names():
                e = zoo_entry(name)
                print(f"{name:<22} {e.family:<11} {e.reported:<32} {e.paper}")
        return 0
    if not args.targets:
        raise ArchsearchError("inspect: name a zoo model or a spec file (or use --list to see the zoo)")
    budget = None
    if args.budget is not None:
        budget = Budget(args.budget_metric, args.budget)
    rows = [_row(item, args.input_size) for t in args.targets for item in _resolve(t, budget)]
    if args.format == "json":
        for row in rows:
            print(json_text(row))
        return 0
    head = f"{'name':<28} {'params':>11} {'MACs/pixel':>13} {'act %':>7}" + "".join(f" {r:>13}" for r in ROLES)
    if args.input_size:
        head += f" {'MACs @ ' + 'x'.join(map(str, args.input_size)):>18}"
    print(head)
    for row in rows:
        line = (f"{row['name']:<28} {row['params']:>11,} {row['macs_per_pixel']:>13,.1f} "
                f"{row['activation_param_pct']:>7.2f}" + "".join(f" {row['params_by_role'][r]:>13,}" for r in ROLES))
        if args.input_size:
            line += f" {row['macs']:>18,}"
        print(line)
    return 0


def add_subcommands(sub) -> None:
    p = sub.add_parser("inspect", help="parameters, MACs/pixel, activation-parameter %% and roles of models",
                       description="Count zoo models, spec files (YAML/JSON) or the designs of a search-space file "
                                   "without building them.")
    p.add_argument("targets", nargs="*", help="zoo names (see --list), spec files or search-space files")
    p.add_argument("--budget", type=positive_float,
                   help="search-space files: solve each design's free knob for this budget (> 0)")
    p.add_argument("--budget-metric", choices=("params", "macs"), default="params")
    p.add_argument("--list", action="store_true", help="list the reference zoo")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default) or one JSON object per model")
    p.add_argument("--input-size", type=parse_size, metavar="HxW",
                   help="also give the exact MACs of one forward pass at this input size")
    p.set_defaults(func=cmd_inspect)
