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
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, did_you_mean
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
    name: str
    fn: Callable[..., GraphSpec]
    knobs: dict[str, Knob]
    doc: str

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


def register_family(name: str, **knobs: tuple[int, int] | tuple[int, int, int]):
    def deco(fn: Callable[..., GraphSpec]) -> Callable[..., GraphSpec]:
        FAMILIES.add(name, Family(name, fn, {k: Knob(k, *v) for k, v in knobs.items()}, (fn.__doc__ or "").strip()))
        return fn

    return deco


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def families() -> dict[str, Family]:
    return FAMILIES.as_dict()
