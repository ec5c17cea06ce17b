"""A real etcd (Debian's etcd-server) for the tests: 127.0.0.1, free ports, a temp data dir,
started by the test and stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Etcd:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.client_port = _free_port()
        self.peer_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> None:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        self.proc = subprocess.Popen(
            [ETCD, "--name", "t", "--data-dir", str(self.directory / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"t={peer}", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=(self.directory / "etcd.log").open("ab"), env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.directory / "etcd.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.client_port), timeout=0.2):
                    pass
                out = subprocess.run(
                    ["etcdctl", f"--endpoints={self.endpoint}", "endpoint", "health"],
                    capture_output=True, timeout=5, check=False,
                    env={**os.environ, "ETCDCTL_API": "3"},
                )  # fmt: skip
                if out.returncode == 0:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextmanager
def etcd_server() -> Iterator[Etcd]:
    if not shutil.which("etcd") or not shutil.which("etcdctl"):
        pytest.skip("needs etcd and etcdctl (Debian: etcd-server, etcd-client)")
    directory = Path(tempfile.mkdtemp(prefix="lr-etcd-"))
    server = Etcd(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)
