"""``archsearch data``: the embedded split and the standard sets under the data root; fetching a set."""

from __future__ import annotations

import argparse

from ..data import EMBEDDED_SPLIT, STANDARD_SETS, data_root, list_image_files
from ..errors import ArchsearchError
from ..fetch import fetch_dataset


def cmd_data_fetch(args: argparse.Namespace) -> int:
    files = fetch_dataset(args.name, args.url, args.dest, manifest_url=args.manifest_url)
    print(f"{args.name}: {len(files)} files verified in {files[0].parent}")
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    for split, names in EMBEDDED_SPLIT.items():
        print(f"default:{split:<6} {len(names):>4} images (embedded: {', '.join(names)})")
    root = data_root(args.data_root)
    for name in STANDARD_SETS:
        folder = root / name if root else None
        if folder is not None and folder.is_dir():
            try:
                state = f"{len(list_image_files(folder)):>4} images in {folder}"
            except ArchsearchError as err:
                state = f"   - {err}"
        else:
            state = "   - not found" + (f" under {root}" if root else " (no data root set: ARCHSEARCH_DATA_ROOT)")
        print(f"{name:<14} {state}")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register ``data`` (fetch, list)."""
    p = sub.add_parser("data", help="list or download datasets", description="Datasets: list, fetch.")
    dsub = p.add_subparsers(dest="data_command", required=True)
    q = dsub.add_parser("fetch", help="download a standard set and verify its sha256 sums")
    q.add_argument("name", help="set name, e.g. Set12")
    q.add_argument("--url", help="base URL holding MANIFEST.sha256 and the files (default: $ARCHSEARCH_DATA_URL)")
    q.add_argument("--dest", help="data root to write into (default: $ARCHSEARCH_DATA_ROOT)")
    q.add_argument("--manifest-url", help="manifest URL (default: <url>/MANIFEST.sha256)")
    q.set_defaults(func=cmd_data_fetch)
    q = dsub.add_parser("list", help="the embedded split and which standard sets the data root holds")
    q.add_argument("--data-root", metavar="DIR", help="default: $ARCHSEARCH_DATA_ROOT")
    q.set_defaults(func=cmd_data_list)
