"""Study files for tests: a tiny study on the xUnit Fig. 4 search space that trains in seconds, with any key
overridden or removed, and a synthetic one for report tests (no training: its ledger is made with
:mod:`archsearch.testing.ledger`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: The repository's search spaces (tests run from a checkout).
SEARCH_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
XUNIT_SPACE = SEARCH_SPACES / "xunit_fig4.yaml"

#: Four steps of 4 x 24x24 patches, validation every 2: a trial in well under a second on one CPU thread.
TINY_TRAINING: dict[str, Any] = {"steps": 4, "batch_size": 4, "patch_size": 24, "val_every": 2}

#: The fidelity line of synthetic ledgers (reports print it).
SYNTHETIC_FIDELITY = "CPU-scale proxy: synthetic ledger for the report tests"


def study_body(tmp_path: Path, name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """The mapping of a tiny sweep study (xunit_kernel_size 1 and 5 at 3,000 parameters, seed 0), its output
    folder inside ``tmp_path``; each keyword replaces a top-level key, ``None`` removes it."""
    body: dict[str, Any] = {
        "name": name,
        "search_space": str(XUNIT_SPACE),
        "task": {"name": "denoise", "sigma": 25},
        "data": {"train": "default", "val": "default", "test": "default"},
        "budget": {"metric": "params", "value": 3000, "tolerance": 0.1},
        "sweep": {"over": "xunit_kernel_size", "values": [1, 5]},
        "seeds": [0],
        "training": dict(TINY_TRAINING),
        "output_dir": str(Path(tmp_path) / "out"),
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def write_study(tmp_path: Path, name: str = "tiny", **overrides: Any) -> Path:
    """:func:`study_body` written to ``tmp_path/<name>.yaml``; returns the file."""
    path = Path(tmp_path) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study_body(tmp_path, name, **overrides), sort_keys=False))
    return path


def write_synthetic_study(tmp_path: Path, name: str = "synthetic", search: bool = False) -> Path:
    """A study whose ledger a test fills by hand: xUnit Fig. 4 sweep over r = 1, 5, 9 at seeds 0 and 1 (or a
    6-trial TPE search), with a fidelity line and a description."""
    overrides: dict[str, Any] = {"description": "synthetic ledger", "fidelity": SYNTHETIC_FIDELITY, "seeds": [0, 1]}
    if search:
        overrides.update(sweep=None, search={"sampler": "tpe", "n_trials": 6})
    else:
        overrides["sweep"] = {"over": "xunit_kernel_size", "values": [1, 5, 9]}
    return write_study(tmp_path, name, **overrides)
