"""Outputs written whole or not at all: a crash, a kill or a full disk leaves the previous file (or folder) intact.

Every file is written to a temporary sibling named ``.NAME.tmp-<pid>`` (hidden, and never a name archsearch reads
as an output), flushed and fsync'ed, then moved over ``NAME`` with :func:`os.replace` -- atomic on POSIX and on
Windows within one folder. On any error the temporary file is removed and the error re-raised as an
:class:`OSError` that names ``NAME`` (not the temporary file) with the operating system's reason.

- :func:`atomic_path` yields the temporary path, for writers that want a path (matplotlib ``savefig``,
  safetensors ``save_file``, ``torch.save``, pandas ``to_csv``);
- :func:`atomic_open` yields an open file object; :func:`write_text` and :func:`write_bytes` write a whole file;
- :func:`atomic_folder` yields a temporary sibling folder holding the entries of the old folder that ``keep``
  accepts; the caller writes the new files into it, and it is swapped into place: a reader sees the complete new
  folder or the intact old one, never a mix (Linux swaps the two in one ``renameat2(RENAME_EXCHANGE)``; elsewhere
  two renames, with the old folder kept as ``.NAME.old-<pid>`` in between). A folder that holds subfolders (say a
  study folder given as ``--out``, with its ledger) is never swapped: the new files are written in full beside it
  first, then each is renamed into place -- a failure while writing still leaves every old file as it was.

Writers whose libraries report a full disk as something other than ``OSError`` (``torch.save`` raises
``RuntimeError``, safetensors its own error) are recognised by the message or the folder's free space and
reported as ``ENOSPC``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import NO_SPACE_TEXT

_TEMP = re.compile(r"^\..+\.(?:tmp|old)-\d+$")
_RENAME_EXCHANGE = 2  # linux/fs.h


def temp_name(name: str, kind: str = "tmp") -> str:
    """The hidden sibling name of a file or folder being written: ``.NAME.tmp-<pid>``."""
    return f".{name}.{kind}-{os.getpid()}"


def is_temp(name: str) -> bool:
    """True for a leftover of an interrupted write (``.NAME.tmp-<pid>``, ``.NAME.old-<pid>``): never an output."""
    return bool(_TEMP.match(name))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform or file system can open a folder)."""
    with contextlib.suppress(OSError):
        _fsync_file(folder)


def _no_space(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return st.f_bavail == 0


def as_os_error(err: BaseException, path: str | Path, folder: str | Path | None = None) -> BaseException:
    """``err`` as an :class:`OSError` naming ``path`` when it is one (or a library's wording of a full disk, or
    happened on a full disk); otherwise ``err`` itself."""
    if isinstance(err, OSError) and err.errno is not None:
        return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path))
    if not isinstance(err, Exception):  # Ctrl-C, SystemExit
        return err
    if NO_SPACE_TEXT.search(str(err)) or _no_space(Path(folder) if folder else Path(path).parent):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return err


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without error, the file written there is
    fsync'ed and moved onto ``path``. On error nothing is left and ``path`` is untouched. The folder must exist."""
    path = Path(path)
    tmp = path.parent / temp_name(path.name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        mapped = as_os_error(err, path)
        if mapped is err:
            raise
        raise mapped from err
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open(path, mode, **kwargs)``, written atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where the platform cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the file system cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fill(src: Path, dst: Path, keep: Callable[[str], bool]) -> None:
    """Put the entries of ``src`` that ``keep`` accepts into ``dst``: hard links where possible (cheap, and safe
    because archsearch replaces files, never rewrites them in place), else copies."""
    for entry in src.iterdir():
        if is_temp(entry.name) or not keep(entry.name):
            continue
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True)
            continue
        try:
            os.link(entry, target, follow_symlinks=False)
        except OSError:
            shutil.copy2(entry, target, follow_symlinks=False)


def _move_in(tmp: Path, path: Path, keep: Callable[[str], bool] | None) -> None:
    """Rename every entry of ``tmp`` into ``path``, then remove the entries of ``path`` that ``keep`` refuses and
    the new set does not hold (an old file of the same export, which would no longer match)."""
    new = {e.name for e in tmp.iterdir()}
    for name in sorted(new):
        os.replace(tmp / name, path / name)
    for entry in path.iterdir():
        if entry.name not in new and keep is not None and not keep(entry.name) and entry.is_file():
            entry.unlink()
    tmp.rmdir()


@contextlib.contextmanager
def atomic_folder(path: str | Path, keep: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``, holding the entries of the existing ``path`` for which
    ``keep(name)`` is true (none without ``keep``). When the block ends without error, the temporary folder
    becomes ``path`` and the old one is removed; on error ``path`` is untouched and nothing is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path.name)
    old = path.parent / temp_name(path.name, "old")
    # a folder with subfolders is not an export folder of its own: copying it would be costly, swapping it unsafe
    mixed = path.is_dir() and any(e.is_dir() and not is_temp(e.name) for e in path.iterdir())
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if keep is not None and path.is_dir() and not mixed:
            _fill(path, tmp, keep)
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file() and not f.is_symlink():
                _fsync_file(f)
        _fsync_dir(tmp)
        if mixed:
            _move_in(tmp, path, keep)
        elif path.is_dir() and _exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        else:
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():  # stopped between the two renames: the old folder goes back
            with contextlib.suppress(OSError):
                os.replace(old, path)
        where = str(getattr(err, "filename", None) or path)
        if where.startswith(str(tmp)):  # name the file the user will look for, not its temporary twin
            where = str(path) + where[len(str(tmp)):]
        mapped = as_os_error(err, where, tmp.parent)
        if mapped is err:
            raise
        raise mapped from err
    _fsync_dir(path.parent)
