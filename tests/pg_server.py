"""A throw-away PostgreSQL server for tests: ``pg_url`` (a module-scoped pytest fixture) starts one on 127.0.0.1
and yields ``postgresql://archsearch:PASSWORD@127.0.0.1:PORT/archsearch``; it always stops it and deletes its
files.

The server binaries come from ``$PG_BIN``, ``PATH`` or ``/usr/lib/postgresql/*/bin`` (Debian/Ubuntu's
``apt-get install postgresql``, which ``.ci/run`` does); the fixture skips, saying so, only where they are absent.
PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to an unprivileged user (``postgres`` if the
package created it, else ``nobody``) and its commands run under that uid via ``subprocess``'s ``user=``.

Use it from a test module with ``from pg_server import pg_url  # noqa: F401`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

USER, PASSWORD, DATABASE = "archsearch", "s3cret-pw", "archsearch"


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``psql`` (the newest version when several are installed)."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)

    def version(p: str) -> tuple[int, ...]:
        name = Path(p).parent.name
        return tuple(int(x) for x in name.split(".") if x.isdigit())

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for d in candidates:
        if all((d / exe).is_file() and os.access(d / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "psql")):
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (PostgreSQL refuses root), else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to own the server")


@contextlib.contextmanager
def running_postgres(bin_dir: Path) -> Iterator[str]:
    """Start a fresh cluster on 127.0.0.1 (a free port, sockets in its own folder) and yield a password URL."""
    owner = _run_as()
    # As root, in /tmp rather than $TMPDIR: the unprivileged owner must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="archsearch-pg-", dir="/tmp" if owner and os.path.isdir("/tmp") else None))
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    as_owner: dict = {}
    if owner is not None:
        for p in (root, sockets):
            os.chown(p, owner.pw_uid, owner.pw_gid)
        as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "HOME": str(root), "PGTZ": "UTC"}
    env.pop("PGDATA", None)

    def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        res = subprocess.run([str(a) for a in args], env=env, cwd=root, capture_output=True, text=True,
                             timeout=timeout, **as_owner)
        if check and res.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(map(str, args))} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
                               f"\n--- server log ---\n{tail}")
        return res

    started = False
    try:
        run(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
            "--encoding=UTF8", "--no-locale", "--no-sync")
        for attempt in range(3):  # a free port can be taken between choosing and binding it
            port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
            res = run(bin_dir / "pg_ctl", "-D", data, "-o", opts, "-l", log, "-w", "-t", "60", "start",
                      check=attempt == 2)
            if res.returncode == 0:
                break
        started = True
        psql = [bin_dir / "psql", "-h", sockets, "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
        run(*psql, "-d", "postgres", "-c", f"CREATE USER {USER} PASSWORD '{PASSWORD}'")
        run(*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE} OWNER {USER}")
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started or (data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop", check=False)
            for _ in range(50):  # pg_ctl -w returns once the postmaster is gone; be sure before deleting
                if not (data / "postmaster.pid").exists():
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """``postgresql://USER:PASSWORD@127.0.0.1:PORT/DB`` of a PostgreSQL server started for this test module."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, psql) not found on PATH, in $PG_BIN or in "
                    "/usr/lib/postgresql/*/bin: install them (apt-get install postgresql) to run this test")
    with running_postgres(bin_dir) as url:
        yield url
