"""Published checkpoints in a study: a design with ``weights`` (:class:`~archsearch.study.space.Design`) is
evaluated with the authors' weights, never trained. Its file is found here (a relative path under the data root,
as the datasets are), checked before the study starts (present, readable by the one loader, fitting the design,
its sha256 as the design states), and loaded into the trial's model through :func:`archsearch.weights.load_weights`
-- the one place weight files are read."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..data import DATA_ROOT_ENV, data_root
from ..errors import ConfigError
from ..text import shown
from ..weights import WeightsError, load_weights
from .space import Design

_DIGESTS: dict[tuple[str, float, int], str] = {}


def weights_path(design: Design, root: str | None = None) -> Path:
    """The file of a published design: ``weights`` as given when absolute, else under the data root (``root``:
    the study's ``data.data_root``; else ``$ARCHSEARCH_DATA_ROOT``). Raises :class:`ValueError` with the reason."""
    p = Path(str(design.weights)).expanduser()
    if p.is_absolute():
        return p
    base = data_root(root)
    if base is None:
        raise ValueError(f"{design.weights!r} is relative to the data root, and none is set: set the environment "
                         f"variable {DATA_ROOT_ENV} (or the study's data.data_root) to the folder holding the "
                         "datasets, e.g. ../shared/datasets")
    return base / p


def sha256_of(path: Path) -> str:
    """The file's sha256 (hex), computed once per file version in a process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def load_published(model, design: Design, root: str | None = None) -> tuple[Path, str]:
    """Load the design's published weights into ``model``; returns the file and its sha256. Raises
    :class:`ValueError` (no data root, digest mismatch) or :class:`~archsearch.weights.WeightsError`."""
    path = weights_path(design, root)
    digest = sha256_of(path) if path.is_file() else ""
    if design.sha256 is not None and path.is_file() and digest != design.sha256:
        raise ValueError(f"{shown(path)} has sha256 {digest}, the design states {design.sha256}: not the "
                         "published file")
    load_weights(model, path)
    return path, digest


def check_published(study) -> None:
    """Every published design of ``study``, checked before anything is written: its file found, its digest as
    stated, and its tensors fitting the design (loaded once into a freshly built model). Raises
    :class:`ConfigError` naming the search-space file and the design's key."""
    from ..builder import build
    from .sweep import solve_design

    for i, design in enumerate(study.space.designs):
        if not design.published:
            continue
        try:
            spec = solve_design(None, design, {})
            load_published(build(spec), design, study.config.data.data_root)
        except (ValueError, WeightsError) as err:
            raise ConfigError(f"designs[{i}].weights", str(err), file=study.space.path) from None
