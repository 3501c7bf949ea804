"""The one registry type: every plug-in (block types, families, zoo models, tasks, weight layouts, claim kinds) is
registered once under a name and looked up with a did-you-mean error.

Modelled on timm's ``_registry.py`` (register once, list, look up) and Optuna's error style (the rule and the
values): ``unknown family 'xnett' (did you mean 'xnet'?); registered: convnet, memnet, xnet``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import RegistryError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> objects, in registration order. ``what`` names the kind of thing in messages (``family``)."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> T:
        """Register ``obj`` under ``name`` (and ``aliases``); a name can be registered once."""
        for n in (name, *aliases):
            if not isinstance(n, str) or not n:
                raise RegistryError(f"a {self.what} needs a non-empty name, got {n!r}")
            if n in self._items or n in self._aliases:
                raise RegistryError(f"{self.what} {n!r} is already registered")
        self._items[name] = obj
        self._aliases.update({a: name for a in aliases})
        return obj

    def register(self, name: str, **kw) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        def deco(obj: T) -> T:
            return self.add(name, obj, **kw)

        return deco

    def remove(self, name: str) -> None:
        """Unregister ``name`` (tests that add a throw-away plug-in take it out again)."""
        self._items.pop(name, None)
        for a in [a for a, n in self._aliases.items() if n == name]:
            del self._aliases[a]

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` or of its alias; unknown names raise :class:`RegistryError`."""
        if isinstance(name, str):
            if name in self._items:
                return name
            if name in self._aliases:
                return self._aliases[name]
        raise RegistryError(f"unknown {self.what} {name!r}{did_you_mean(str(name), self.names())}; "
                            f"registered: {', '.join(self.names())}")

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs in registration order, as ``dict.items()`` gives them."""
        return list(self._items.items())

    def values(self) -> list[T]:
        return list(self._items.values())

    def as_dict(self) -> dict[str, T]:
        """A copy: name -> object."""
        return dict(self._items)

    def __contains__(self, name: object) -> bool:
        # names are strings: anything else (None, a list from a malformed YAML file) is simply not registered
        return isinstance(name, str) and (name in self._items or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._items)})"
