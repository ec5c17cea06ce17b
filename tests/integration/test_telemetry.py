"""Tracing against a real OTLP/HTTP receiver, and systemd notification over a real socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import LONGRUN, longrun, wait_for
from tests.integration.otlp import otlp_receiver

pytestmark = pytest.mark.slow


def traced_env(endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="longrun-test", **extra)
    return env


def test_exec_spans_nest_attempts_under_the_task_and_reach_the_child():
    """A span per attempt, child of the task span; the child sees its attempt's TRACEPARENT."""
    with otlp_receiver() as receiver:
        result = longrun(
            "exec", "--retry-exit-code", "3:1:10ms", "--",
            "sh", "-c", 'echo "$TRACEPARENT"; exit 3',
            env=traced_env(receiver.endpoint),
        )  # fmt: skip
        assert result.returncode == 3
        task = receiver.one("task sh")
        attempts = receiver.named("sh")
    assert len(attempts) == 2
    assert {a.parent_span_id for a in attempts} == {task.span_id}
    assert {a.trace_id for a in attempts} == {task.trace_id}
    first, second = sorted(attempts, key=lambda a: a.attributes["longrun.run"])
    assert first.attributes["longrun.decision"] == "retry"
    assert first.attributes["process.exit.code"] == 3
    assert first.attributes["longrun.rule"] == "exit 3"
    assert first.attributes["process.executable.name"] == "sh"
    assert "process.command_args" not in first.attributes  # argv may hold secrets: opt-in
    assert "retry scheduled" in first.events
    assert second.attributes["longrun.decision"] == "exhausted"
    assert second.status_code == 2
    assert task.status_code == 2
    assert task.service_name == "longrun-test"
    seen = [line.split("-") for line in result.stdout.decode().split()]
    assert [(parts[1], parts[2]) for parts in seen] == [
        (first.trace_id, first.span_id),
        (second.trace_id, second.span_id),
    ]


def test_traceparent_in_the_environment_becomes_the_parent():
    """A CI job's TRACEPARENT makes longrun's task span its child."""
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with otlp_receiver() as receiver:
        env = traced_env(receiver.endpoint, TRACEPARENT=f"00-{trace_id}-{span_id}-01")
        assert longrun("exec", "--", "true", env=env).returncode == 0
        task = receiver.one("task true")
    assert (task.trace_id, task.parent_span_id) == (trace_id, span_id)


def test_log_lines_carry_trace_and_span_ids():
    """With tracing on, every log line names the trace and span."""
    with otlp_receiver() as receiver:
        result = longrun(
            "exec", "--log-format", "json", "--", "false", env=traced_env(receiver.endpoint)
        )
        attempt = receiver.one("false")
    import json

    events = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert events
    assert all(e["trace_id"] == attempt.trace_id for e in events)
    assert events[0]["span_id"] == attempt.span_id


def test_group_spans_nest_run_task_attempt():
    """group run → task → attempt, all in one trace."""
    with otlp_receiver() as receiver:
        result = longrun(
            "group", "-t", "a=true", "-t", "b=false", env=traced_env(receiver.endpoint)
        )
        assert result.returncode == 1
        run = receiver.one("longrun group")
        task_a, task_b = receiver.one("task a"), receiver.one("task b")
        attempt_b = receiver.one("b")
    assert task_a.parent_span_id == task_b.parent_span_id == run.span_id
    assert attempt_b.parent_span_id == task_b.span_id
    assert len({run.trace_id, task_a.trace_id, attempt_b.trace_id}) == 1
    assert run.attributes["longrun.first_failure"] == "b"
    assert run.status_code == 2


def test_spans_survive_sigterm(tmp_path: Path):
    """A stopped run still exports its spans, with decision 'stopped'."""
    with otlp_receiver() as receiver:
        ready = tmp_path / "ready"
        proc = subprocess.Popen(
            [*LONGRUN, "exec", "--", "sh", "-c", f"touch {ready}; exec sleep 30"],
            env=traced_env(receiver.endpoint),
            stderr=subprocess.PIPE,
        )
        wait_for(ready.exists)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM
        attempt = receiver.one("sh")
    assert attempt.attributes["longrun.decision"] == "stopped"


def test_unreachable_collector_costs_a_bounded_wait_and_a_warning():
    """Nothing listening: same exit status, a warning, and no hang."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before longrun runs
    began = time.monotonic()
    result = longrun("exec", "--", "sh", "-c", "exit 7", env=traced_env(f"http://127.0.0.1:{port}"))
    elapsed = time.monotonic() - began
    assert result.returncode == 7
    assert elapsed < 15
    assert b"event=tracing" in result.stderr


def test_opentelemetry_is_not_imported_without_configuration():
    """No OTEL_* variables: OpenTelemetry never loads (checked with -X importtime)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "longrun_cli", "exec", "--", "true"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "opentelemetry" not in result.stderr
    assert "longrun_cli.telemetry" in result.stderr


def test_otel_sdk_disabled_turns_tracing_off():
    """OTEL_SDK_DISABLED=true wins over an endpoint."""
    env = traced_env("http://127.0.0.1:9", OTEL_SDK_DISABLED="true")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "longrun_cli", "exec", "--", "true"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "opentelemetry" not in result.stderr


def notify_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock


def drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            return messages


@pytest.mark.parametrize("abstract", [False, True])
def test_systemd_hears_ready_status_and_stopping_in_order(tmp_path: Path, abstract: bool):
    """READY=1 once started, STATUS= on each retry, STOPPING=1 at the end."""
    name = f"\0longrun-test-{os.getpid()}" if abstract else str(tmp_path / "notify")
    sock = notify_socket(name)
    env = {**os.environ, "NOTIFY_SOCKET": "@" + name[1:] if abstract else name}
    with sock:
        result = longrun(
            "exec", "--retry-exit-code", "3:2:10ms", "--", "sh", "-c", "exit 3", env=env
        )
        messages = drain(sock)
    assert result.returncode == 3
    assert messages[0].startswith("READY=1")
    statuses = [m for m in messages if m.startswith("STATUS=sh: retry")]
    assert len(statuses) == 2
    assert "retry 1/2 in 10ms" in statuses[0]
    assert messages[-1] == "STOPPING=1"
    assert messages.index(statuses[0]) > 0


def test_status_says_running_again_after_a_retry_and_stopping_is_sent_once(tmp_path: Path):
    """After "retry 1/2" the next attempt's STATUS= is "running"; one STOPPING=1 on TERM."""
    path = str(tmp_path / "notify")
    sock = notify_socket(path)
    flag, started = tmp_path / "failed-once", tmp_path / "started"
    script = f"[ -e {flag} ] || {{ touch {flag}; exit 3; }}; touch {started}; sleep 30"
    with sock:
        proc = subprocess.Popen(
            [*LONGRUN, "exec", "--retry-exit-code", "3:2:10ms", "--", "sh", "-c", script],
            env={**os.environ, "NOTIFY_SOCKET": path}, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        messages = drain(sock)
    statuses = [m for m in messages if "STATUS=" in m]
    retry = next(i for i, m in enumerate(statuses) if "retry 1/2" in m)
    assert statuses[retry + 1] == "STATUS=sh: running"
    assert sum(m.count("STOPPING=1") for m in messages) == 1


def test_the_full_argv_is_traced_only_when_asked_for():
    """LONGRUN_TRACE_COMMAND_ARGS=1 puts process.command_args on the task and attempt spans."""
    with otlp_receiver() as receiver:
        env = traced_env(receiver.endpoint, LONGRUN_TRACE_COMMAND_ARGS="1")
        result = longrun("exec", "--", "sh", "-c", "exit 0", env=env)
        assert result.returncode == 0
        task = receiver.one("task sh")
        (attempt,) = receiver.named("sh")
    assert task.attributes["process.command_args"] == ["sh", "-c", "exit 0"]
    assert attempt.attributes["process.command_args"] == ["sh", "-c", "exit 0"]


def test_systemd_watchdog_is_fed_at_half_the_interval(tmp_path: Path):
    """WATCHDOG_USEC=400ms: WATCHDOG=1 about every 200ms while running."""
    path = str(tmp_path / "notify")
    sock = notify_socket(path)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    with sock:
        result = longrun("exec", "--", "sleep", "1", env=env)
        messages = drain(sock)
    assert result.returncode == 0
    assert 3 <= messages.count("WATCHDOG=1") <= 8


def test_group_is_ready_after_every_task_is_ready(tmp_path: Path):
    """In a group READY=1 waits for the readiness probes."""
    path = str(tmp_path / "notify")
    config = tmp_path / "longrun.toml"
    config.write_text(
        '[tasks.web]\ncommand = "sleep 0.5; echo Listening; sleep 0.5"\nready = { stdout = "Listening" }\n'
        '[tasks.other]\ncommand = "sleep 1"\n'
    )
    sock = notify_socket(path)
    with sock:
        began = time.monotonic()
        proc = subprocess.Popen(
            [*LONGRUN, "group", str(config)], env={**os.environ, "NOTIFY_SOCKET": path}
        )
        first = sock.recv(4096).decode() if _wait_readable(sock, 10) else ""
        ready_after = time.monotonic() - began
        proc.wait(timeout=30)
        rest = drain(sock)
    assert first.startswith("READY=1")
    assert ready_after >= 0.4
    assert rest[-1] == "STOPPING=1"


def _wait_readable(sock: socket.socket, timeout: float) -> bool:
    import select

    return bool(select.select([sock], [], [], timeout)[0])


@pytest.mark.parametrize(
    "bad",
    [
        {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "x"},
        {"OTEL_BSP_MAX_QUEUE_SIZE": "-1"},
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000", "OTEL_BSP_MAX_QUEUE_SIZE": "10"},
        {"OTEL_TRACES_EXPORTER": "zipkin"},
    ],
)
@pytest.mark.parametrize("mode", ["text", "json"])
def test_a_malformed_otel_value_is_one_warning_and_the_command_runs(bad, mode):
    """Tracing problems never cost the run: the command runs, one warning line, no traceback."""
    env = {**traced_env("http://127.0.0.1:9"), **bad}
    result = longrun("exec", f"--log-format={mode}", "--", "echo", "ran", env=env)
    assert (result.returncode, result.stdout) == (0, b"ran\n")
    assert b"Traceback" not in result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    if mode == "json":
        assert json.loads(lines[0])["event"] == "tracing"


def test_a_nan_exporter_timeout_falls_back_to_the_default():
    """OTEL_EXPORTER_OTLP_TIMEOUT=nan: spans still reach the receiver."""
    with otlp_receiver() as receiver:
        env = traced_env(receiver.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="nan")
        result = longrun("exec", "--", "true", env=env)
        assert result.returncode == 0
        assert receiver.one("task true")


def test_the_circuit_breaker_marks_the_task_span():
    """circuit.open / half_open / closed are events of the task span (with the cooldown)."""
    with otlp_receiver() as receiver:
        result = longrun(
            "exec", "--name", "poll", "--interval", "100ms", "--circuit-breaker", "200ms",
            "--deadline", "1500ms", "--", "sh", "-c", '[ "$LONGRUN_RUN" -ge 2 ]',
            env=traced_env(receiver.endpoint),
        )  # fmt: skip
        assert result.returncode == 124
        task = receiver.one("task poll")
    assert [e for e in task.events if e.startswith("circuit.")] == [
        "circuit.open", "circuit.half_open", "circuit.closed",
    ]  # fmt: skip
