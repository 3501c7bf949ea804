"""Shared by the analysis scripts: the common arguments and writing a figure as PNG (matplotlib) and HTML
(plotly, offline) -- the same functions ``archsearch report`` uses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("study", help="a study file, e.g. studies/xunit_budget.yaml")
    p.add_argument("--profile", help="a profile of the study file (e.g. paper)")
    p.add_argument("--output-dir", help="the study's output folder, if `archsearch run` was given --output-dir")
    p.add_argument("--out", help="folder for the outputs (default: <study output folder>/analysis)")
    return p


def load(args: argparse.Namespace):
    """(study, ledger, trial frame, design points, output folder); exits 2 with one line on a user error."""
    from archsearch.errors import ArchsearchError
    from archsearch.report import design_points, ledger_frame, open_ledger

    try:
        study, ostudy = open_ledger(args.study, args.profile, args.output_dir)
    except ArchsearchError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    df = ledger_frame(study, ostudy)
    out = Path(args.out) if args.out else Path(study.output_dir) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    return study, ostudy, df, design_points(df), out


def save(fig, out: Path, stem: str) -> list[Path]:
    """``<stem>.png`` (matplotlib) and ``<stem>.html`` (interactive, plotly.js inline)."""
    from archsearch.report import to_plotly, to_png

    png = to_png(fig, out / f"{stem}.png")
    page = out / f"{stem}.html"
    to_plotly(fig).write_html(page, include_plotlyjs=True)
    for p in (png, page):
        print(f"wrote {p}")
    return [png, page]


def no_data(what: str) -> int:
    print(f"nothing to draw: {what}", file=sys.stderr)
    return 0
