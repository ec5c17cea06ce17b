"""longrun's own metrics: decoded by a real OTLP/HTTP receiver, scraped from Prometheus."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest

from tests.integration.conftest import LONGRUN, longrun, wait_for
from tests.integration.otlp import otlp_receiver
from tests.integration.test_probes import free_port

pytestmark = pytest.mark.slow


def metrics_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    env.update(extra)
    return env


def test_attempts_retries_duration_and_up_reach_an_otlp_receiver():
    with otlp_receiver() as receiver:
        result = longrun(
            "exec", "--name=job", "--retry-exit-code=3:2:10ms", "--",
            "sh", "-c", "sleep 0.2; exit 3",
            env=metrics_env(
                OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                OTEL_TRACES_EXPORTER="none",
            ),
        )  # fmt: skip
        assert result.returncode == 3, result.stderr
        points = list(receiver.points)
    assert b"level=warn task=longrun" not in result.stderr  # exported without a problem
    attempts = {
        p.attributes["longrun.decision"]: p.value for p in points if p.metric == "longrun.attempts"
    }
    assert attempts == {"retry": 2, "exhausted": 1}
    (retries,) = [p for p in points if p.metric == "longrun.retries"]
    assert retries.value == 2
    assert retries.monotonic
    assert retries.attributes == {"longrun.task": "job", "longrun.rule": "exit 3"}
    durations = [p for p in points if p.metric == "longrun.attempt.duration"]
    assert sum(p.count for p in durations) == 3
    assert sum(p.value for p in durations) >= 0.6  # three attempts of 0.2 s
    (up,) = [p for p in points if p.metric == "longrun.task.up"]
    assert up.value == 0  # nothing runs once longrun has ended
    assert not up.monotonic


def test_a_group_counts_per_task_and_spans_still_flow():
    with otlp_receiver() as receiver:
        result = longrun(
            "group", "--no-control", "-t", "ok=true", "-t", "bad=sh -c 'exit 4'",
            env=metrics_env(
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_METRICS_EXPORTER="otlp"
            ),
        )  # fmt: skip
        assert result.returncode == 4
        points = list(receiver.points)
        spans = list(receiver.spans)
    by_task = {
        (p.attributes["longrun.task"], p.attributes["longrun.decision"])
        for p in points
        if p.metric == "longrun.attempts"
    }
    assert ("ok", "success") in by_task
    assert ("bad", "permanent") in by_task
    assert any(span.name == "task bad" for span in spans)


def test_prometheus_endpoint_serves_the_metrics_while_the_task_runs(tmp_path):
    port = free_port()
    env = metrics_env(
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
    )
    marker = tmp_path / "second"
    command = f"[ -e {marker} ] && exec sleep 30; touch {marker}; exit 3"
    proc = subprocess.Popen(
        [*LONGRUN, "exec", "--name=web", "--retry-exit-code=3:1:10ms", "--", "sh", "-c", command],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(marker.exists)
        url = f"http://127.0.0.1:{port}/metrics"
        texts: list[str] = []

        def scraped() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    texts.append(response.read().decode())
            except OSError:
                return False
            return sample(texts[-1], "longrun_task_up", longrun_task="web") == 1.0

        wait_for(scraped)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    text = texts[-1]
    assert sample(text, "longrun_attempts_total", longrun_decision="retry", longrun_task="web") == 1
    assert sample(text, "longrun_retries_total", longrun_rule="exit 3", longrun_task="web") == 1
    assert sample(text, "longrun_attempt_duration_seconds_count", longrun_task="web") == 1


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the exposition line of ``name`` that carries every one of ``labels``."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
            return float(value)
    return None


def test_metrics_are_not_imported_unless_asked_for():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['longrun', 'exec', '--', 'true']\n"
        "try:\n"
        "    runpy.run_module('longrun_cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print([m for m in sys.modules if 'metrics' in m or m.startswith('prometheus')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env=metrics_env(),
    ).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_an_unusable_exporter_is_a_warning_and_the_command_runs():
    result = longrun("exec", "--", "true", env=metrics_env(OTEL_METRICS_EXPORTER="statsd"))
    assert result.returncode == 0
    assert b"unsupported OTEL_METRICS_EXPORTER 'statsd'" in result.stderr


def test_metrics_are_flushed_when_longrun_is_stopped_by_a_signal(tmp_path):
    started = tmp_path / "started"
    with otlp_receiver() as receiver:
        env = metrics_env(
            OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint
        )
        proc = subprocess.Popen(
            [*LONGRUN, "exec", "--name=job", "--", "sh", "-c", f"touch {started}; sleep 30"],
            env=env, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(started.exists)
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        points = list(receiver.points)
    assert proc.returncode == -15, err
    decisions = {p.attributes["longrun.decision"] for p in points if p.metric == "longrun.attempts"}
    assert decisions == {"stopped"}
    (up,) = [p for p in points if p.metric == "longrun.task.up"]
    assert up.value == 0
