"""The ``archsearch`` command line. User errors print one line (no traceback) and exit with status 2; Ctrl-C
prints one line and exits 130. Each subcommand lives in the module named for it; :mod:`.args` holds the
arguments they share."""

from __future__ import annotations

import argparse
import sys

from ..errors import ArchsearchError
from . import data, export, inspect, report, study, train

COMMAND_MODULES = (inspect, study, train, data, report, export)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="archsearch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArchsearchError as err:
        print(f"archsearch {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"archsearch {args.command}: interrupted (Ctrl-C); re-run the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `archsearch inspect ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
