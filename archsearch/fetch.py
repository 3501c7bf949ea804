"""``archsearch data fetch NAME``: download one benchmark set into a data root and verify its sha256 sums.

The server holds a manifest (default ``<url>/MANIFEST.sha256``) in ``sha256sum`` format, one
``<hex digest>  <relative path>`` line per file, e.g. ``94dd...  datasets/BSD68/test001.png``. The files of set
``NAME`` are the entries whose parent folder is ``NAME``; each is fetched from ``<url>/<relative path>`` and
written to ``<dest>/NAME/<file name>`` only after its digest matches (a file already there with the right
digest is kept). No URL is built in: pass ``--url`` or set ``ARCHSEARCH_DATA_URL``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from .data import DATA_ROOT_ENV, DataError, data_root

DATA_URL_ENV = "ARCHSEARCH_DATA_URL"


def parse_manifest(text: str, source: str = "manifest") -> dict[str, str]:
    """``{relative path: sha256}`` from ``sha256sum``-format text; malformed lines raise :class:`DataError`."""
    out: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise DataError(f"{source}:{i}: expected '<64 hex digits>  <path>', got {line!r}")
        path = parts[1].lstrip("*").strip()
        if path.startswith("/") or ".." in PurePosixPath(path).parts:
            raise DataError(f"{source}:{i}: path must be relative and stay inside the data folder, got {path!r}")
        out[path] = digest
    return out


def _get(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (user-given http(s) URL)
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DataError(f"cannot download {url}: {err}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_dataset(name: str, url: str | None = None, dest: str | Path | None = None, *,
                  manifest_url: str | None = None, timeout: float = 60.0) -> list[Path]:
    """Download set ``name`` from ``url`` into ``dest/name/``, verifying every file; returns the written paths.

    ``url`` defaults to ``$ARCHSEARCH_DATA_URL``; ``dest`` to the data root (``$ARCHSEARCH_DATA_ROOT``).
    """
    url = url or os.environ.get(DATA_URL_ENV)
    if not url:
        raise DataError(f"no download URL: pass --url BASE (the folder that holds MANIFEST.sha256) or set {DATA_URL_ENV}")
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
        raise DataError(f"--url must be an http(s) or file URL, got {url!r}")
    root = data_root(dest)
    if root is None:
        raise DataError(f"no destination: pass --dest DIR or set {DATA_ROOT_ENV} (the data root)")
    base = url.rstrip("/") + "/"
    manifest_url = manifest_url or base + "MANIFEST.sha256"
    manifest = parse_manifest(_get(manifest_url, timeout).decode("utf-8", "replace"), manifest_url)
    entries = {p: d for p, d in manifest.items() if PurePosixPath(p).parent.name == name}
    if not entries:
        sets = sorted({PurePosixPath(p).parent.name for p in manifest})
        raise DataError(f"set {name!r} is not in {manifest_url}; it lists: {', '.join(sets)}")
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for rel, digest in sorted(entries.items()):
        target = folder / PurePosixPath(rel).name
        if target.is_file() and _sha256(target.read_bytes()) == digest:
            written.append(target)
            continue
        file_url = base + urllib.parse.quote(rel)
        data = _get(file_url, timeout)
        got = _sha256(data)
        if got != digest:
            raise DataError(f"checksum mismatch for {file_url}: the manifest says sha256 {digest}, the download "
                            f"has {got}; nothing was written for this file")
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
        written.append(target)
    return written
