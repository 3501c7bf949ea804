"""pytest setup shared by the tests: the helper modules of this folder (``restore_data``, the reference
re-implementations ``ref_*``) are importable by name, and torch uses the 2 CPU cores deterministically. The block
contract kit and the fvcore MAC count are ``archsearch.testing``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

# Studies run their trials in-process (one worker) unless a test checks the automatic layout itself: tests patch
# the trial function, and CLI subprocesses inherit this.
os.environ["ARCHSEARCH_WORKERS"] = "1"


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
