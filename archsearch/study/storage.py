"""Where the trial ledger lives: storage URLs checked, masked and opened safely.

A ledger is an Optuna study in any SQLAlchemy database Optuna supports: an SQLite file (the default, next to a
study's outputs) or a PostgreSQL / MySQL server shared by several machines. This module is the one place that
turns a URL into an Optuna storage:

- :func:`mask_url` is what every printed URL goes through (a password never reaches a terminal, a log or a report);
- :func:`check_url` refuses an unknown dialect or an unusable URL when a study file is loaded;
- :func:`normalize_url` makes a bare ``postgresql://`` work with whichever PostgreSQL driver is installed;
- :func:`make_storage` opens the storage: an unreachable database becomes one :class:`StorageError` line, and
  several processes creating the same new ledger at once all succeed (Optuna creates its tables and stamps its
  Alembic revision without a lock, so today all but one crash with ``UNIQUE constraint failed: alembic_version``
  or ``table studies already exists``; see optuna/optuna#1092 and #4621, where the advice is to create the
  storage once before starting workers. Here creation is serialised: a lock file next to an SQLite ledger
  (deleted after), an advisory lock on PostgreSQL and MySQL, and a retry for anything that still races);
- :func:`create_or_load` creates a named study or loads the one another process just created;
- :func:`ledger_fault` turns a database error met anywhere (a corrupt or truncated SQLite file, a read-only
  folder, a full disk) into one line; :func:`set_aside` moves a corrupt SQLite ledger out of the way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import importlib.util
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import ArchsearchError, StorageFault

#: ``dialect+driver`` names a ledger may use (Optuna's storage is synchronous: no async drivers).
ALLOWED_DRIVERS: dict[str, tuple[str, ...]] = {
    "sqlite": ("sqlite", "sqlite+pysqlite"),
    "postgresql": ("postgresql", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+pg8000"),
    "mysql": ("mysql", "mysql+pymysql", "mysql+mysqldb", "mysql+mysqlconnector"),
}
#: The forms shown to a user whose URL was refused.
ALLOWED_FORMS = (
    "sqlite:///PATH",
    "postgresql://USER:PASSWORD@HOST:PORT/DB (also postgresql+psycopg2://, postgresql+psycopg://, "
    "postgresql+pg8000://)",
    "mysql+pymysql://USER:PASSWORD@HOST:PORT/DB (also mysql+mysqldb://, mysql+mysqlconnector://)",
)
#: The Python module each driver needs, and how to get it.
_DRIVER_MODULES: dict[str, tuple[str, str]] = {
    "postgresql+psycopg2": ("psycopg2", 'pip install -e ".[postgres]" (or pip install psycopg2-binary)'),
    "postgresql+psycopg": ("psycopg", 'pip install "psycopg[binary]" (or use postgresql+psycopg2:// with '
                                      'pip install -e ".[postgres]")'),
    "postgresql+pg8000": ("pg8000", "pip install pg8000"),
    "mysql": ("MySQLdb", "pip install mysqlclient (or use mysql+pymysql:// with pip install pymysql)"),
    "mysql+mysqldb": ("MySQLdb", "pip install mysqlclient (or use mysql+pymysql:// with pip install pymysql)"),
    "mysql+pymysql": ("pymysql", "pip install pymysql"),
    "mysql+mysqlconnector": ("mysql.connector", "pip install mysql-connector-python"),
}
#: Seconds to wait for a database server to answer before calling it unreachable.
CONNECT_TIMEOUT_S = 10
#: Seconds to wait for another process that is creating the same ledger.
CREATE_LOCK_TIMEOUT_S = 120
#: SQLite's own lock timeout: several local workers write to one file.
SQLITE_TIMEOUT_S = 60
_QUERY_SECRETS = ("password", "passwd", "pwd", "sslpassword", "secret", "token")
_QUERY_SECRET_RE = re.compile(r"((?:" + "|".join(_QUERY_SECRETS) + r")=)[^&\s]*", re.IGNORECASE)
_LOCK_KEY = 0x0A4C_5345_4152_4348  # "archsearch" schema-creation advisory lock (a signed 64-bit value)


class StorageError(ArchsearchError):
    """A ledger storage that cannot be used: a refused URL, a missing driver, an unreachable database."""


class LedgerUnwritable(StorageError, StorageFault):
    """A ledger database the environment refuses to open or write: read-only, full, missing, locked (exit 1)."""


class LedgerCorrupt(StorageError):
    """An SQLite ledger file that is not a readable database (truncated, overwritten, not a ledger at all).
    ``path`` is the file, ``reason`` SQLite's words; the message says how to move it aside."""

    def __init__(self, path: Path | str, reason: str, hint: str = ""):
        self.path, self.reason = Path(path), reason
        hint = hint or (f"move it aside (mv {path} {path}.corrupt) to start a new ledger, or restore it from a "
                        "backup; archsearch never deletes a ledger it cannot read")
        super().__init__(f"{path}: not a readable ledger (SQLite: {reason}); {hint}")


#: SQLite's words for a file that is not (or no longer) a database.
_CORRUPT = ("file is not a database", "database disk image is malformed", "malformed", "not a database",
            "file is encrypted")
#: SQLite's words for an environment that refuses a write, and what to do (the CLI exits 1 for these).
_ENVIRONMENT = (
    ("readonly database", errno.EROFS, "the ledger or its folder is read-only: make it writable, or give "
                                       "another output folder (--output-dir)"),
    ("disk is full", errno.ENOSPC, "free space on that disk, then re-run the same command"),
    ("unable to open database file", errno.ENOENT, "its folder is missing or cannot be written: create it or "
                                                   "give another output folder (--output-dir)"),
    ("disk i/o error", errno.EIO, "the disk reported an I/O error: check the disk, then re-run the same command"),
    ("database is locked", errno.EBUSY, "another process holds the ledger: wait for it, then re-run"),
)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err``, the errors it wraps (SQLAlchemy's ``orig``) and the ones it was raised from or during."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def _is_database_error(e: BaseException) -> bool:
    if isinstance(e, sqlite3.Error):
        return True
    sa_exc = sys.modules.get("sqlalchemy.exc")  # not imported: the error cannot be SQLAlchemy's
    return sa_exc is not None and isinstance(e, (sa_exc.DBAPIError, sa_exc.SQLAlchemyError))


def ledger_fault(err: BaseException, url: str | None = None, corrupt_hint: str = "", *,
                 action: str = "use") -> ArchsearchError | None:
    """One line for a database error met while using a ledger (None when ``err`` is not one): a file that is not
    a readable SQLite database is :class:`LedgerCorrupt` (exit 2: the ledger must be moved aside); a read-only,
    full, missing or locked database is :class:`LedgerUnwritable` (exit 1); any other database error is
    :class:`StorageError`. ``action`` is the verb of the message (``cannot open the ledger database ...``). Optuna's own wrapper (``StorageInternalError``, whose text guesses at "invalid
    data ... exceeding max length") is looked through to the database's reason."""
    db = [e for e in _chain(err) if _is_database_error(e)]
    if not db:
        return None
    reason = _first_line(db[-1])  # the innermost: the driver's own words
    low = reason.lower()
    where = sqlite_path(url) if url else None
    name = f" {where}" if where is not None else (f" {mask_url(url)}" if url else "")
    if url:
        reason = _scrub(reason, url)
    if where is not None and any(w in low for w in _CORRUPT):
        return LedgerCorrupt(where, reason, corrupt_hint)
    for words, code, hint in _ENVIRONMENT:
        if words in low:
            return LedgerUnwritable(f"cannot {action} the ledger database{name}: {reason} [Errno {code}]; {hint}")
    return StorageError(f"cannot {action} the ledger database{name}: {reason}")


def corrupt_hint(path: Path, run_command: str | None) -> str:
    """What to do about the corrupt ledger ``path``: with ``run_command`` (a study's own default ledger) the
    ``--fresh`` run that moves it aside; without (a ledger at a ``storage:`` URL, which archsearch never moves or
    deletes) the move to do by hand."""
    if run_command:
        return (f"move it aside to start over: `{run_command} --fresh` renames it {path.name}.corrupt-<time> "
                "(nothing is deleted), or restore it from a backup")
    return (f"it is the study's storage: URL, which archsearch never moves or deletes: move it aside yourself "
            f"(mv {path} {path}.corrupt) or restore it from a backup")


def unreadable(path: Path) -> str | None:
    """SQLite's reason why the file ``path`` is not a readable database (a full ``quick_check``), or None when it
    is one (or does not exist)."""
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_S)
    except sqlite3.Error as err:
        return str(err)
    try:
        rows = con.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as err:  # locked, unreadable: not a verdict on the file's contents
        if not any(w in str(err).lower() for w in _CORRUPT):
            return None
        return str(err)
    except sqlite3.DatabaseError as err:
        return str(err)
    finally:
        con.close()
    verdict = "; ".join(str(r[0]) for r in rows)
    return None if verdict == "ok" else f"database disk image is malformed ({verdict[:120]})"


def set_aside(path: Path) -> Path:
    """Move the (corrupt) ledger ``path`` -- with its journal files -- to ``<path>.corrupt-<UTC time>``; returns
    the new name. Nothing is deleted."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-journal", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def _optuna():
    import optuna  # ~0.7 s: only ledger paths pay it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _parse(url: str):
    from sqlalchemy.engine import make_url  # only database URLs need it

    return make_url(url)


def mask_url(url: str) -> str:
    """``url`` with its password (and any password-like query parameter) replaced by ``***``.

    Never raises: a string that is not a URL comes back with anything that could be a password masked.
    """
    text = str(url)
    try:
        u = _parse(text)
        secret_keys = [k for k in u.query if k.lower() in _QUERY_SECRETS]
        if u.password is not None or secret_keys:
            u = u.set(query={k: ("MASKED0SECRET" if k in secret_keys else v) for k, v in u.query.items()})
            text = u.render_as_string(hide_password=True).replace("MASKED0SECRET", "***")
    except Exception:
        pass
    # Belt and braces, and the only masking for a string that is not a URL: scheme://user:secret@host (up to
    # the authority's last "@"), a lone "user:secret@host" without a scheme, and password=... parameters.
    text = re.sub(r"(://[^/@:]*:)[^/]*@", r"\1***@", text)
    text = re.sub(r"^([^/@:]+:)(?!//)[^/]*@", r"\1***@", text)
    return _QUERY_SECRET_RE.sub(r"\1***", text)


def _secrets(url: str) -> list[str]:
    """Every string in ``url`` that is, or is part of, its password, longest first: the parsed password, the raw
    text between the user's ``:`` and the authority's last ``@`` (with an unencoded ``@`` the parser ends the
    password at the first one and calls the rest part of the host, which drivers then print), its decoded form
    and its ``@``-separated pieces, and password-like query values."""
    found: set[str] = set()
    try:
        password = _parse(url).password
    except Exception:
        password = None
    if password:
        found.add(str(password))
    raw = re.match(r"[^:/]*://[^/@:]*:(.*)@", str(url))  # greedy: up to the last "@" (over-masks, never under)
    if raw:
        text = raw.group(1)
        found |= {text, unquote(text), *text.split("@"), *unquote(text).split("@")}
    found |= {m.group(1) for m in re.finditer(r"(?:" + "|".join(_QUERY_SECRETS) + r")=([^&\s]+)", str(url),
                                               re.IGNORECASE)}
    return sorted((f for f in found if f), key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the password of ``url``, and every part of it, replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None)  # SQLAlchemy wraps the driver's error; its text is the useful part
    text = str(orig if orig is not None else err).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "") or type(err).__name__
    return line


def _allowed_text() -> str:
    return "; ".join(ALLOWED_FORMS)


def check_url(url: str) -> str | None:
    """Why ``url`` cannot hold a ledger (one line, password masked), or None when it can."""
    shown = mask_url(url)
    if not isinstance(url, str) or not url.strip():
        return f"storage URL is empty; allowed: {_allowed_text()}"
    try:
        u = _parse(url)
    except Exception:
        return (f"storage URL {shown!r} is not a URL of the form dialect[+driver]://...; "
                f"allowed: {_allowed_text()}")
    dialect = u.get_backend_name()
    allowed = ALLOWED_DRIVERS.get(dialect)
    if allowed is None:
        return (f"storage URL {shown!r}: unknown or unsupported database {dialect!r}; "
                f"allowed: {_allowed_text()}")
    if u.drivername not in allowed:
        return (f"storage URL {shown!r}: driver {u.drivername!r} is not supported for a ledger; "
                f"use one of {', '.join(d + '://' for d in allowed)}")
    if dialect == "sqlite":
        if not u.database or u.database == ":memory:" or u.database.startswith("file::memory:"):
            return (f"storage URL {shown!r}: an in-memory SQLite database is lost when the run ends and is not "
                    "shared by workers; give a file, sqlite:///PATH")
    elif not u.database:
        return f"storage URL {shown!r}: no database name; write {dialect}://USER:PASSWORD@HOST:PORT/DATABASE"
    elif "@" in (u.host or ""):
        # the parser ends the password at its first "@" and takes the rest for the host: such a URL never
        # reaches the intended server, and the driver's error would print that part of the password
        return (f"storage URL {shown!r}: the password holds an unencoded '@'; percent-encode it as %40 "
                f"({dialect}://USER:p%40ss@HOST/DB for the password p@ss)")
    return None


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def normalize_url(url: str) -> str:
    """``url`` with a driver that is installed: a bare ``postgresql://`` (psycopg 3 in SQLAlchemy 2) becomes
    ``postgresql+psycopg2://`` when only psycopg2 is importable.

    Raises :class:`StorageError` (one line, with the ``pip install`` to run) when the URL's driver is missing.
    """
    u = _parse(url)
    driver = u.drivername
    if driver == "postgresql":
        if _have("psycopg"):
            return url
        if _have("psycopg2"):
            return u.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        raise StorageError(f"storage URL {mask_url(url)!r} needs a PostgreSQL driver, and neither psycopg2 nor "
                           'psycopg is installed: pip install -e ".[postgres]"')
    need = _DRIVER_MODULES.get(driver)
    if need is not None and not _have(need[0]):
        raise StorageError(f"storage URL {mask_url(url)!r} needs the Python module {need[0]!r}: {need[1]}")
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for any other database)."""
    u = _parse(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def engine_kwargs_for(url: str) -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` arguments for a ledger at ``url`` (a normalized URL)."""
    u = _parse(url)
    dialect, driver = u.get_backend_name(), u.get_driver_name()
    connect_args: dict[str, Any] = {}
    if dialect == "sqlite":
        connect_args["timeout"] = SQLITE_TIMEOUT_S
    elif "connect_timeout" not in u.query and "timeout" not in u.query:
        key = {"pg8000": "timeout", "mysqlconnector": "connection_timeout"}.get(driver, "connect_timeout")
        connect_args[key] = CONNECT_TIMEOUT_S
    return {"connect_args": connect_args} if connect_args else {}


@contextlib.contextmanager
def creation_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """An exclusive lock on the file ``path``, held for the ``with`` block and removed after it.

    The file is created and deleted around the lock (so no lock file stays next to a ledger); a waiter that got
    a lock on a file already deleted by the previous holder tries again. A no-op where the platform has no
    ``fcntl`` or the folder is read-only (the retry in :func:`make_storage` still applies).
    """
    try:
        import fcntl  # POSIX only: the lock is a no-op without it
    except ImportError:  # Windows
        yield
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StorageError(f"another process has been creating the ledger next to {path} for "
                                           f"over {timeout_s:.0f} s; is it hung?") from None
                    time.sleep(0.02)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the holder before us deleted this file: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _server_lock(connection, dialect: str) -> Iterator[None]:
    """A session-level advisory lock on the database server while Optuna creates or checks its schema."""
    from sqlalchemy import text  # only database URLs need it

    if dialect == "postgresql":
        lock_sql, unlock_sql, params = "SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)", {"k": _LOCK_KEY}
    elif dialect == "mysql":
        lock_sql, unlock_sql = "SELECT GET_LOCK('archsearch_optuna_schema', :t)", \
            "SELECT RELEASE_LOCK('archsearch_optuna_schema')"
        params = {"t": CREATE_LOCK_TIMEOUT_S}
    else:
        yield
        return
    try:
        connection.execute(text(lock_sql), params)
        connection.commit()
        locked = True
    except Exception:  # no advisory locks here (e.g. behind a pooler): the retry in make_storage still applies
        with contextlib.suppress(Exception):
            connection.rollback()
        locked = False
    try:
        yield
    finally:
        if locked:
            with contextlib.suppress(Exception):  # closing the connection releases it anyway
                connection.execute(text(unlock_sql), {k: v for k, v in params.items() if k == "k"})
                connection.commit()


def _unreachable(url: str, err: BaseException) -> StorageError:
    return StorageError(f"cannot open the ledger database {mask_url(url)}: {_scrub(_first_line(err), url)}")


def make_storage(url: str, *, retries: int = 2, **rdb_kwargs: Any):
    """An ``optuna.storages.RDBStorage`` at ``url``, safe to call from several processes at once.

    The URL is checked (:func:`check_url`) and normalized (:func:`normalize_url`); an SQLite file gets its folder
    and a 60 s lock timeout; a server gets a 10 s connect timeout. A database that cannot be reached, or whose
    driver is missing, raises :class:`StorageError` with one line naming the masked URL and the reason.
    ``rdb_kwargs`` go to ``RDBStorage`` (``engine_kwargs`` are merged over the defaults).
    """
    import sqlalchemy  # only database URLs need it
    from sqlalchemy import exc as sa_exc  # only database URLs need it

    problem = check_url(url)
    if problem:
        raise StorageError(problem)
    url = normalize_url(url)
    engine_kwargs = engine_kwargs_for(url)
    extra = dict(rdb_kwargs.pop("engine_kwargs", None) or {})
    if "connect_args" in extra:
        engine_kwargs["connect_args"] = {**engine_kwargs.get("connect_args", {}), **extra.pop("connect_args")}
    engine_kwargs.update(extra)
    dialect = _parse(url).get_backend_name()

    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot create the folder of the ledger {mask_url(url)}: {err}") from None
        lock: contextlib.AbstractContextManager = creation_lock(Path(f"{path}.lock"), CREATE_LOCK_TIMEOUT_S)
        probe = None
    else:
        lock = contextlib.nullcontext()
        # One connection first: a refused or unreachable server is reported before Optuna touches it, and the
        # same connection holds the advisory lock while Optuna creates its tables.
        try:
            probe_engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)
            probe = probe_engine.connect()
        except ImportError as err:
            raise StorageError(f"storage URL {mask_url(url)!r}: the database driver is missing "
                               f"({_scrub(_first_line(err), url)})") from None
        except (sa_exc.DBAPIError, sa_exc.ArgumentError) as err:
            raise _unreachable(url, err) from None
        lock = _server_lock(probe, dialect)

    optuna = _optuna()
    try:
        with lock:
            for attempt in range(retries + 1):
                try:
                    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **rdb_kwargs)
                except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.OperationalError) as err:
                    # The schema race (another process created a table or stamped the revision first), or a
                    # database that cannot be opened; the first settles on retry, the second is reported.
                    if attempt == retries:
                        fault = ledger_fault(err, url, action="open") if path is not None else None
                        raise (fault if isinstance(fault, (LedgerUnwritable, LedgerCorrupt))
                               else _unreachable(url, err)) from None
                    time.sleep(0.2 * (attempt + 1))
                except sa_exc.DatabaseError as err:  # not a database at all: retrying cannot help
                    raise (ledger_fault(err, url, action="open") or _unreachable(url, err)) from None
                except ImportError as err:
                    raise StorageError(f"storage URL {mask_url(url)!r}: the database driver is missing "
                                       f"({_scrub(_first_line(err.__cause__ or err), url)})") from None
                except RuntimeError as err:  # Optuna's schema-version check
                    raise StorageError(f"ledger {mask_url(url)}: {_scrub(_first_line(err), url)}") from None
    finally:
        if probe is not None:
            with contextlib.suppress(Exception):
                probe.close()
                probe_engine.dispose()
    raise AssertionError("unreachable")  # pragma: no cover


def create_or_load(storage, name: str, directions: Sequence[str], *, sampler=None, pruner=None,
                   user_attrs: dict[str, Any] | None = None):
    """``(study, created)``: the study ``name`` in ``storage``, created with ``directions`` (and ``user_attrs``,
    set by the creating process only) unless it exists. Safe when several processes create the same name at
    once: one creates it, the others load it. A stored study whose directions differ raises StorageError."""
    optuna = _optuna()
    try:
        study = optuna.create_study(study_name=name, storage=storage, directions=list(directions),
                                    sampler=sampler, pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        stored = [d.name.lower() for d in study.directions]
        wanted = [str(getattr(d, "name", d)).lower() for d in directions]
        if stored != wanted:
            raise StorageError(f"study {name!r} in {mask_url(str(getattr(storage, 'url', storage)))} is stored "
                               f"with directions {stored}, not {wanted}") from None
        return study, False
    for key, value in (user_attrs or {}).items():
        study.set_user_attr(key, value)
    return study, True
