"""pytest setup shared by the tests: the helper modules of this folder (``block_examples``, ``fvcore_macs``)
are importable by name, and torch uses the 2 CPU cores deterministically."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
