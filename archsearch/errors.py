"""Errors that state the rule, the path and the values.

Every error a user can cause derives from :class:`ArchsearchError`; the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .text import shown


class ArchsearchError(Exception):
    """Base class of every user-facing error (the CLI prints ``str(err)`` and exits 2)."""


class SpecError(ArchsearchError, ValueError):
    """An invalid architecture spec. ``path`` is a key path such as ``blocks[3].kernel_size``."""

    def __init__(self, path: str, message: str, *, file: str | None = None):
        self.path = path
        self.message = message
        self.file = file
        super().__init__(self._render())

    def _render(self) -> str:
        where = ": ".join(p for p in (shown(self.file) if self.file else "", self.path) if p)
        return f"{where}: {self.message}" if where else self.message

    def within(self, prefix: str = "", *, file: str | None = None) -> SpecError:
        """The same error, with ``prefix`` put in front of its path (and the file named)."""
        if prefix and self.path:
            path = f"{prefix}{self.path}" if self.path.startswith("[") else f"{prefix}.{self.path}"
        else:
            path = prefix or self.path
        return SpecError(path, self.message, file=file or self.file)


class ConfigError(SpecError):
    """A study or search-space file that breaks a rule (file, key path, allowed values)."""


class BudgetError(ArchsearchError, ValueError):
    """A budget that no value of the free knob can meet."""


class RegistryError(ArchsearchError, KeyError):
    """An unknown or duplicate name in a registry (blocks, families, zoo)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
