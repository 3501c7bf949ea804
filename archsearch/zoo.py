"""Reference zoo: the papers' networks as named family calls. Exact sizes are asserted in ``tests/test_zoo.py``.

Each entry is registered with :func:`register_zoo` in the block file of its family (``archsearch/blocks/``), next
to the family, with a comment giving the layout and its exact size against the paper's (docs/zoo.md
gives the same table). This module holds the machinery: :class:`ZooEntry`, the registry and the lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .families import get_family
from .registry import Registry
from .spec import GraphSpec


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    reported: str = ""  # the size the paper reports
    task: str = ""

    def spec(self) -> GraphSpec:
        return get_family(self.family)(name=self.name, **self.kwargs)


#: The zoo registry: model name -> :class:`ZooEntry` (:func:`register_zoo` adds to it).
ZOO: Registry[ZooEntry] = Registry("zoo model")


def register_zoo(entry: ZooEntry) -> ZooEntry:
    """Add a named model to the zoo; its family must be registered (the name once)."""
    get_family(entry.family)
    return ZOO.add(entry.name, entry)


def zoo_names() -> list[str]:
    return ZOO.names()


def zoo_entry(name: str) -> ZooEntry:
    return ZOO.get(name)


def zoo_spec(name: str) -> GraphSpec:
    """The spec of a zoo model."""
    return zoo_entry(name).spec()
