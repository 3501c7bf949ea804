"""Errors that state the rule, the path and the values.

Every error a user can cause derives from :class:`ArchsearchError`; the CLI prints it as one line and exits with
its ``exit_code``: 2 for bad input, 1 for a failure of the machine's storage (:class:`StorageFault`: a read-only
or missing folder, a full disk).
"""

from __future__ import annotations

import difflib
import errno
import re
from collections.abc import Iterable

from .text import shown


class ArchsearchError(Exception):
    """Base class of every user-facing error (the CLI prints ``str(err)`` and exits with ``exit_code``)."""

    exit_code = 2  # bad input


class StorageFault(ArchsearchError):
    """The environment failed, not the input: a folder that cannot be written, a full disk, a folder that vanished.
    The CLI exits 1; re-running the same command once the cause is fixed resumes or rewrites what was cut short."""

    exit_code = 1


#: What to do about each operating-system reason a write can fail with.
_WHAT_TO_DO = {
    errno.ENOSPC: "free space on that disk, then re-run the same command",
    errno.EDQUOT: "free space within your disk quota, then re-run the same command",
    errno.EROFS: "the file system is read-only: give a writable folder (--out / --output-dir) or remount it",
    errno.EACCES: "no permission: give a writable folder (--out / --output-dir) or fix its permissions",
    errno.EPERM: "no permission: give a writable folder (--out / --output-dir) or fix its permissions",
    errno.ENOENT: "the folder does not exist (was it moved or deleted?): create it or give another",
    errno.ENOTDIR: "a part of the path is a file, not a folder: give another path",
    errno.EIO: "the disk reported an I/O error: check the disk, then re-run the same command",
}


def os_error_text(err: OSError) -> str:
    """One line for an operating-system error: the path, the reason with its errno, and what to do."""
    where = f"{err.filename}: " if err.filename else ""
    reason = err.strerror or str(err)
    code = f"[Errno {err.errno}] " if err.errno is not None else ""
    hint = _WHAT_TO_DO.get(err.errno or 0)
    return f"{where}{code}{reason}" + (f"; {hint}" if hint else "")


#: ``fail_reason`` prefix of a trial the environment stopped (a full disk, a read-only folder while it wrote its
#: spec or checkpoint): the design is not at fault, so a resume runs it again.
INFRASTRUCTURE = "infrastructure: "


#: OS errors that say the machine failed (full disk or quota, I/O error, read-only file system, no memory).
INFRASTRUCTURE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})
#: The reasons a writable place refuses a file now: the machine's (memory aside) and permissions.
WRITE_REFUSALS = (INFRASTRUCTURE_ERRNOS - {errno.ENOMEM}) | {errno.EACCES, errno.EPERM}
#: How libraries that raise their own types (safetensors, torch.save, SQLite) word a full disk.
NO_SPACE_TEXT = re.compile(r"no space left|os error 28|errno 28|enospc|disk is full|file write failed", re.IGNORECASE)


def is_infrastructure(err: BaseException) -> bool:
    """Whether an exception is the environment's fault (:data:`INFRASTRUCTURE_ERRNOS`, MemoryError, a library's
    own wrapper of a full disk) rather than the model's: a trial it stops is re-queued on resume."""
    seen: BaseException | None = err
    while seen is not None:  # the OS error may be wrapped (safetensors, torch.save re-raise their own types)
        if isinstance(seen, MemoryError):
            return True
        if isinstance(seen, OSError) and seen.errno in INFRASTRUCTURE_ERRNOS:
            return True
        if NO_SPACE_TEXT.search(str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def infrastructure_reason(err: BaseException) -> str:
    """The ``fail_reason`` of a trial stopped by ``err``: ``infrastructure: [Errno 28] No space left on device:
    'PATH'`` (other exceptions name their type)."""
    return f"{INFRASTRUCTURE}{err}" if isinstance(err, OSError) else f"{INFRASTRUCTURE}{type(err).__name__}: {err}"


def storage_fault(err: OSError) -> StorageFault:
    """``err`` as a :class:`StorageFault` (one line, see :func:`os_error_text`)."""
    return StorageFault(os_error_text(err))


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
