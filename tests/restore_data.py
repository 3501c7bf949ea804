"""Where the tests of the restoration layer find the shared benchmark sets: ``$ARCHSEARCH_DATA_ROOT`` or else
``../shared/datasets`` next to the repository (tests may know that layout; the library does not)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The shared reference folder (pretrained weights, papers): ``$ARCHSEARCH_SHARED`` or ``../shared`` next to
    the repository."""
    env = os.environ.get("ARCHSEARCH_SHARED")
    return Path(env) if env else (REPO.parent / "shared")


def shared_root() -> Path | None:
    env = os.environ.get("ARCHSEARCH_DATA_ROOT")
    root = Path(env) if env else REPO.parent / "shared" / "datasets"
    return root if (root / "Set12").is_dir() else None


def shared_file(*parts: str) -> Path | None:
    root = shared_root()
    path = root.parent.joinpath(*parts) if root else None
    return path if path is not None and path.exists() else None


requires_shared = pytest.mark.skipif(shared_root() is None, reason="shared benchmark sets not found: set "
                                     "ARCHSEARCH_DATA_ROOT to the folder holding Set12/ (or ../shared/datasets)")
