"""The papers' published numbers as data: ``archsearch/resources/published.yaml``, one row per number of a table
or figure (xUnit Tables 1 and 3 and what its text states about Fig. 4; NSR Tables 1, 2, 3, 5 and Fig. 5's CPU
times; MemNet Tables 1 and 6).

A row: ``id`` (a safe name, unique), ``paper``, ``table``, ``setting`` (a mapping: task, sigma, dataset, model,
...), ``value`` (a finite number, exactly as printed), ``unit`` (one of :data:`UNITS`, the printed unit:
``555K`` parameters is ``value: 555, unit: K params``), ``approximate`` (true for a number read off a figure or
stated as "about"), and an optional ``note``. Studies reference rows by id (``published:`` and
``claims[].published``); :func:`published` looks one up.

The file ships inside the package (``[tool.setuptools.package-data]`` in ``pyproject.toml``) and is read with
:mod:`importlib.resources`; it is validated completely the first time it is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from .errors import SpecError, did_you_mean
from .schema import load_dataclass, load_yaml
from .spec import check_name

#: The units a published number may be in (as the papers print them).
UNITS = ("dB", "params", "K params", "M params", "M FLOPs", "ms", "layers", "% of parameters in activations")

RESOURCE = "published.yaml"


@dataclass(frozen=True)
class PublishedRow:
    id: str
    paper: str
    table: str
    setting: Mapping[str, Any]
    value: float
    unit: str
    approximate: bool
    note: str = ""
    not_reproduced: str = ""  # why no study or benchmark carries this row (the test accepts a row with a reason)

    def __post_init__(self) -> None:
        check_name(self.id, "id")
        for key in ("paper", "table"):
            if not getattr(self, key).strip():
                raise SpecError(key, "must be a non-empty string")
        if not math.isfinite(self.value):
            raise SpecError("value", f"must be a finite number, got {self.value!r}")
        if self.unit not in UNITS:
            raise SpecError("unit", f"must be one of {', '.join(UNITS)}{did_you_mean(self.unit, UNITS)}, got "
                                    f"{self.unit!r}")
        for key, v in self.setting.items():
            if not isinstance(key, str) or isinstance(v, (Mapping, list, tuple)) or v is None:
                raise SpecError(f"setting.{key}", f"must map a name to a number or a string, got {v!r}")

    def describe(self) -> str:
        """``29.21 dB (xUnit (CVPR 2018) Table 1)``, with ``~`` in front of an approximate value."""
        return f"{'~' if self.approximate else ''}{format_value(self.value)} {self.unit} ({self.paper} {self.table})"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "paper": self.paper, "table": self.table, "setting": dict(self.setting),
                "value": self.value, "unit": self.unit, "approximate": self.approximate, "note": self.note,
                "not_reproduced": self.not_reproduced}


def format_value(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1000 else f"{v:g}"


def parse_rows(data: Any, file: str = RESOURCE) -> dict[str, PublishedRow]:
    """Validate the mapping ``{rows: [...]}`` into rows by id; errors are :class:`SpecError` naming ``file`` and
    the key path (``rows[3].unit``); a repeated id is refused."""
    if not isinstance(data, Mapping) or set(data) != {"rows"}:
        raise SpecError("", "must be a mapping with the one key `rows` (a list of published rows)", file=file)
    raw = data["rows"]
    if not isinstance(raw, list) or not raw:
        raise SpecError("rows", "must be a non-empty list of rows", file=file)
    rows: dict[str, PublishedRow] = {}
    for i, item in enumerate(raw):
        where = f"rows[{i}]"
        try:
            row = load_dataclass(PublishedRow, item, where)
        except SpecError as err:
            raise err.within(file=file) from None
        if row.id in rows:
            raise SpecError(f"{where}.id", f"repeats the id {row.id!r}; each id once", file=file)
        rows[row.id] = row
    return rows


@lru_cache(maxsize=1)
def _rows() -> dict[str, PublishedRow]:
    text = files("archsearch.resources").joinpath(RESOURCE).read_text(encoding="utf-8")
    return parse_rows(load_yaml(text, file=f"archsearch/resources/{RESOURCE}"), f"archsearch/resources/{RESOURCE}")


def published_rows() -> list[PublishedRow]:
    """Every published row, in file order."""
    return list(_rows().values())


def published_ids() -> list[str]:
    return list(_rows())


def published(row_id: str) -> PublishedRow:
    """The row ``row_id``; an unknown id is a :class:`SpecError` with a did-you-mean."""
    rows = _rows()
    if row_id not in rows:
        raise SpecError("", f"no published row {row_id!r}{did_you_mean(str(row_id), rows)} (rows: "
                            f"archsearch/resources/{RESOURCE})")
    return rows[row_id]
