"""Published rows a study names (``published:`` point -> row id, ``claims[].published``), looked up in
:mod:`archsearch.published` once, at load: verdicts, figures and the report page read the rows from here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError, did_you_mean
from ..published import PublishedRow, published, published_ids
from .points import parse_ref, resolve


def published_row(row_id: Any, path: str) -> PublishedRow:
    """The published row ``row_id``; an unknown id is a :class:`SpecError` at ``path`` with a did-you-mean."""
    ids = published_ids()
    if not isinstance(row_id, str) or row_id not in ids:
        raise SpecError(path, f"no published row {row_id!r}{did_you_mean(str(row_id), ids)}; the rows are in "
                              "archsearch/resources/published.yaml")
    return published(row_id)


def check_published_id(row_id: Any, path: str) -> str:
    """``row_id`` when it names a published row (else the error of :func:`published_row`)."""
    return published_row(row_id, path).id


@dataclass(frozen=True, eq=False)  # eq: Mapping's, so it equals the plain {point: row id} dict it was read from
class PublishedMap(Mapping[str, str]):
    """``published:`` as read: point text -> published row id (a read-only mapping), each row resolved."""

    rows: Mapping[str, PublishedRow] = field(default_factory=dict)  # point text -> its row

    def __getitem__(self, point: str) -> str:
        return self.rows[point].id

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"PublishedMap({dict(self)!r})"

    def row(self, point: str) -> PublishedRow:
        return self.rows[point]

    def by_label(self, points: Sequence[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
        """The rows (as dicts) by the label of the point each is mapped to, among ``points`` ((label, sweep
        value) pairs: the ledger's measured points)."""
        out: dict[str, dict[str, Any]] = {}
        for ref_text, row in self.rows.items():
            for lab in resolve(parse_ref(ref_text, "published"), points):
                out[lab] = row.as_dict()
        return out


def load_published_map(raw: Any, path: str = "published") -> PublishedMap:
    """``published:``: point -> published row id (validated: points parse, ids exist)."""
    if isinstance(raw, PublishedMap):
        return raw
    if not isinstance(raw, Mapping):
        raise SpecError(path, f"must be a mapping of points to published row ids, got {raw!r}")
    rows: dict[str, PublishedRow] = {}
    for point, row_id in raw.items():
        parse_ref(point, f"{path}.{point}")
        rows[str(point).strip()] = published_row(row_id, f"{path}.{point}")
    return PublishedMap(rows)
