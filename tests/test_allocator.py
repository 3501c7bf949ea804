"""archsearch.allocator: glibc's thresholds are set once per process (speed only), and can be turned off."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from archsearch.allocator import keep_freed_memory as k; print(k(), k())"


def _run(env_extra: dict[str, str]) -> str:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True,
                          timeout=60).stdout.strip()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_thresholds_are_set_once_on_glibc():
    assert _run({"ARCHSEARCH_MALLOC": ""}) == "True True"


def test_archsearch_malloc_default_leaves_malloc_alone():
    assert _run({"ARCHSEARCH_MALLOC": "default"}) == "False False"
