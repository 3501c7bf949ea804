"""Argument helpers shared by the subcommands: sizes, the study trio (file, ``--profile``, ``--output-dir``),
models, tasks and datasets."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ..counting import check_size
from ..data import DataError, load_dataset
from ..errors import WRITE_REFUSALS, ArchsearchError, SpecError, StorageFault, os_error_text
from ..spec import GraphSpec
from ..study.loader import load_study
from ..tasks import TASKS, TaskError, make_task, task_error, task_from_dict, task_settings
from ..text import shown
from ..training import DEVICE, MAX_SEED
from ..weights import WeightsError, read_weights
from ..zoo import zoo_entry, zoo_names, zoo_spec


# ---------------------------------------------------------------------------------------------------------
# argument types: argparse turns their ArgumentTypeError into one line naming the flag
# ---------------------------------------------------------------------------------------------------------
def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def seed(text: str) -> int:
    """A seed: an integer with 0 <= seed < 2**31."""
    v = _int(text)
    if not 0 <= v < MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer with 0 <= seed < 2**31, got {text}")
    return v


def positive_int(text: str) -> int:
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return v


def workers_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be auto or an integer >= 1, got {text}") from None


def non_negative_int(text: str) -> int:
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return v


def finite_float(text: str) -> float:
    return _float(text)


def positive_float(text: str) -> float:
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def device(text: str) -> str:
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def check_writable(path: str | Path, flag: str, *, folder: bool) -> Path:
    """Check before any long work that ``path`` (a file, or a ``folder``) can be written: it is not the other
    kind of thing, and its nearest existing parent is a folder in which a file can be created (probed with a
    temporary file, removed at once). Nothing is left behind; errors name the flag and the path. A folder that
    refuses the probe (read-only, full, no permission) is :class:`~archsearch.errors.StorageFault` (exit 1)."""
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise ArchsearchError(f"{flag} {shown(p)}: exists and is not a folder")
    if not folder and p.is_dir():
        raise ArchsearchError(f"{flag} {shown(p)}: is a folder; give a file path")
    anc = p if folder else p.parent
    anc = Path(os.path.abspath(anc))
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ArchsearchError(f"{flag} {shown(p)}: {shown(anc)} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=anc, prefix=".archsearch-write-check-")
    except OSError as err:
        err.filename = str(anc)  # the folder, not the probe's random name
        text = f"{flag} {shown(p)}: cannot write in it: {os_error_text(err)}"
        # a read-only, full or forbidden folder is the environment (exit 1); a place no file can ever be made in
        # (a pseudo file system such as /proc) is a wrong argument (exit 2)
        raise (StorageFault(text) if err.errno in WRITE_REFUSALS else ArchsearchError(text)) from None
    os.close(fd)
    os.unlink(probe)
    return p


def flag_error(err: SpecError, flags: dict[str, str]) -> ArchsearchError:
    """A settings error (``lr: must be ...``) restated with the command-line flag that set it (``--lr``)."""
    key = err.path.split(".")[0].split("[")[0]
    flag = flags.get(key, "--" + key.replace("_", "-"))
    return ArchsearchError(f"{flag}: {err.message}")


def read_weights_arg(path: str):
    """``read_weights`` with its errors prefixed by the flag (``--weights bad.pt: not a readable ...``)."""
    try:
        return read_weights(path)
    except WeightsError as err:
        raise ArchsearchError(f"--weights {err}") from None


def load_dataset_arg(name: str, flag: str, **kw):
    """``load_dataset`` with its errors prefixed by the flag that named the dataset (``--dataset``)."""
    try:
        return load_dataset(name, **kw)
    except DataError as err:
        raise ArchsearchError(f"{flag}: {err}") from None


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h < 1 or w < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x256, got {text!r}") from None
    return h, w


def add_study_args(p: argparse.ArgumentParser, *, optional: bool = False, many: bool = False,
                   reader: bool = False) -> None:
    """The three arguments that name a study's ledger: the file (``optional`` where a command can do without
    one, e.g. ``export --zoo``; ``many``: one or more files, ``args.study`` a list), its profile, and the output
    folder; ``reader`` (commands that only read the ledger) adds ``--any-config``."""
    p.add_argument("study", nargs="+" if many else "?" if optional else None,
                   help="a study file, e.g. studies/xunit_budget.yaml" + (" (several with --reproduction)"
                                                                          if many else ""))
    p.add_argument("--profile", help="a profile of the study file (e.g. paper, smoke, cpu_std); report "
                                     "--reproduction takes a comma-separated list (default,cpu_std)")
    p.add_argument("--output-dir", help="the study's output folder (default runs/<study>; give the same one to "
                                        "every command of a study run with --output-dir)")
    if reader:
        p.add_argument("--any-config", action="store_true",
                       help="read a ledger written under other settings than the study file's (refused otherwise: "
                            "its trials are not this study's)")


def load_study_args(args: argparse.Namespace):
    """The study named by :func:`add_study_args`'s arguments, validated (nothing is written)."""
    return load_study(args.study, args.profile, args.output_dir)


def add_model_args(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--zoo", metavar="NAME", help="a reference zoo model (see `archsearch inspect --list`)")
    g.add_argument("--spec", metavar="FILE", help="a spec file (YAML/JSON)")


def add_task_args(p: argparse.ArgumentParser) -> None:
    """``--task`` and one ``--<setting>`` flag per setting of every registered task (:data:`archsearch.tasks.TASKS`):
    a new task brings its flags with it."""
    p.add_argument("--task", help=f"{', '.join(TASKS)} (default: the checkpoint's, else the zoo model's)")
    p.add_argument("--channels", type=_int, help="1 (grayscale) or 3 (RGB); default: the model's")
    seen: set[str] = set()
    for kind, cls in TASKS.items():
        for name, tp in task_settings(kind).items():
            if name in seen:
                continue
            seen.add(name)
            flag, text = "--" + name.replace("_", "-"), f"{kind}: {cls.setting_help.get(name, name)}"
            if str(tp).startswith("bool"):
                p.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=text)
            else:
                p.add_argument(flag, dest=name, type=finite_float if str(tp).startswith("float") else _int, help=text)


def task_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The task settings given on the command line (flags of :func:`add_task_args` that were set)."""
    names = {n for kind in TASKS for n in task_settings(kind)}
    return {n: getattr(args, n) for n in sorted(names) if getattr(args, n, None) is not None}


def add_data_args(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--dataset", default=default,
                   help=f"default[:train|val|test] (embedded), a standard set (Train400, BSD68, Set12, Set5, Set14, "
                        f"classic5, LIVE1; read from the data root) or a folder of images (default {default})")
    p.add_argument("--data-root", metavar="DIR",
                   help="folder holding the standard sets (default: $ARCHSEARCH_DATA_ROOT)")


def load_spec(args: argparse.Namespace, checkpoint: dict[str, Any] | None):
    if args.zoo:
        return zoo_spec(args.zoo)
    if args.spec:
        path = Path(args.spec)
        if not path.is_file():
            raise ArchsearchError(f"{shown(path)}: no such spec file")
        return _sized(GraphSpec.from_file(path), str(path))
    if checkpoint is not None and "spec" in checkpoint:
        where = f"--weights {shown(args.weights)}: spec"
        return _sized(GraphSpec.from_dict(checkpoint["spec"], file=where), where)
    raise ArchsearchError("name the model with --zoo NAME or --spec FILE (or give a checkpoint with --weights)")


def _sized(spec: GraphSpec, where: str) -> GraphSpec:
    """``spec``, once its size is known to be buildable (before its weights are read or anything allocated)."""
    try:
        check_size(spec)
    except SpecError as err:
        raise err.within(file=where) from None
    return spec


def make_task_from_args(args: argparse.Namespace, spec, checkpoint: dict[str, Any] | None):
    settings = task_arguments(args)
    given = bool(settings) or args.channels is not None
    if args.task is None and checkpoint is not None and "task" in checkpoint and not given:
        return task_from_dict(checkpoint["task"])
    name = args.task
    if name is None and checkpoint is not None and "task" in checkpoint:
        name = checkpoint["task"]["task"]
    if name is None and spec.name in zoo_names():
        name = zoo_entry(spec.name).task or None
    if name is None:
        raise ArchsearchError(f"name the task with --task (allowed: {', '.join(TASKS)})")
    channels = args.channels if args.channels is not None else spec.in_channels
    if settings.get("scale") is None and name == "sr" and spec.scale > 1:
        settings["scale"] = spec.scale  # a low-resolution-input SR model: its own scale

    try:
        return make_task(name, channels=channels, **settings)
    except TaskError as err:  # "sigma must be in ..." -> "--sigma: must be in ..."
        e = task_error(err, (*settings, "channels"), lambda k: f"--{k.replace('_', '-')}" if k else "--task")
        raise ArchsearchError(f"{e.path}: {e.message}") from None
