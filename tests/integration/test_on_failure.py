"""--on-failure: once when a task fails, with the failing attempt's stderr tail in a private file."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from tests.integration.conftest import longrun, start, wait_for

pytestmark = pytest.mark.slow


def notifier(tmp_path: Path) -> str:
    """A hook that records its environment, the tail, and the tail file's path and mode."""
    out = tmp_path / "hook"
    return (
        f'{{ echo "status=$LONGRUN_STATUS exit=$LONGRUN_EXIT_STATUS attempts=$LONGRUN_ATTEMPTS '
        f'task=$LONGRUN_TASK"; stat -c %a "$LONGRUN_STDERR_TAIL_FILE"; '
        f'echo "$LONGRUN_STDERR_TAIL_FILE"; cat "$LONGRUN_STDERR_TAIL_FILE"; }} >> {out}'
    )


def test_an_exhausted_task_notifies_once_with_its_last_fifty_stderr_lines(tmp_path):
    noisy = "for i in $(seq 1 100); do echo line $i >&2; done; exit 3"
    result = longrun(
        "exec", "--name", "job", "--on-failure", notifier(tmp_path),
        "--retry-exit-code", "3:2:10ms", "--", "sh", "-c", noisy,
    )  # fmt: skip
    assert result.returncode == 3
    hook = (tmp_path / "hook").read_text().splitlines()
    assert hook[0] == "status=exhausted exit=3 attempts=3 task=job"
    assert hook[1] == "600"  # private
    assert not Path(hook[2]).exists()  # removed afterwards
    assert hook[3:] == [f"line {i}" for i in range(51, 101)]
    # Capturing the tail left the passthrough whole: every line of every attempt.
    assert result.stderr.count(b"line 1\n") == 3
    assert result.stderr.count(b"line 100\n") == 3


def test_the_passthrough_stays_byte_exact(tmp_path):
    data = bytes(range(256)) * 64
    (tmp_path / "data").write_bytes(data)
    result = longrun(
        "exec", "--log-format", "json", "-q", "--on-failure", "true",
        "--", "sh", "-c", f"cat {tmp_path / 'data'} >&2; exit 1",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(data)


@pytest.mark.parametrize("how", ["success", "stop"])
def test_no_notification_on_success_or_on_a_requested_stop(tmp_path, how):
    if how == "success":
        result = longrun("exec", "--on-failure", notifier(tmp_path), "--", "true")
        assert result.returncode == 0
    else:
        started = tmp_path / "started"
        proc = start(
            "exec", "--on-failure", notifier(tmp_path), "--",
            "sh", "-c", f"touch {started}; exec sleep 30",
        )  # fmt: skip
        wait_for(started.exists)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == -signal.SIGTERM
    assert not (tmp_path / "hook").exists()


def test_a_deadline_and_a_group_task_notify_too(tmp_path):
    result = longrun(
        "exec", "--deadline", "300ms", "--on-failure", notifier(tmp_path),
        "--", "sh", "-c", "echo slow >&2; exec sleep 5",
    )  # fmt: skip
    assert result.returncode == 124
    assert (tmp_path / "hook").read_text().splitlines()[0].startswith("status=deadline exit=124")
    (tmp_path / "hook").unlink()
    (tmp_path / "longrun.toml").write_text(
        f"""
[tasks.web]
command = "exec sleep 30"
[tasks.worker]
command = "echo boom >&2; exit 4"
on_failure = '''{notifier(tmp_path)}'''
"""
    )
    group = longrun("group", "--no-control", str(tmp_path / "longrun.toml"))
    assert group.returncode == 4
    hook = (tmp_path / "hook").read_text().splitlines()
    assert hook[0] == "status=failed exit=4 attempts=1 task=worker"
    assert hook[3:] == ["boom"]


def test_the_tail_file_is_private_even_with_a_loose_umask(tmp_path):
    old = os.umask(0)
    try:
        result = longrun("exec", "--on-failure", notifier(tmp_path), "--", "false")
    finally:
        os.umask(old)
    assert result.returncode == 1
    assert stat.S_IMODE(int((tmp_path / "hook").read_text().splitlines()[1], 8)) == 0o600


def test_the_circuit_breaker_in_real_time(tmp_path):
    """Runs 1 and 2 fail: open 300ms, trial fails, open 600ms, trial succeeds, closed."""
    command = '[ "$LONGRUN_RUN" -ge 3 ]'
    result = longrun(
        "exec", "--interval", "100ms", "--circuit-breaker", "300ms,5s", "--deadline", "2500ms",
        "--", "sh", "-c", command,
    )  # fmt: skip
    assert result.returncode == 124  # the deadline ends a task the breaker keeps alive
    events = [
        line.split("event=")[1].split()[0]
        for line in result.stderr.decode().splitlines()
        if "event=circuit" in line
    ]
    assert events == [
        "circuit-open", "circuit-half-open", "circuit-open", "circuit-half-open", "circuit-closed",
    ]  # fmt: skip
    assert b'msg="circuit open for 600ms"' in result.stderr
    plan = longrun("exec", "--dry-run", "--interval", "1s", "--circuit-breaker", "30s", "--", "x")
    assert b"breaker:     where the task would end, the circuit opens: open for 30s" in plan.stdout
    once = longrun("exec", "--circuit-breaker", "30s", "--", "true")
    assert once.returncode == 125
    assert b"--circuit-breaker is for --interval or --schedule tasks" in once.stderr
