"""Settings every test shares."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_runtime_dir() -> Iterator[Path]:
    """Each test's groups serve their control sockets in a directory of their own.

    Groups started from the same directory share a name: two tests (or a test and a
    group still stopping from the one before) must not see each other's socket.
    Short, under /tmp: a socket path must stay under 108 bytes. Not through the
    monkeypatch fixture: sharing it would make a test's own monkeypatch of
    subprocess.Popen outlive pytest-subprocess's teardown.
    """
    path = Path(tempfile.mkdtemp(prefix="lrt-", dir="/tmp"))
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = before
        shutil.rmtree(path, ignore_errors=True)
