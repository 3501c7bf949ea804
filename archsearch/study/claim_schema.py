"""A study's claims and published rows, as data (``claims:`` and ``published:`` in a study file), validated at load.

::

    published:                    # the published number shown beside a measured point: point -> row id
      "convnet": xunit_fig4_convnet_share
    claims:
      - id: fig4_zero_worst       # a safe name, unique within the study
        source: "xUnit (CVPR 2018) Fig. 4"
        text: "0% (plain ConvNet) is clearly worst"
        kind: extreme             # ordering | gap | trend | plateau | extreme
        point: "@0"
        is: worst
        published: [xunit_fig4_convnet_share]   # optional: the published rows behind the claim

Kind-specific fields (``A``, ``B``, ``P1`` are *points*):

* ``ordering``: ``order: [A, B, C]`` -- mean PSNR A > B > C (each adjacent pair);
* ``gap``: ``a: A``, ``b: B`` and exactly one of ``within: w`` (|A - B| <= w dB), ``at_least: x`` (A - B >= x
  dB) or ``at_most: x`` (A - B <= x dB);
* ``trend``: ``points: [P1, P2, ...]`` in x order, ``direction: increasing | decreasing``;
* ``plateau``: ``points: [P1, ...]``, ``tolerance: t`` -- every pair within t dB;
* ``extreme``: ``point: A``, ``is: worst | best``, optional ``among: [...]`` (default: every point of the study).

A point is a label exactly as the ledger's ``label`` column writes it (the design name, then `` key=value`` per
swept argument: ``xnet xunit_kernel_size=9``; ``convnet`` for a baseline), or ``"@VALUE"`` -- the point whose
``sweep_value`` is VALUE (``"@15"`` in a sweep over ``activation_param_pct``, where the solver picks the design
at each percentage). YAML reads a bare ``@`` as reserved: quote it.

How the ledger decides each claim: :mod:`archsearch.report.verdicts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError, did_you_mean
from ..spec import check_name

#: Fields of every claim, and the fields of each kind (``one_of``: exactly one of them).
COMMON = ("id", "source", "text", "kind", "published")
KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "ordering": {"required": ("order",), "optional": (), "one_of": ()},
    "gap": {"required": ("a", "b"), "optional": (), "one_of": ("within", "at_least", "at_most")},
    "trend": {"required": ("points", "direction"), "optional": (), "one_of": ()},
    "plateau": {"required": ("points", "tolerance"), "optional": (), "one_of": ()},
    "extreme": {"required": ("point", "is"), "optional": ("among",), "one_of": ()},
}
DIRECTIONS = ("increasing", "decreasing")
EXTREMES = ("worst", "best")


def _fields(kind: str) -> tuple[str, ...]:
    k = KINDS[kind]
    return (*COMMON, *k["required"], *k["one_of"], *k["optional"])


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


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, checked against the study's ledger (see the module docstring for the fields)."""

    id: str
    source: str
    text: str
    kind: str
    published: tuple[str, ...] = ()
    order: tuple[PointRef, ...] = ()
    a: PointRef | None = None
    b: PointRef | None = None
    within: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    points: tuple[PointRef, ...] = ()
    direction: str | None = None
    tolerance: float | None = None
    point: PointRef | None = None
    extreme: str | None = None  # the file's `is:` (a Python keyword)
    among: tuple[PointRef, ...] = ()

    def refs(self) -> list[tuple[str, PointRef]]:
        """(key path inside the claim, point) of every point the claim names."""
        out: list[tuple[str, PointRef]] = []
        for key in ("order", "points", "among"):
            out += [(f"{key}[{i}]", r) for i, r in enumerate(getattr(self, key))]
        for key in ("a", "b", "point"):
            if getattr(self, key) is not None:
                out.append((key, getattr(self, key)))
        return out

    @property
    def rule(self) -> str:
        """The claim's rule in words (``mean PSNR A > B``)."""
        if self.kind == "ordering":
            return "mean PSNR " + " > ".join(r.text for r in self.order)
        if self.kind == "gap":
            a, b = self.a.text, self.b.text  # type: ignore[union-attr]
            if self.within is not None:
                return f"|{a} - {b}| <= {self.within:g} dB"
            if self.at_least is not None:
                return f"{a} - {b} >= {self.at_least:g} dB"
            return f"{a} - {b} <= {self.at_most:g} dB"
        if self.kind == "trend":
            return f"PSNR {self.direction} over " + ", ".join(r.text for r in self.points)
        if self.kind == "plateau":
            return f"every pair within {self.tolerance:g} dB among " + ", ".join(r.text for r in self.points)
        among = ", ".join(r.text for r in self.among) if self.among else "every point of the study"
        return f"{self.point.text} is the {self.extreme} among {among}"  # type: ignore[union-attr]


def _text(data: Mapping[str, Any], key: str, path: str) -> str:
    v = data.get(key)
    if not isinstance(v, str) or not v.strip():
        raise SpecError(f"{path}.{key}", f"is required: a non-empty string, got {v!r}")
    return v.strip()


def _number(data: Mapping[str, Any], key: str, path: str, *, positive: bool = False) -> float:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
        rule = "a finite number of dB > 0" if positive else "a finite number of dB"
        raise SpecError(f"{path}.{key}", f"must be {rule}, got {v!r}")
    return float(v)


def _ref_list(data: Mapping[str, Any], key: str, path: str, minimum: int) -> tuple[PointRef, ...]:
    v = data[key]
    if not isinstance(v, (list, tuple)) or len(v) < minimum:
        raise SpecError(f"{path}.{key}", f"must be a list of at least {minimum} points, got {v!r}")
    refs = tuple(parse_ref(r, f"{path}.{key}[{i}]") for i, r in enumerate(v))
    for i, r in enumerate(refs):
        if r.text in [q.text for q in refs[:i]]:
            raise SpecError(f"{path}.{key}[{i}]", f"repeats the point {r.text!r}; each point once")
    return refs


def _choice(data: Mapping[str, Any], key: str, path: str, allowed: Sequence[str]) -> str:
    v = data[key]
    if v not in allowed:
        raise SpecError(f"{path}.{key}", f"must be one of {', '.join(allowed)}"
                                         f"{did_you_mean(str(v), allowed)}, got {v!r}")
    return v


def check_published_id(row_id: Any, path: str) -> str:
    from ..published import published_ids

    ids = published_ids()
    if not isinstance(row_id, str) or row_id not in ids:
        raise SpecError(path, f"no published row {row_id!r}{did_you_mean(str(row_id), ids)}; the rows are in "
                              "archsearch/resources/published.yaml")
    return row_id


def load_claim(data: Any, path: str) -> Claim:
    """One claim, validated: structure, kind, the kind's fields (unknown ones refused), numbers, ids."""
    if not isinstance(data, Mapping):
        raise SpecError(path, f"must be a mapping with keys {', '.join(COMMON)} and the kind's fields, got {data!r}")
    kind = data.get("kind")
    if kind is None:
        raise SpecError(f"{path}.kind", f"is required: one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise SpecError(f"{path}.kind", f"must be one of {', '.join(KINDS)}{did_you_mean(str(kind), KINDS)}, "
                                        f"got {kind!r}")
    allowed = _fields(kind)
    for key in data:
        if key not in allowed:
            other = [k for k, spec in KINDS.items() if key in (*spec["required"], *spec["one_of"], *spec["optional"])]
            hint = f" (a field of kind {' / '.join(other)})" if other else did_you_mean(str(key), allowed)
            raise SpecError(f"{path}.{key}", f"unknown key for kind {kind}{hint}; allowed: {', '.join(allowed)}")
    spec = KINDS[kind]
    for key in spec["required"]:
        if key not in data:
            raise SpecError(f"{path}.{key}", f"is required for kind {kind} (fields: "
                                             f"{', '.join((*spec['required'], *spec['one_of'], *spec['optional']))})")
    if spec["one_of"]:
        given = [k for k in spec["one_of"] if k in data]
        if len(given) != 1:
            raise SpecError(path, f"kind {kind} needs exactly one of {', '.join(spec['one_of'])}, got "
                                  f"{', '.join(given) or 'none'}")
    check_name(data.get("id"), f"{path}.id")
    pub = data.get("published", [])
    if not isinstance(pub, (list, tuple)):
        raise SpecError(f"{path}.published", f"must be a list of published row ids, got {pub!r}")
    published = tuple(check_published_id(r, f"{path}.published[{i}]") for i, r in enumerate(pub))
    kw: dict[str, Any] = {"id": data["id"], "source": _text(data, "source", path), "text": _text(data, "text", path),
                          "kind": kind, "published": published}
    if kind == "ordering":
        kw["order"] = _ref_list(data, "order", path, 2)
    elif kind == "gap":
        kw["a"], kw["b"] = parse_ref(data["a"], f"{path}.a"), parse_ref(data["b"], f"{path}.b")
        if kw["a"].text == kw["b"].text:
            raise SpecError(f"{path}.b", f"must be another point than a ({kw['a'].text!r})")
        key = next(k for k in spec["one_of"] if k in data)
        kw[key] = _number(data, key, path, positive=key == "within")
    elif kind == "trend":
        kw["points"] = _ref_list(data, "points", path, 2)
        kw["direction"] = _choice(data, "direction", path, DIRECTIONS)
    elif kind == "plateau":
        kw["points"] = _ref_list(data, "points", path, 2)
        kw["tolerance"] = _number(data, "tolerance", path, positive=True)
    else:
        kw["point"] = parse_ref(data["point"], f"{path}.point")
        kw["extreme"] = _choice(data, "is", path, EXTREMES)
        if "among" in data:
            kw["among"] = _ref_list(data, "among", path, 1)
            if [r.text for r in kw["among"]] == [kw["point"].text]:
                raise SpecError(f"{path}.among", "must name at least one point besides `point`")
    return Claim(**kw)


def load_claims(raw: Any, path: str = "claims") -> tuple[Claim, ...]:
    if not isinstance(raw, (list, tuple)):
        raise SpecError(path, f"must be a list of claims, got {raw!r}")
    claims = tuple(load_claim(c, f"{path}[{i}]") for i, c in enumerate(raw))
    for i, c in enumerate(claims):
        if c.id in [d.id for d in claims[:i]]:
            raise SpecError(f"{path}[{i}].id", f"repeats the claim id {c.id!r}; each id once within a study")
    return claims


def load_published_map(raw: Any, path: str = "published") -> dict[str, str]:
    """``published:``: point -> published row id (validated: points parse, ids exist)."""
    if not isinstance(raw, Mapping):
        raise SpecError(path, f"must be a mapping of points to published row ids, got {raw!r}")
    out: dict[str, str] = {}
    for point, row_id in raw.items():
        parse_ref(point, f"{path}.{point}")
        out[str(point).strip()] = check_published_id(row_id, f"{path}.{point}")
    return out


# ---------------------------------------------------------------------------------------------------------
# points against the planned sweep
# ---------------------------------------------------------------------------------------------------------
def resolve(ref: PointRef, points: Sequence[tuple[str, Any]]) -> list[str]:
    """The labels among ``points`` ((label, sweep_value) pairs) that ``ref`` names."""
    if not ref.by_value:
        return [ref.label] if any(lab == ref.label for lab, _ in points) else []
    return sorted({lab for lab, v in points if same_value(v, ref.value)})


def check_points(claims: Sequence[Claim], published: Mapping[str, str], points: Sequence[tuple[str, Any]],
                 where: str, *, sweep: bool) -> None:
    """Every point the claims and the published map name exists (once) among ``points`` -- the sweep's planned
    points (feasible or off the budget), as (label, sweep value). ``sweep`` False (a search): labels are
    unknown before the run and not checked; ``@VALUE`` is refused. ``where`` names the plan in messages."""
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
