"""The machinery of claim kinds: the :class:`Claim` base (the fields every claim has), what a kind decides from
(:class:`Measured`) and returns (:class:`Decision`), the registry :data:`CLAIM_KINDS`, and :func:`load_claim`,
which looks the kind up and lets it parse its own fields. The kinds themselves: :mod:`.kinds`."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ..errors import RegistryError, SpecError, did_you_mean
from ..published import PublishedRow
from ..registry import Registry
from ..spec import check_name
from .points import PointRef, parse_ref
from .published_map import published_row
from .stats import ALPHA, METHOD, MIN_SEEDS, Comparison, PerSeed, paired

#: The fields every claim has (``kind`` picks the class; the rest are :class:`Claim`'s fields).
COMMON = ("id", "source", "text", "kind", "published", "tested", "untested", "evidence")
#: How much of the paper's sentence a claim's encoding tests.
TESTED = ("full", "partial")


# ---------------------------------------------------------------------------------------------------------
# what a kind decides from, and what it returns
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    """What a claim is decided from: per-seed PSNR of the valid seeds (label -> seed -> PSNR; degenerate and
    diverged seeds are not in it), the claim's points resolved to ledger labels (point text -> label), each
    label's sweep value, every label measured, the study's pooled paired sd (the floor of every comparison's sd),
    and each label's failed seeds (label -> seed -> ``degenerate`` | ``diverged``)."""

    per_seed: PerSeed
    labels: Mapping[str, str] = field(default_factory=dict)
    sweep_values: Mapping[str, Any] = field(default_factory=dict)
    every_point: tuple[str, ...] = ()
    sd_floor: float = 0.0
    failures: Mapping[str, Mapping[Any, str]] = field(default_factory=dict)
    # label -> {"n_params": ..., "macs_per_pixel": ...}: counted from the spec (kind `size`)
    sizes: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def label(self, text: str) -> str:
        return self.labels.get(text, text)

    def paired(self, a: str, b: str, name: str | None = None) -> Comparison:
        """Point ``a`` minus point ``b`` (point texts) over the seeds both share, named ``A - B``, its sd floored
        at the study's pooled paired sd."""
        return paired(self.per_seed, self.label(a), self.label(b), f"{a} - {b}" if name is None else name,
                      self.sd_floor)


def _p(c: Comparison, which: str) -> float:
    """A comparison's p-value for (``holds``) or against (``contra``) the claim; a comparison whose kind set only
    an outcome counts as p = 0 for that outcome and 1 otherwise."""
    p = c.p_holds if which == "holds" else c.p_contra
    if math.isfinite(p):
        return p
    return 0.0 if c.outcome == ("holds" if which == "holds" else "contradicted") else 1.0


@dataclass(frozen=True)
class Decision:
    """A kind's verdict on its comparisons: the verdict, the comparison to headline, the reason, the method, and
    the claim's p-value (for *holds*: the largest of its comparisons' -- all must hold; for *contradicted*: the
    Holm-corrected smallest; for *inconclusive*: the smaller of the two), which the study's Holm correction
    reads."""

    verdict: str
    comparisons: tuple[Comparison, ...]
    head: Comparison | None
    reason: str
    method: str = METHOD
    p_value: float = math.nan

    @classmethod
    def of(cls, comparisons: Sequence[Comparison], method: str = METHOD, *,
           blockers: Sequence[Comparison] = ()) -> Decision:
        """Composite claims: *holds* when every comparison holds (an intersection-union test: each at 2.5%, no
        correction needed) and none of ``blockers`` (comparisons that may not be contradicted, e.g. a trend's
        adjacent steps) is contradicted; *contradicted* when the smallest p against the claim, Holm-corrected
        over all comparisons and blockers (times their number), is below 2.5%; *inconclusive* otherwise, or when a
        comparison has fewer than ``MIN_SEEDS`` shared seeds."""
        comps = tuple(comparisons)
        if not comps:  # e.g. `extreme` over every point while only its own point has results
            return cls("inconclusive", comps, None, "nothing to compare it with in the ledger yet", method)
        few = [c for c in (*comps, *blockers) if not c.decided]
        if few:
            c = min(few, key=lambda c: c.n)
            return cls("inconclusive", (*comps, *blockers), c if c.n else None,
                       f"needs ≥ {MIN_SEEDS} seeds shared by {c.name.replace(' - ', ' and ')} (has {c.n})", method)
        every = (*comps, *blockers)
        contra = [_p(c, "contra") for c in every]
        p_contra = min(1.0, len(every) * min(contra))
        p_holds = max(_p(c, "holds") for c in comps)
        if p_contra < ALPHA:
            # the strongest evidence against; among equal p-values (zero-sd data) the largest difference
            worst = max((c for c, p in zip(every, contra) if p == min(contra)), key=lambda c: abs(c.estimate))
            return cls("contradicted", every, worst, f"{worst.name} contradicts it", method, p_contra)
        blocked = [b for b in blockers if _p(b, "contra") < ALPHA]
        if p_holds < ALPHA and not blocked:
            return cls("holds", every, min(comps, key=lambda c: abs(c.estimate)), "", method, p_holds)
        if blocked:
            b = blocked[0]
            return cls("inconclusive", every, b, f"{b.name} goes the other way (its 95% interval lies against "
                                                 "the claim; not significant after Holm over the claim's "
                                                 "comparisons)", method, min(p_holds, p_contra))
        open_ = [c for c in comps if c.outcome != "holds"]
        c = max(open_ or comps, key=lambda c: _p(c, "holds"))
        return cls("inconclusive", every, c, f"{c.name}: the 95% interval does not decide it at this power",
                   method, min(p_holds, p_contra))


# ---------------------------------------------------------------------------------------------------------
# the base class and the registry
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Claim(abc.ABC):
    """One claim of a paper, checked against the study's ledger. A kind is a frozen dataclass subclass: its
    own fields, the class attributes below, :meth:`parse`, :attr:`rule` and :meth:`decide`; registered with
    :func:`register_kind`."""

    id: str
    source: str
    text: str
    published: tuple[PublishedRow, ...] = ()  # the published rows behind the claim, resolved at load
    tested: str = "full"  # how much of the paper's sentence the encoding tests: full | partial
    untested: str = ""  # with tested: partial, the clause of the sentence left untested
    evidence: str = ""  # what the paper's own evidence is, where it is weak (e.g. single-run table values)

    kind: ClassVar[str] = ""  # the name in the file's ``kind:``
    required: ClassVar[tuple[str, ...]] = ()  # the kind's keys in the file
    one_of: ClassVar[tuple[str, ...]] = ()  # exactly one of these
    optional: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""  # the verdict rule in one line (RULES, the report, the reproduction page)
    # what the kind decides from: "psnr" (per-replicate PSNR, the statistics of .stats) or "sizes" (exact counts)
    reads: ClassVar[str] = "psnr"

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The kind's own keys in the file, in the order messages list them."""
        return (*cls.required, *cls.one_of, *cls.optional)

    @classmethod
    @abc.abstractmethod
    def parse(cls, data: Mapping[str, Any], path: str) -> dict[str, Any]:
        """The kind's own fields (keyword arguments of the class) from the claim's mapping, validated.
        :func:`load_claim` has checked the keys already: no unknown key, every required one present, exactly one
        of :attr:`one_of`."""

    @property
    @abc.abstractmethod
    def rule(self) -> str:
        """The claim's rule in words (``mean PSNR A > B``)."""

    @abc.abstractmethod
    def decide(self, measured: Measured) -> Decision:
        """The verdict from per-seed PSNR; every point of :meth:`refs` is resolved in ``measured.labels``."""

    @property
    def margin(self) -> float:
        """The difference (dB) the claim states, 0 where it states none (an ordering: "A > B"); the under-trained
        gate compares a point's last-third gain with a quarter of the larger of this and the measured one."""
        return 0.0

    def refs(self) -> list[tuple[str, PointRef]]:
        """(key path inside the claim, point) of every point the claim names: the fields holding lists of
        points first, then those holding one point (the order the verdict lists the points in)."""
        lists: list[tuple[str, PointRef]] = []
        single: list[tuple[str, PointRef]] = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, PointRef):
                single.append((f.name, v))
            elif isinstance(v, tuple):
                lists += [(f"{f.name}[{i}]", r) for i, r in enumerate(v) if isinstance(r, PointRef)]
        return lists + single


#: Claim kinds by name (``ordering``, ``gap``, ...): each a :class:`Claim` subclass.
CLAIM_KINDS: Registry[type[Claim]] = Registry("claim kind")

K = TypeVar("K", bound=type[Claim])


def register_kind(cls: K) -> K:
    """Class decorator: register a claim kind under its ``kind`` (checked: a concrete frozen dataclass subclass
    of :class:`Claim` with a name, keys and a description)."""
    # the class's own dataclass parameters: a subclass without @dataclass would inherit the base's and
    # silently drop its own fields
    params = cls.__dict__.get("__dataclass_params__") if isinstance(cls, type) else None
    if not (isinstance(cls, type) and issubclass(cls, Claim)) or params is None or not params.frozen:
        raise RegistryError(f"a claim kind must be a frozen dataclass subclass of Claim, got {cls!r}")
    if getattr(cls, "__abstractmethods__", None):
        raise RegistryError(f"claim kind {cls.kind!r} must implement "
                            f"{', '.join(sorted(cls.__abstractmethods__))}")
    if not cls.kind or not cls.description:
        raise RegistryError(f"claim kind {cls.__name__} needs a `kind` name and a one-line `description`")
    if cls.kind in ("holds", "contradicted", "inconclusive"):  # RULES lists the kinds beside "inconclusive"
        raise RegistryError(f"a claim kind cannot be named {cls.kind!r}: that is a verdict")
    clash = [k for k in cls.keys() if k in COMMON]
    if clash:
        raise RegistryError(f"claim kind {cls.kind!r}: {', '.join(clash)} is a field of every claim")
    return CLAIM_KINDS.add(cls.kind, cls)


# ---------------------------------------------------------------------------------------------------------
# field parsers the kinds share (errors name the key path and the rule)
# ---------------------------------------------------------------------------------------------------------
def parse_text(data: Mapping[str, Any], key: str, path: str) -> str:
    v = data.get(key)
    if not isinstance(v, str) or not v.strip():
        raise SpecError(f"{path}.{key}", f"is required: a non-empty string, got {v!r}")
    return v.strip()


def parse_number(data: Mapping[str, Any], key: str, path: str, *, positive: bool = False) -> float:
    """A finite number of dB (``positive``: > 0)."""
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
        rule = "a finite number of dB > 0" if positive else "a finite number of dB"
        raise SpecError(f"{path}.{key}", f"must be {rule}, got {v!r}")
    return float(v)


def parse_points(data: Mapping[str, Any], key: str, path: str, minimum: int) -> tuple[PointRef, ...]:
    """A list of at least ``minimum`` distinct points."""
    v = data[key]
    if not isinstance(v, (list, tuple)) or len(v) < minimum:
        raise SpecError(f"{path}.{key}", f"must be a list of at least {minimum} points, got {v!r}")
    refs = tuple(parse_ref(r, f"{path}.{key}[{i}]") for i, r in enumerate(v))
    for i, r in enumerate(refs):
        if r.text in [q.text for q in refs[:i]]:
            raise SpecError(f"{path}.{key}[{i}]", f"repeats the point {r.text!r}; each point once")
    return refs


def parse_choice(data: Mapping[str, Any], key: str, path: str, allowed: Sequence[str]) -> str:
    v = data[key]
    if v not in allowed:
        raise SpecError(f"{path}.{key}", f"must be one of {', '.join(allowed)}"
                                         f"{did_you_mean(str(v), allowed)}, got {v!r}")
    return v


# ---------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------
def parse_coverage(data: Mapping[str, Any], path: str) -> dict[str, str]:
    """``tested: full | partial`` (default full), ``untested:`` (required with partial: the clause not tested;
    refused with full) and ``evidence:`` (optional: the weakness of the paper's own evidence)."""
    tested = data.get("tested", "full")
    if tested not in TESTED:
        raise SpecError(f"{path}.tested", f"must be one of {', '.join(TESTED)}, got {tested!r}")
    out = {"tested": tested}
    if tested == "partial":
        out["untested"] = parse_text(data, "untested", path)
    elif "untested" in data:
        raise SpecError(f"{path}.untested", "goes with `tested: partial` (the clause the encoding leaves untested)")
    if "evidence" in data:
        out["evidence"] = parse_text(data, "evidence", path)
    return out


def load_claim(data: Any, path: str) -> Claim:
    """One claim, validated: structure, kind, the kind's fields (unknown ones refused), numbers, ids."""
    if not isinstance(data, Mapping):
        raise SpecError(path, f"must be a mapping with keys {', '.join(COMMON)} and the kind's fields, got {data!r}")
    names = CLAIM_KINDS.names()
    name = data.get("kind")
    if name is None:
        raise SpecError(f"{path}.kind", f"is required: one of {', '.join(names)}")
    if not isinstance(name, str) or name not in CLAIM_KINDS:
        raise SpecError(f"{path}.kind", f"must be one of {', '.join(names)}{did_you_mean(str(name), names)}, "
                                        f"got {name!r}")
    kind = CLAIM_KINDS.get(name)
    allowed = (*COMMON, *kind.keys())
    for key in data:
        if key not in allowed:
            other = [n for n, k in CLAIM_KINDS.items() if key in k.keys()]
            hint = f" (a field of kind {' / '.join(other)})" if other else did_you_mean(str(key), allowed)
            raise SpecError(f"{path}.{key}", f"unknown key for kind {kind.kind}{hint}; allowed: {', '.join(allowed)}")
    for key in kind.required:
        if key not in data:
            raise SpecError(f"{path}.{key}", f"is required for kind {kind.kind} (fields: {', '.join(kind.keys())})")
    if kind.one_of:
        given = [k for k in kind.one_of if k in data]
        if len(given) != 1:
            raise SpecError(path, f"kind {kind.kind} needs exactly one of {', '.join(kind.one_of)}, got "
                                  f"{', '.join(given) or 'none'}")
    check_name(data.get("id"), f"{path}.id")
    pub = data.get("published", [])
    if not isinstance(pub, (list, tuple)):
        raise SpecError(f"{path}.published", f"must be a list of published row ids, got {pub!r}")
    rows = tuple(published_row(r, f"{path}.published[{i}]") for i, r in enumerate(pub))
    common = {"id": data["id"], "source": parse_text(data, "source", path), "text": parse_text(data, "text", path),
              "published": rows, **parse_coverage(data, path)}
    return kind(**common, **kind.parse(data, path))


def load_claims(raw: Any, path: str = "claims") -> tuple[Claim, ...]:
    if not isinstance(raw, (list, tuple)):
        raise SpecError(path, f"must be a list of claims, got {raw!r}")
    claims = tuple(load_claim(c, f"{path}[{i}]") for i, c in enumerate(raw))
    for i, c in enumerate(claims):
        if c.id in [d.id for d in claims[:i]]:
            raise SpecError(f"{path}[{i}].id", f"repeats the claim id {c.id!r}; each id once within a study")
    return claims
