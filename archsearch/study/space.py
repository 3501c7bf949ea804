"""Search-space files (``search_spaces/*.yaml``), validated at load into typed, frozen objects.

A search space lists *designs*; each is a registered family with fixed arguments, the free knob a budget solves,
and (for searches) the ranges of the arguments to search::

    name: xunit_fig4
    designs:
      - name: convnet                 # Conv+BN+ReLU, 0% of the parameters in activations
        family: convnet
        fixed: {depth: 4}
        free_knob: width
      - name: xnet
        family: xnet
        fixed: {depth: 4}
        free_knob: width
        search:
          xunit_kernel_size: {choices: [1, 3, 5, 7, 9]}

Every argument is checked against the family's signature and its own rules at load (:func:`check_argument`).
"""

from __future__ import annotations

import itertools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArchsearchError, ConfigError, SpecError, did_you_mean
from ..families import Family, get_family
from ..schema import coerce, describe, load_dataclass, read_yaml
from ..spec import check_name
from ..zoo import zoo_entry


@dataclass(frozen=True)
class ParamRange:
    """A searched argument: ``choices`` or an integer/float range ``low``..``high`` (``step``, ``log``)."""

    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if (self.choices is None) == (self.low is None or self.high is None):
            raise SpecError("", "give either `choices` or both `low` and `high`")
        if self.choices is not None and not self.choices:
            raise SpecError("choices", "must not be empty")
        for key in ("low", "high", "step"):
            v = getattr(self, key)
            if v is not None and not math.isfinite(v):
                raise SpecError(key, f"must be a finite number, got {v!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise SpecError("low", f"`low <= high` must hold, got low={self.low}, high={self.high}")
        if self.step is not None and not self.step > 0:
            raise SpecError("step", f"must be a number > 0, got {self.step!r}")
        if self.log and self.low is not None and not self.low > 0:
            raise SpecError("low", f"must be > 0 for a log range, got {self.low!r}")

    @property
    def is_int(self) -> bool:
        return self.choices is None and float(self.low).is_integer() and float(self.high).is_integer() and (
            self.step is None or float(self.step).is_integer())


#: sha256 digests are 64 lowercase hex digits.
_HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class Design:
    """One design of a search space: a registered ``family`` with ``fixed`` arguments (or a ``zoo`` model, which
    gives both), the ``free_knob`` a budget solves and the ``search`` ranges. With ``weights`` it is a *published
    checkpoint*: evaluated with those weights, never trained (the architecture is fixed, so no knob or range);
    a relative path is read under the data root, as the datasets are, and ``sha256`` (optional) must match the
    file. ``zoo``, ``weights`` and ``sha256`` stay out of ``repr`` (the study's config fingerprint adds the
    weights itself), so designs written before them keep their fingerprint."""

    name: str
    family: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    free_knob: str | None = None
    search: Mapping[str, ParamRange] = field(default_factory=dict)
    zoo: str | None = field(default=None, repr=False)
    weights: str | None = field(default=None, repr=False)
    sha256: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        self._published()
        try:
            fam = get_family(self.family)
        except ArchsearchError as err:
            raise SpecError("family", str(err)) from None
        allowed = fam.defaults
        for key in self.fixed:
            if key not in allowed:
                raise SpecError(f"fixed.{key}", f"is not an argument of family {self.family!r}"
                                                f"{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")
        if self.free_knob is not None:
            if self.free_knob not in fam.knobs:
                raise SpecError("free_knob", f"must be a knob of family {self.family!r} "
                                             f"({', '.join(fam.knobs)}), got {self.free_knob!r}")
            if self.free_knob in self.fixed:
                raise SpecError("free_knob", f"{self.free_knob!r} is solved for the budget; remove it from `fixed`")
        ranges = {}
        for key, raw in self.search.items():
            if key not in allowed:
                raise SpecError(f"search.{key}", f"is not an argument of family {self.family!r}"
                                                 f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
            ranges[key] = raw if isinstance(raw, ParamRange) else load_dataclass(ParamRange, raw, f"search.{key}")
        object.__setattr__(self, "search", ranges)
        # The arguments against the family's signature: type, then the family's own rules (range, odd kernels,
        # divisibility) by building the design with its defaults + these arguments (the free knob may move).
        earlier: dict[str, Any] = {}
        for key, value in self.fixed.items():  # each key with the ones before it: the error sits where it starts
            earlier[key] = check_argument(fam, earlier, key, value, f"fixed.{key}", self.free_knob)
        for key, rng in ranges.items():
            others = {k: _candidates(r) for k, r in ranges.items() if k != key}
            _check_range(fam, dict(self.fixed), key, rng, f"search.{key}", self.free_knob, others)

    def _published(self) -> None:
        """``zoo`` expands to family and fixed arguments; ``weights`` and ``sha256`` are checked."""
        if self.zoo is not None:
            try:
                entry = zoo_entry(self.zoo)
            except ArchsearchError as err:
                raise SpecError("zoo", str(err)) from None
            if self.family and self.family != entry.family:
                raise SpecError("family", f"zoo model {self.zoo!r} is of family {entry.family!r}, got "
                                          f"{self.family!r}; give one of `zoo` or `family`")
            if self.fixed:
                raise SpecError("fixed", f"zoo model {self.zoo!r} fixes every argument; give `family` and `fixed` "
                                         "instead of `zoo` to change one")
            object.__setattr__(self, "family", entry.family)
            object.__setattr__(self, "fixed", dict(entry.kwargs))
        if not self.family:
            raise SpecError("family", "give a registered family (with `fixed` arguments) or a `zoo` model")
        if self.weights is None:
            if self.sha256 is not None:
                raise SpecError("sha256", "checks a `weights` file: give `weights` too")
            return
        if not isinstance(self.weights, str) or not self.weights.strip():
            raise SpecError("weights", f"must be a weights file (a path; relative: under the data root), got "
                                       f"{self.weights!r}")
        if self.free_knob is not None or self.search:
            raise SpecError("weights", "published weights fix the architecture: a design with `weights` has no "
                                       "`free_knob` and no `search` ranges")
        if self.sha256 is not None and (not isinstance(self.sha256, str) or len(self.sha256) != 64
                                        or not set(self.sha256) <= _HEX):
            raise SpecError("sha256", f"must be the file's sha256, 64 lowercase hex digits, got {self.sha256!r}")

    @property
    def published(self) -> bool:
        """Whether this design is a published checkpoint (evaluated, not trained)."""
        return self.weights is not None

    def accepts(self, argument: str) -> bool:
        return argument in get_family(self.family).defaults

    def sweeps(self, argument: str) -> bool:
        """Whether a sweep over ``argument`` moves this design: it takes the argument and does not fix it (a
        design that fixes it -- or lacks it -- is a baseline: one point; so is a published checkpoint)."""
        return self.accepts(argument) and argument not in self.fixed and not self.published


def argument_types(fam: Family) -> dict[str, Any]:
    """The annotated type of every argument of a family (``Any`` where there is none)."""
    hints = typing.get_type_hints(fam.fn)
    return {k: hints.get(k, Any) for k in fam.defaults}


def _knob_candidates(fam: Family, knob: str | None) -> list[int]:
    """A few values of the free knob to retry with when the default fails a rule that the knob may fix (e.g.
    channels divisible by a cardinality): the solver will look for such a value, so only all of them failing
    is an error."""
    if knob is None or knob not in fam.knobs:
        return []
    values = fam.knobs[knob].values()
    stride = max(1, len(values) // 16)
    picks = set(values[::stride][:17]) | {v for v in (12, 24, 36, 48, 60, 72, 96, 120, 144, 240, 360, 720)
                                           if v in values}
    return sorted(picks)


def check_argument(fam: Family, others: Mapping[str, Any], key: str, value: Any, path: str,
                   free_knob: str | None = None, *, design: str | None = None) -> Any:
    """``value`` for the argument ``key`` of ``fam``, checked: its annotated type (ints accepted for floats,
    floats finite), then the family's rules, by building the family with its defaults, ``others`` and
    ``key=value`` (retrying a few values of ``free_knob``, which the budget solver moves). Errors are
    :class:`SpecError` at ``path``."""
    tp = argument_types(fam).get(key, Any)
    ok, v = coerce(tp, value)
    whose = f"argument {key!r} of family {fam.name!r}" + (f" (design {design!r})" if design else "")
    if not ok:
        raise SpecError(path, f"must be {describe(tp)} ({whose}), got {value!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise SpecError(path, f"must be a finite number ({whose}), got {value!r}")
    args = {**others, key: v}
    first = try_family(fam, args)
    if first is None:
        return v
    if free_knob is not None and free_knob not in args:
        for knob_value in _knob_candidates(fam, free_knob):
            if try_family(fam, {**args, free_knob: knob_value}) is None:
                return v
    detail = first.message if first.path in (key, "") else f"{first.path}: {first.message}"
    raise SpecError(path, f"{key}={v!r} breaks a rule of family {fam.name!r}"
                          f"{f' (design {design!r})' if design else ''}: {detail}")


def try_family(fam: Family, args: Mapping[str, Any]) -> SpecError | None:
    try:
        fam(**args)
    except SpecError as err:
        return err
    except (TypeError, ValueError, ZeroDivisionError) as err:  # a family without a rule for this value
        return SpecError("", f"is not accepted by family {fam.name!r} ({type(err).__name__}: {err})")
    return None


def _candidates(rng: ParamRange) -> list[Any]:
    """Values a searched argument can take, for checking another one jointly (choices, or a range's ends)."""
    if rng.choices is not None:
        return list(rng.choices)
    return [int(rng.low), int(rng.high)] if rng.is_int else [rng.low, rng.high]


#: Combinations of the other searched arguments tried before a searched value counts as breaking a rule.
JOINT_TRIES = 256


def _check_jointly(fam: Family, fixed: dict[str, Any], key: str, value: Any, path: str, free_knob: str | None,
                   others: dict[str, list[Any]]) -> None:
    """A searched value is valid when some combination of the other searched arguments' values makes the design
    valid (``kernel_size: 7`` is fine beside ``stride: [2, 4, 6]`` though not beside the default stride 8)."""
    try:
        check_argument(fam, fixed, key, value, path, free_knob)
    except SpecError:
        tp = argument_types(fam).get(key, Any)
        ok, v = coerce(tp, value)
        if ok and others:
            for combo in itertools.islice(itertools.product(*others.values()), JOINT_TRIES):
                if try_family(fam, {**fixed, **dict(zip(others, combo)), key: v}) is None:
                    return
        raise


def _check_range(fam: Family, fixed: dict[str, Any], key: str, rng: ParamRange, path: str,
                 free_knob: str | None, others: dict[str, list[Any]] | None = None) -> None:
    tp = argument_types(fam).get(key, Any)
    others = others or {}
    if rng.choices is not None:
        for j, choice in enumerate(rng.choices):
            _check_jointly(fam, fixed, key, choice, f"{path}.choices[{j}]", free_knob, others)
        return
    if tp is int:
        if not rng.is_int:
            raise SpecError(path, f"{key!r} is an integer argument: give integer low, high and step, got low="
                                  f"{rng.low}, high={rng.high}, step={rng.step}")
        values = range(int(rng.low), int(rng.high) + 1, int(rng.step or 1))  # type: ignore[arg-type]
        sample = values if len(values) <= 256 else [values[0], values[-1]]
        for v in sample:
            _check_jointly(fam, fixed, key, v, path, free_knob, others)
    elif tp is float:
        for end in ("low", "high"):
            check_argument(fam, fixed, key, getattr(rng, end), f"{path}.{end}", free_knob)
    else:
        raise SpecError(path, f"{key!r} is {describe(tp)}: search it with `choices`, not low/high")


@dataclass(frozen=True)
class SearchSpace:
    name: str
    designs: tuple[Design, ...]
    description: str = ""
    path: str = ""

    @property
    def all_published(self) -> bool:
        """Every design is a published checkpoint: nothing is trained, and the verdicts are about the authors'
        own models (paper scale)."""
        return all(d.published for d in self.designs)

    def design(self, name: str) -> Design:
        for d in self.designs:
            if d.name == name:
                return d
        names = [d.name for d in self.designs]
        raise ArchsearchError(f"unknown design {name!r}{did_you_mean(name, names)} in search space {self.name!r}; "
                              f"designs: {', '.join(names)}")


def load_search_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    data = read_yaml(path)
    try:
        if not isinstance(data, Mapping):
            raise SpecError("", f"must be a mapping with keys name, designs, description; got {type(data).__name__}")
        for key in data:
            if key not in ("name", "designs", "description"):
                raise SpecError(str(key), f"unknown key{did_you_mean(str(key), ['name', 'designs', 'description'])};"
                                          " allowed: name, designs, description")
        raw = data.get("designs")
        if not isinstance(raw, list) or not raw:
            raise SpecError("designs", f"must be a non-empty list of designs, got {raw!r}")
        designs = []
        for i, d in enumerate(raw):
            designs.append(load_dataclass(Design, d, f"designs[{i}]"))
        names = [d.name for d in designs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpecError("designs", f"design names must be unique, repeated: {', '.join(sorted(dup))}")
        if "name" in data:
            check_name(data["name"], "name")
        if not isinstance(data.get("description", ""), str):
            raise SpecError("description", f"must be a string, got {data['description']!r}")
        return SearchSpace(str(data.get("name", path.stem)), tuple(designs), str(data.get("description", "")),
                           str(path))
    except SpecError as err:
        raise ConfigError(err.path, err.message, file=str(path)) from None
