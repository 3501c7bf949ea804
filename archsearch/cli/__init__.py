"""The ``archsearch`` command line. Errors print one line (no traceback): bad input exits with status 2 (a corrupt
ledger included: it must be moved aside), a failure of the environment -- a read-only or missing folder, a full
disk, a ledger database that refuses a write -- exits 1; Ctrl-C prints one line and exits 130. Each subcommand
lives in the module named for it; :mod:`.args` holds the arguments they share."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..allocator import keep_freed_memory
from ..errors import ArchsearchError, os_error_text
from ..study.ledger import fresh_command
from ..study.loader import load_study
from ..study.storage import corrupt_hint, ledger_fault, sqlite_path
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


#: What ``archsearch --help`` says: what the tool does and the usual first commands (the module docstring above
#: is for developers).
DESCRIPTION = """\
Architecture search and ablation for image-restoration networks: which design is best at equal parameter or
MAC budget? A study file names the designs, the budget, a sweep or a search and the training; archsearch trains
every point over several seeds into an Optuna ledger and decides the papers' claims with confidence intervals.

first commands:
  archsearch run studies/xunit_budget.yaml --plan   what the main study would train, and for how long
  archsearch run studies/xunit_budget.yaml          run it (re-run the same command to resume)
  archsearch report studies/xunit_budget.yaml       report.html: figures, Pareto fronts, claim verdicts
  archsearch export studies/xunit_budget.yaml       the best trial as a standalone torch model
  archsearch inspect --list                         the reference zoo, with exact sizes

Errors are one line: exit 2 for bad input, 1 when the environment failed (a full disk, a read-only folder).
Every command answers --help."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archsearch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    keep_freed_memory()  # speed only (archsearch/allocator.py)
    try:
        return args.func(args)
    except ArchsearchError as err:
        return _error(args, str(err), err.exit_code)
    except KeyboardInterrupt:
        # only a study run keeps its finished trials and picks up the rest; evaluate, train, export, ... start over
        hint = "; re-run the same command to resume" if args.command in RESUMABLE_COMMANDS else ""
        print(f"archsearch {args.command}: interrupted (Ctrl-C){hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `archsearch inspect ... | head`
        return 0
    except OSError as err:  # a read-only or vanished folder, a full disk: the environment, not the input
        return _error(args, os_error_text(err), 1)
    except Exception as err:
        fault = _ledger_fault(err, args)
        if fault is None:  # a bug: the traceback is what a report needs
            raise
        return _error(args, str(fault), fault.exit_code)


def _error(args: argparse.Namespace, text: str, code: int) -> int:
    # one line, whatever the message holds; control characters a name brought in are escaped, not sent to the
    # terminal
    text = shown(" ".join(text.split("\n")))
    print(f"archsearch {args.command}: error: {text}", file=sys.stderr)
    return code


def _ledger_fault(err: BaseException, args: argparse.Namespace) -> ArchsearchError | None:
    """A database error met after the ledger was opened (a file corrupted under a running command, a disk that
    filled up) as one line naming the command's ledger, when the command names one study."""
    url = hint = None
    study_file = getattr(args, "study", None)
    if isinstance(study_file, list):
        study_file = study_file[0] if len(study_file) == 1 else None
    if study_file:
        try:
            s = load_study(study_file, getattr(args, "profile", None), getattr(args, "output_dir", None))
            url = s.storage_url
            path = sqlite_path(url)
            hint = corrupt_hint(path, fresh_command(s)) if path is not None else ""
        except Exception:  # the study file itself is the problem: report the database error without its name
            url = None
    return ledger_fault(err, url, hint or "")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
