"""Points a claim names: a ledger label, or ``"@VALUE"`` (the point whose sweep value is VALUE), and how they
resolve against the points of a sweep (planned at load, measured in the ledger)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError, did_you_mean


@dataclass(frozen=True)
class PointRef:
    """A reference to a design point: a ledger label, or ``@VALUE`` (``value`` set, ``label`` None)."""

    text: str
    label: str | None = None
    value: Any = None

    @property
    def by_value(self) -> bool:
        return self.label is None


def parse_value(text: str) -> Any:
    """``@VALUE``'s value: an integer, a number, true/false, else the text."""
    for cast in (int, float):
        try:
            v = cast(text)
            if isinstance(v, float) and not math.isfinite(v):
                break
            return v
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def same_value(a: Any, b: Any) -> bool:
    """Sweep values compared as the ledger stores them: numbers by value (15 == 15.0), anything else by text."""
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, num) and isinstance(b, num):
        return float(a) == float(b)
    return a is not None and b is not None and str(a) == str(b)


def parse_ref(raw: Any, path: str) -> PointRef:
    if not isinstance(raw, str) or not raw.strip():
        raise SpecError(path, f"must be a point: its label (e.g. 'xnet xunit_kernel_size=9', 'convnet') or "
                              f"\"@VALUE\" (quoted; the point whose sweep value is VALUE), got {raw!r}")
    text = raw.strip()
    if text.startswith("@"):
        if not text[1:].strip():
            raise SpecError(path, "\"@\" must be followed by a sweep value, e.g. \"@15\"")
        return PointRef(text, None, parse_value(text[1:].strip()))
    return PointRef(text, text, None)


def resolve(ref: PointRef, points: Sequence[tuple[str, Any]]) -> list[str]:
    """The labels among ``points`` ((label, sweep_value) pairs) that ``ref`` names."""
    if not ref.by_value:
        return [ref.label] if any(lab == ref.label for lab, _ in points) else []
    return sorted({lab for lab, v in points if same_value(v, ref.value)})


def check_points(claims: Iterable[Any], published: Mapping[str, Any], points: Sequence[tuple[str, Any]],
                 where: str, *, sweep: bool) -> None:
    """Every point the claims (:class:`~archsearch.claims.Claim`) and the published map (its keys) name exists
    (once) among ``points`` -- the sweep's planned points (feasible or off the budget), as (label, sweep value).
    ``sweep`` False (a search): labels are unknown before the run and not checked; ``@VALUE`` is refused.
    ``where`` names the plan in messages."""
    items = [(f"claims[{i}].{key}", ref) for i, c in enumerate(claims) for key, ref in c.refs()]
    items += [(f"published.{p}", parse_ref(p, f"published.{p}")) for p in published]
    labels = sorted({lab for lab, _ in points})
    values = sorted({str(v) for _, v in points if v is not None})
    for path, ref in items:
        if not sweep:
            if ref.by_value:
                raise SpecError(path, f"{ref.text!r}: a search has no sweep values; name the point by its label")
            continue
        found = resolve(ref, points)
        if not found:
            names = f"sweep values: {', '.join('@' + v for v in values)}" if ref.by_value else \
                f"points: {', '.join(labels)}{did_you_mean(ref.text, labels)}"
            raise SpecError(path, f"no point {ref.text!r} in {where}; {names}")
        if len(found) > 1:
            raise SpecError(path, f"{ref.text!r} names {len(found)} points ({', '.join(found)}); use a label")
