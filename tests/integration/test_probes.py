"""Readiness probes against real listeners started by the tests, on free ports."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import longrun

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_with(
    tmp_path: Path, server: str, probe: str, timeout: str = "20s"
) -> subprocess.CompletedProcess[bytes]:
    """A server task with ``probe``, and a task that starts once it is ready and stops the group."""
    (tmp_path / "longrun.toml").write_text(
        f"""
[tasks.server]
command = {server!r}
ready = {{ {probe}, interval = "100ms", timeout = "{timeout}" }}
[tasks.client]
command = "echo client started; exit 3"
depends_on = {{ server = "ready" }}
"""
    )
    return longrun("group", "--no-control", str(tmp_path / "longrun.toml"), timeout=60)


def started_after_ready(result: subprocess.CompletedProcess[bytes]) -> bool:
    err = result.stderr.decode()
    return "event=ready" in err and b"client started" in result.stdout


def test_http_probe_waits_for_a_real_server(tmp_path):
    port = free_port()
    server = f"sleep 0.5; exec {sys.executable} -m http.server --bind 127.0.0.1 {port}"
    result = group_with(tmp_path, server, f'http = "http://127.0.0.1:{port}/"')
    assert result.returncode == 3  # the client ran, and its status ended the group
    assert started_after_ready(result)


def test_http_probe_wants_2xx_or_3xx(tmp_path):
    port = free_port()
    server = f"exec {sys.executable} -m http.server --bind 127.0.0.1 {port}"
    result = group_with(tmp_path, server, f'http = "http://127.0.0.1:{port}/missing"', "1s")
    assert result.returncode == 1  # 404: never ready, the dependent fails
    assert b"not ready within 1s: GET" in result.stderr
    assert b"client started" not in result.stdout


def test_tcp_probe_waits_for_a_listener(tmp_path):
    port = free_port()
    (tmp_path / "listen.py").write_text(
        "import socket, time\ntime.sleep(0.5)\nserver = socket.socket()\n"
        f"server.bind(('127.0.0.1', {port}))\nserver.listen()\ntime.sleep(60)\n"
    )
    server = f"exec {sys.executable} {tmp_path / 'listen.py'}"
    result = group_with(tmp_path, server, f'tcp = "127.0.0.1:{port}"')
    assert result.returncode == 3
    assert started_after_ready(result)


def test_tcp_probe_on_a_closed_port_times_out(tmp_path):
    result = group_with(tmp_path, "exec sleep 60", f'tcp = "127.0.0.1:{free_port()}"', "700ms")
    assert result.returncode == 1
    assert b"accepts a TCP connection" in result.stderr


@pytest.mark.parametrize(
    ("server", "probe", "ready"),
    [
        ("echo starting >&2; sleep 0.3; echo Listening at x >&2; exec sleep 60", 'stderr = "Listening at"', True),
        ("echo Listening at x; exec sleep 60", 'stderr = "Listening at"', False),
        ("echo Listening at x >&2; exec sleep 60", 'output = "Listening at"', True),
        ("echo Listening at x; exec sleep 60", 'output = "Listening at"', True),
        ("echo Listening at x >&2; exec sleep 60", 'stdout = "Listening at"', False),
    ],
)  # fmt: skip
def test_regex_probes_watch_their_streams(tmp_path, server, probe, ready):
    result = group_with(tmp_path, server, probe, "1500ms")
    assert result.returncode == (3 if ready else 1)
    assert started_after_ready(result) is ready


def test_a_waiting_task_says_what_it_waits_for(tmp_path):
    (tmp_path / "longrun.toml").write_text(
        """
[tasks.slow]
command = "sleep 6; echo up; exec sleep 60"
ready = { stdout = "up", timeout = "20s" }
[tasks.app]
command = "exit 4"
depends_on = { slow = "ready" }
"""
    )
    result = longrun("group", "--no-control", str(tmp_path / "longrun.toml"), timeout=60)
    assert result.returncode == 4
    assert b'task=app event=waiting msg="waiting for slow to be ready"' in result.stderr


@pytest.mark.skipif(
    shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None,
    reason="gunicorn not installed",
)
def test_the_readme_gunicorn_example_becomes_ready(tmp_path):
    """The documented web task, as written in docs/group.md, against the real gunicorn."""
    readme = (ROOT / "docs" / "group.md").read_text()
    block = readme[readme.index("[tasks.web]") :]
    ready = re.search(r"^ready = (\{.*?\})\s*(#.*)?$", block, re.M)
    assert ready is not None
    (tmp_path / "app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n"
    )
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    (tmp_path / "longrun.toml").write_text(
        f"""
[tasks.web]
command = "{gunicorn} --bind 127.0.0.1:{port} app:app"
ready = {ready.group(1)}
[tasks.check]
command = "{sys.executable} -c \\"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/').read())\\"; exit 5"
depends_on = {{ web = "ready" }}
"""
    )
    began = time.monotonic()
    result = longrun(
        "group", "--no-control", str(tmp_path / "longrun.toml"), cwd=tmp_path, timeout=60
    )
    assert result.returncode == 5, result.stderr[-2000:]
    assert b"b'ok'" in result.stdout
    assert b"task=web event=ready" in result.stderr
    assert time.monotonic() - began < 30
