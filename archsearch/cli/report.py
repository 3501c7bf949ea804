"""``archsearch report`` and ``archsearch latency``: a study's ledger as tables, figures and measured latency.

Exit status: 0 when the report was written -- also for a study with no complete trial yet (the page and the
command say so; a study that has just started is not an error); 2 for user errors (unknown study file, no ledger,
a corrupt ledger, parquet without pyarrow); 1 when the environment fails (a read-only folder, a full disk: the
previous report and tables stay as they were) -- each printed as one line by :func:`archsearch.cli.main`.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ArchsearchError
from ..report import design_points, ledger_frame, pareto_front, write_report, write_table
from ..report.reproduction import write_reproduction
from ..study.ledger import open_ledger, open_study
from ..study.remeasure import measure_study
from .args import add_study_args, check_writable, parse_size


def _load(args: argparse.Namespace):
    return open_ledger(args.study, args.profile, args.output_dir, any_config=args.any_config)


#: The largest side of a latency input: 8192x8192 is 64 MP, 16x the size above which evaluate tiles; a larger
#: input times the allocator (or fails in it), not the network.
MAX_LATENCY_SIDE = 8192


def _size(text: str) -> tuple[int, int]:
    h, w = parse_size(text)
    if max(h, w) > MAX_LATENCY_SIDE:
        raise argparse.ArgumentTypeError(f"each side must be at most {MAX_LATENCY_SIDE}, got {text!r}")
    return h, w


def _measure(study, ostudy, args: argparse.Namespace) -> int:
    numbers = None
    if args.pareto_only:
        points = design_points(ledger_frame(study, ostudy))
        numbers = []
        for x in ("n_params", "macs_per_pixel"):
            if not points.empty:
                front = pareto_front(points, x)
                numbers += [n for ns in front[front["on_front"]]["trials"] for n in ns]
        numbers = sorted(set(numbers))
    written = measure_study(study, ostudy, numbers=numbers, device=args.device, size=args.latency_size,
                            warmup=args.warmup, repeats=args.repeats, force=args.force)
    return len(written)


def cmd_latency(args: argparse.Namespace) -> int:

    study, ostudy = _load(args)
    n = _measure(study, ostudy, args)
    print(f"stored latency for {n} architecture(s) in {study.storage_display} (study user attributes "
          "latency:<spec hash>)")
    return 0


def _reproduction(args: argparse.Namespace) -> int:
    for flag in ("output_dir", "out", "csv", "parquet"):
        if getattr(args, flag):
            raise ArchsearchError(f"--reproduction reads every study's own ledger: --{flag.replace('_', '-')} "
                                  "does not apply")
    check_writable(args.reproduction, "--reproduction", folder=False)
    command = " ".join(["archsearch report --reproduction", args.reproduction, *args.study]
                       + (["--profile", args.profile] if args.profile else []))
    path = write_reproduction(args.study, args.reproduction, args.profile, command)
    print(f"wrote {path} ({len(args.study)} stud{'y' if len(args.study) == 1 else 'ies'})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.reproduction:
        return _reproduction(args)
    if len(args.study) > 1:
        raise ArchsearchError(f"one study at a time, got {len(args.study)}; give --reproduction FILE to summarise "
                              "several studies' claims in one page")
    args.study = args.study[0]
    for flag, path, folder in (("--csv", args.csv, False), ("--parquet", args.parquet, False),
                               ("--out", args.out, True)):
        if path:  # a folder where a file belongs (or a file where a folder does): refused before any work
            check_writable(path, flag, folder=folder)
    study, ostudy = _load(args)
    if args.latency:
        n = _measure(study, ostudy, args)
        print(f"stored latency for {n} architecture(s)")
        ostudy = open_study(study, create=False, any_config=args.any_config)  # a fresh view: the measurements bypassed Optuna's cache
    for path in (args.csv, args.parquet):
        if path:
            written = write_table(ledger_frame(study, ostudy), path)
            print(f"wrote {written}")
    report = write_report(study, ostudy, args.out, png=not args.no_png)
    if report.n_complete == 0:
        print(f"study {study.name} has no complete trials yet: {report.html} lists the trials, no figures drawn",
              file=sys.stderr)
    else:
        print(f"wrote {report.html} ({len(report.figures)} figures, {report.n_complete} complete trials)")
        for p in report.pngs:
            print(f"  {p}")
    for s in report.skipped:
        print(f"  not shown: {s}")
    if report.fidelity is not None:
        print(report.fidelity.text())
    if report.seed_noise is not None:
        print(report.seed_noise.text())
    for p in report.claim_files:
        print(f"wrote {p}")
    for v in report.verdicts:
        print(v.line())
    return 0


def _latency_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pareto-only", action="store_true",
                   help="measure only the design points on the PSNR-vs-parameters or PSNR-vs-MACs Pareto front")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda[:N]")
    p.add_argument("--latency-size", type=_size, default=(256, 256), metavar="HxW",
                   help="input size of the timed forward passes (default 256x256)")
    p.add_argument("--warmup", type=int, default=3, help="untimed passes first (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed passes; the median is kept (default 10)")
    p.add_argument("--force", action="store_true", help="measure again trials that already have a measurement "
                                                        "on this device and size")


def add_subcommands(sub) -> None:
    p = sub.add_parser("report", help="HTML report (interactive figures, PNG copies) and tables of a study",
                       description="Read a study's ledger; write report.html with the papers' figures (PSNR vs "
                                   "activation share, parameters, MACs; Pareto fronts; NSR and MemNet tables; "
                                   "parameter importances), the claims' verdicts (claims.csv, claims.json) and a "
                                   "PNG of each figure; optionally export the trials. With --reproduction FILE, "
                                   "write one Markdown page of every given study's claims and verdicts instead.")
    add_study_args(p, many=True, reader=True)
    p.add_argument("--reproduction", metavar="FILE",
                   help="write the reproduction page (Markdown: each study's fidelity, claims, published and "
                        "measured numbers, verdicts, seeds, wall time and machine) of the given studies to FILE, "
                        "e.g. archsearch report --reproduction docs/reproduction.md studies/*.yaml")
    p.add_argument("--out", help="folder for report.html and report_png/ (default: the study's output folder)")
    p.add_argument("--csv", help="also write the trial table to this CSV file")
    p.add_argument("--parquet", help="also write the trial table to this parquet file (needs pyarrow)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG copies")
    p.add_argument("--latency", action="store_true",
                   help="first measure inference latency of the complete trials and store it in the ledger")
    _latency_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("latency", help="measure inference latency (ms per megapixel) of a study's trials",
                       description="Time one forward pass of every complete trial's architecture on this device "
                                   "(median of repeats after warm-up) and store latency_ms_per_mp and "
                                   "latency_device in the ledger's trial attributes.")
    add_study_args(p, reader=True)
    _latency_options(p)
    p.set_defaults(func=cmd_latency)
