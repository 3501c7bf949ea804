"""The ``archsearch`` command line. User errors print one line (no traceback) and exit with status 2; Ctrl-C
prints one line and exits 130. Each subcommand lives in the module named for it; :mod:`.args` holds the
arguments they share."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import ArchsearchError
from ..text import shown
from . import data, export, inspect, report, study, train

COMMAND_MODULES = (inspect, study, train, data, report, export)
#: The commands that continue where an interrupted run stopped when run again.
RESUMABLE_COMMANDS = ("run",)


class UsageError(ArchsearchError):
    """A command line argparse refused; ``str`` is the one line to print (``archsearch CMD: error: ...``)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr and exit 2 (no usage block): the same contract as
    every other user error. ``--help`` still prints the usage."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archsearch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"archsearch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the subcommand (argparse would blame the top-level parser)
            prog = f"archsearch {args.command}" if getattr(args, "command", None) else "archsearch"
            raise UsageError(f"{prog}: error: unrecognized arguments: {' '.join(extra)} (see `{prog} --help`)")
    except UsageError as err:
        print(shown(str(err).replace("\n", " ")), file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except ArchsearchError as err:
        # one line, whatever the message holds; control characters a name brought in are escaped, not sent to the
        # terminal
        text = shown(" ".join(str(err).split("\n")))
        print(f"archsearch {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # only a study run keeps its finished trials and picks up the rest; evaluate, train, export, ... start over
        hint = "; re-run the same command to resume" if args.command in RESUMABLE_COMMANDS else ""
        print(f"archsearch {args.command}: interrupted (Ctrl-C){hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `archsearch inspect ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
