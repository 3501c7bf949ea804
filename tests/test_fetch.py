from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest
from restore_data import shared_root

from archsearch.cli import main
from archsearch.data import DataError
from archsearch.fetch import fetch_dataset, parse_manifest


@pytest.fixture
def serve():
    servers = []

    def start(directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_fetch_from_a_local_server_verifies_checksums(serve, tmp_path):
    root = shared_root()
    if root is None or not (root.parent / "MANIFEST.sha256").is_file():
        pytest.skip("shared datasets and MANIFEST.sha256 not found")
    url = serve(root.parent)
    files = fetch_dataset("Set5", url, tmp_path)
    assert sorted(p.name for p in files) == sorted(p.name for p in (root / "Set5").iterdir())
    for p in files:
        assert p.read_bytes() == (root / "Set5" / p.name).read_bytes()
    assert fetch_dataset("Set5", url, tmp_path) == files  # verified copies are kept
    with pytest.raises(DataError, match="'Set7' is not in .* it lists: .*Set12"):
        fetch_dataset("Set7", url, tmp_path)
    assert main(["data", "fetch", "classic5", "--url", url, "--dest", str(tmp_path)]) == 0
    assert len(list((tmp_path / "classic5").iterdir())) == 5


def test_fetch_refuses_a_checksum_mismatch(serve, tmp_path, capsys):
    site = tmp_path / "site"
    (site / "sets" / "Tiny").mkdir(parents=True)
    (site / "sets" / "Tiny" / "a.png").write_bytes(b"tampered")
    (site / "MANIFEST.sha256").write_text(f"{hashlib.sha256(b'original').hexdigest()}  sets/Tiny/a.png\n")
    url = serve(site)
    with pytest.raises(DataError, match="checksum mismatch .*a.png"):
        fetch_dataset("Tiny", url, tmp_path / "dest")
    assert not (tmp_path / "dest" / "Tiny" / "a.png").exists()
    assert main(["data", "fetch", "Tiny", "--url", url, "--dest", str(tmp_path / "dest")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum mismatch" in err and "Traceback" not in err


def test_fetch_settings_and_manifest_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("ARCHSEARCH_DATA_URL", raising=False)
    monkeypatch.delenv("ARCHSEARCH_DATA_ROOT", raising=False)
    with pytest.raises(DataError, match="--url BASE .* ARCHSEARCH_DATA_URL"):
        fetch_dataset("Set5", None, tmp_path)
    with pytest.raises(DataError, match="--dest DIR or set ARCHSEARCH_DATA_ROOT"):
        fetch_dataset("Set5", "http://127.0.0.1:9", None)
    with pytest.raises(DataError, match="stay inside"):
        parse_manifest(f"{'0' * 64}  ../etc/passwd")
    with pytest.raises(DataError, match="64 hex digits"):
        parse_manifest("abc  x.png")
    with pytest.raises(DataError, match="cannot download"):
        fetch_dataset("Set5", "http://127.0.0.1:9", tmp_path, timeout=2)
