"""--ready and --health against real listeners, with systemd's notify socket: READY=1 after
the probe passed, WATCHDOG=1 paused while the command is alive but sick."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import longrun
from tests.integration.test_probes import free_port

pytestmark = pytest.mark.slow


class NotifyListener:
    """Collects datagrams from NOTIFY_SOCKET with the time each arrived."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.time(), data.decode()))

    def close(self) -> list[tuple[float, str]]:
        time.sleep(0.2)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.messages


# A listener that opens late: it records when it started listening, then serves.
LATE_LISTENER = """
import socket, sys, time
time.sleep(float(sys.argv[3]))
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
open(sys.argv[2], "w").write(repr(time.time()))
time.sleep(float(sys.argv[4]))
"""


def test_ready_is_sent_only_once_a_late_tcp_listener_opens(tmp_path: Path):
    port = free_port()
    script = tmp_path / "late.py"
    script.write_text(LATE_LISTENER)
    opened = tmp_path / "opened"
    listener = NotifyListener(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": listener.path}
    result = longrun(
        "exec", f"--ready=tcp:127.0.0.1:{port}", "--",
        sys.executable, str(script), str(port), str(opened), "1.5", "1",
        env=env,
    )  # fmt: skip
    messages = listener.close()
    assert result.returncode == 0, result.stderr
    ready = [stamp for stamp, text in messages if text.startswith("READY=1")]
    assert len(ready) == 1
    assert ready[0] >= float(opened.read_text())
    assert b"ready: 127.0.0.1:" in result.stderr


# An HTTP service whose /health turns sick: its first attempt after a second, for good.
SICKENING_SERVICE = """
import http.server, os, sys, time
born = time.monotonic()
first = os.environ["LONGRUN_ATTEMPT"] == "1"
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sick = first and time.monotonic() - born > 1.0
        self.send_response(503 if sick else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
server.allow_reuse_address = True
server.timeout = 0.05
end = born + (30 if first else 1.5)
while time.monotonic() < end:
    server.handle_request()
"""


def test_a_sick_http_service_is_stopped_as_unhealthy_and_retried(tmp_path: Path):
    """Health fails 3 times in a row: WATCHDOG=1 pauses from the first failure until longrun
    has replaced the attempt; the attempt ends as unhealthy, and --retry-unhealthy retries it."""
    port = free_port()
    script = tmp_path / "service.py"
    script.write_text(SICKENING_SERVICE)
    listener = NotifyListener(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "200000"}
    url = f"http://127.0.0.1:{port}/health"
    result = longrun(
        "exec", f"--ready={url}", f"--health={url}", "--health-interval=150ms",
        "--health-failures=3", "--retry-unhealthy=2:100ms", "--",
        sys.executable, str(script), str(port),
        env=env,
    )  # fmt: skip
    messages = [text for _stamp, text in listener.close()]
    err = result.stderr.decode()
    assert result.returncode == 0, err
    before_retry = err[: err.index("event=retry")]
    assert before_retry.count("health check failed") == 3
    # (A check may still fail as the healthy second attempt exits: its server is gone.)
    assert "unhealthy: GET" in err
    assert "answered 503" in err
    first_failure = next(i for i, m in enumerate(messages) if "health check failed (1/3)" in m)
    retry = next(i for i, m in enumerate(messages) if "retry 1/2" in m)
    assert first_failure < retry
    # Fed before the sickness and after the retry; never while sick (~450 ms, ~4 periods).
    assert "WATCHDOG=1" in messages[:first_failure]
    assert "WATCHDOG=1" not in messages[first_failure:retry]
    assert "WATCHDOG=1" in messages[retry:]
    assert sum(m.startswith("READY=1") for m in messages) == 1


def test_a_heartbeat_that_stops_makes_the_attempt_unhealthy(tmp_path: Path):
    """--health stdout:REGEX passes while such a line appears within every interval."""
    command = "for i in 1 2 3 4 5 6; do echo tick; sleep 0.1; done; echo stuck; sleep 30"
    started = time.monotonic()
    result = longrun(
        "exec", "--health=stdout:^tick$", "--health-interval=300ms", "--health-failures=2",
        "--kill-after=2s", "--", "sh", "-c", command,
    )  # fmt: skip
    took = time.monotonic() - started
    err = result.stderr.decode()
    assert result.returncode == 128 + 15, err  # the shell died of longrun's TERM
    assert "no such line in 300ms" in err
    assert "unhealthy" in err
    assert result.stdout.count(b"tick") == 6  # the output passed through untouched
    assert took < 20


def test_a_group_task_with_health_is_retried_by_its_toml_rule(tmp_path: Path):
    port = free_port()
    script = tmp_path / "service.py"
    script.write_text(SICKENING_SERVICE)
    config = tmp_path / "longrun.toml"
    config.write_text(
        f"""
[tasks.web]
command = ["{sys.executable}", "{script}", "{port}"]
health = {{ http = "http://127.0.0.1:{port}/health", interval = "150ms", failures = 2 }}
retry = [{{ unhealthy = true, retries = 2, backoff = "100ms" }}]
"""
    )
    result = longrun("group", "--no-control", str(config))
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "task=web event=unhealthy" in err
    assert err.count("health check failed (2/2)") == 1


def test_a_hanging_probe_command_ends_with_its_attempt():
    """The command exits while its health check (sleep 300) runs: longrun ends at once, and
    nothing it started is left (counted by a marker in its environment)."""
    from benchmarks.reliability import marked_env, settle

    env, mark = marked_env()
    started = time.monotonic()
    result = longrun(
        "exec", "--health=cmd:sleep 300", "--health-interval=100ms", "--health-timeout=60s",
        "--", "sh", "-c", "sleep 0.5",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert settle(mark, 5.0)[0] == []


def test_the_attempt_span_says_which_probe_failed():
    from tests.integration.otlp import otlp_receiver

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    with otlp_receiver() as receiver:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        result = longrun(
            "exec", "--name=quiet", "--health=stderr:alive", "--health-interval=200ms",
            "--health-failures=1", "--", "sleep", "30",
            env=env,
        )  # fmt: skip
        (attempt,) = receiver.named("quiet")
    assert result.returncode == 128 + 15
    assert attempt.attributes["longrun.decision"] == "permanent"
    assert "unhealthy: stderr matches /alive/ within every 200ms" in attempt.status_message
