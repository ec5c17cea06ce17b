"""--ping against a real local HTTP server: the healthchecks.io sequence, bodies, slow endpoints."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.conftest import longrun

pytestmark = pytest.mark.slow


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes]]
    slow: set[str]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, body))
        if self.path in self.slow:
            time.sleep(7)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def checks() -> Iterator[tuple[str, list[tuple[str, str, bytes]], set[str]]]:
    seen: list[tuple[str, str, bytes]] = []
    slow: set[str] = set()
    handler = type("Handler", (Recorder,), {"seen": seen, "slow": slow})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/abc", seen, slow
    server.shutdown()
    server.server_close()


def test_a_retried_run_pings_start_each_attempt_then_success(checks, tmp_path):
    url, seen, _ = checks
    flaky = f"[ -e {tmp_path}/once ] || {{ touch {tmp_path}/once; exit 75; }}"
    result = longrun(
        "exec", "--ping", url, "--retry-exit-code", "75:2:10ms", "--", "sh", "-c", flaky
    )
    assert result.returncode == 0
    assert seen == [("GET", "/abc/start", b""), ("GET", "/abc/start", b""), ("GET", "/abc", b"")]


def test_a_failure_not_retried_pings_fail_with_the_stderr_tail(checks):
    url, seen, _ = checks
    result = longrun(
        "exec", "--ping", url, "--", "sh", "-c", "for i in 1 2 3; do echo oops $i >&2; done; exit 4"
    )  # fmt: skip
    assert result.returncode == 4
    assert seen == [("GET", "/abc/start", b""), ("POST", "/abc/fail", b"oops 1\noops 2\noops 3\n")]


def test_an_interval_task_pings_each_run(checks):
    url, seen, _ = checks
    result = longrun(
        "exec", "--ping", url, "--interval", "100ms", "--", "sh", "-c", '[ "$LONGRUN_RUN" -lt 3 ]'
    )  # fmt: skip
    assert result.returncode == 1
    assert [path for _, path, _ in seen] == [
        "/abc/start",
        "/abc",
        "/abc/start",
        "/abc",
        "/abc/start",
        "/abc/fail",
    ]


def test_a_slow_or_dead_endpoint_is_logged_and_changes_nothing(checks):
    url, seen, slow = checks
    slow.add("/abc/start")
    began = time.monotonic()
    result = longrun("exec", "--ping", url, "--", "true")
    took = time.monotonic() - began
    assert result.returncode == 0
    assert b"no answer within 5s" in result.stderr
    assert took < 20  # bounded: one slow ping waits at most 5 s
    assert [path for _, path, _ in seen] == ["/abc/start", "/abc"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/x"
    gone = longrun("exec", "--ping", dead, "--", "true")
    assert gone.returncode == 0
    assert b"event=ping" in gone.stderr


def test_a_bad_ping_url_is_a_usage_error():
    result = longrun("exec", "--ping", "ftp://example.org/x", "--", "true")
    assert result.returncode == 125
    assert result.stderr.count(b"\n") == 1
    assert b"--ping" in result.stderr
