"""Parametric design families: functions from a few hyperparameters to a :class:`GraphSpec`.

This module is the machinery (:class:`Knob`, :class:`Family`, the registry and its lookups); each family lives in
the block file of its family (``archsearch/blocks/<family>.py``, as timm keeps a model family in one file),
registered there with :func:`register_family`. Importing ``archsearch`` imports every block file.

Each family declares its integer *knobs* (name, range, step) -- the values the budget solver may free. The zoo is
a set of named calls of these families. Parameters and MACs are monotone in every knob (they grow, except NSR's
MACs, which fall as sparsity groups rise at the same size), which the solver relies on (``tests/test_solver.py``
checks it on each family).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import RegistryError, SpecError, did_you_mean
from .registry import Registry
from .spec import GraphSpec


@dataclass(frozen=True)
class Knob:
    """An integer hyperparameter with its allowed range (``low``..``high`` inclusive, in ``step``s)."""

    name: str
    low: int
    high: int
    step: int = 1

    def values(self, low: int | None = None, high: int | None = None) -> range:
        lo = self.low if low is None else max(self.low, low)
        if (lo - self.low) % self.step:
            lo += self.step - (lo - self.low) % self.step
        hi = self.high if high is None else min(self.high, high)
        return range(lo, hi + 1, self.step)


@dataclass(frozen=True)
class Family:
    """A registered design family. ``labels`` (argument -> short letter) and ``variants`` (arguments whose values
    split a design into separate legend lines) tell the report how to name the family's sweeps."""

    name: str
    fn: Callable[..., GraphSpec]
    knobs: dict[str, Knob]
    doc: str
    labels: dict[str, str] = field(default_factory=dict)
    variants: tuple[str, ...] = ()

    @property
    def defaults(self) -> dict[str, Any]:
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}

    def __call__(self, **kwargs: Any) -> GraphSpec:
        allowed = self.defaults
        for key in kwargs:
            if key not in allowed:
                raise SpecError(key, f"unknown argument of family {self.name!r}{did_you_mean(key, allowed)}; "
                                     f"allowed: {', '.join(allowed)}")
        for key, knob in self.knobs.items():
            v = kwargs.get(key, allowed[key])
            if isinstance(v, bool) or not isinstance(v, int) or not (knob.low <= v <= knob.high) or \
                    (v - knob.low) % knob.step:
                raise SpecError(key, f"must be an integer in {knob.low}..{knob.high}"
                                     f"{f' in steps of {knob.step}' if knob.step > 1 else ''}, got {v!r}")
        return self.fn(**kwargs)

    def knob(self, name: str) -> Knob:
        if name not in self.knobs:
            raise SpecError("knob", f"{name!r} is not a knob of family {self.name!r}{did_you_mean(name, self.knobs)}; "
                                    f"knobs: {', '.join(self.knobs)}")
        return self.knobs[name]


#: The family registry: name -> :class:`Family` (:func:`register_family` adds to it).
FAMILIES: Registry[Family] = Registry("family")


def register_family(name: str, *, labels: dict[str, str] | None = None, variants: tuple[str, ...] = (),
                    **knobs: tuple[int, int] | tuple[int, int, int]):
    """Decorator registering a function ``(**arguments) -> GraphSpec`` as family ``name``; ``knobs`` name its
    integer arguments the solver may free, as ``(low, high)`` or ``(low, high, step)``.

    Report labels: ``labels`` gives swept arguments a short letter in point labels (the papers' letters, e.g.
    ``{"xunit_kernel_size": "r"}``: ``r=9``); ``variants`` names arguments whose values split a design into
    separate lines of a figure (xUnit's r at each depth). One argument has one letter across all families and one
    letter names one argument, so labels stay unambiguous in a report that mixes families.
    """
    labels = dict(labels or {})
    variants = tuple(variants)

    def deco(fn: Callable[..., GraphSpec]) -> Callable[..., GraphSpec]:
        arguments = [k for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty]
        for what, names in (("knob", knobs), ("label", labels), ("variant", variants)):
            for arg in names:
                if arg not in arguments:
                    raise RegistryError(f"family {name!r}: {what} {arg!r} is not an argument of "
                                        f"{fn.__name__}(){did_you_mean(arg, arguments)}; arguments: "
                                        f"{', '.join(arguments)}")
        known = argument_labels()
        for arg, short in labels.items():
            if not isinstance(short, str) or not short:
                raise RegistryError(f"family {name!r}: the label of {arg!r} must be a non-empty string, got {short!r}")
            if known.get(arg, short) != short:
                raise RegistryError(f"family {name!r}: argument {arg!r} is labelled {known[arg]!r} by another "
                                    f"family, got {short!r}")
            other = next((a for a, s in known.items() if s == short and a != arg), None)
            if other is not None:
                raise RegistryError(f"family {name!r}: label {short!r} of {arg!r} already names argument "
                                    f"{other!r}")
        FAMILIES.add(name, Family(name, fn, {k: Knob(k, *v) for k, v in knobs.items()}, (fn.__doc__ or "").strip(),
                                  labels, variants))
        return fn

    return deco


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def families() -> dict[str, Family]:
    return FAMILIES.as_dict()


def argument_labels() -> dict[str, str]:
    """Short letters of swept arguments in report labels (argument -> letter), over every registered family."""
    out: dict[str, str] = {}
    for fam in FAMILIES.values():
        out.update(fam.labels)
    return out


def variant_arguments() -> tuple[str, ...]:
    """Arguments whose values split a design into legend variants in reports, over every registered family."""
    out: dict[str, None] = {}
    for fam in FAMILIES.values():
        out.update(dict.fromkeys(fam.variants))
    return tuple(out)
