"""Exit statuses of SPEC §6 with real processes."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import longrun


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["true"], 0),
        (["false"], 1),
        (["sh", "-c", "exit 7"], 7),
        (["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL),
        (["no-such-command-xyz"], 127),
        (["/etc/hostname"], 126),
    ],
)
def test_exit_status_follows_the_command(command, status):
    """The child's code, 128+N for a signal, 126/127 for commands that cannot run."""
    assert longrun("exec", "--", *command).returncode == status


def test_timeout_exits_124():
    """An attempt over --timeout ends with 124."""
    assert longrun("exec", "--timeout", "200ms", "--", "sleep", "30").returncode == 124


def test_deadline_exits_124_across_retries():
    """--deadline bounds retries and backoffs together."""
    result = longrun(
        "exec", "--deadline", "1s", "--retry-exit-code", "1:inf:100ms,100ms", "--", "false"
    )
    assert result.returncode == 124


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "5x"],
        ["--interval", "0"],
        ["--retry-exit-code", "0"],
        ["--retry-exit-code", "75:0"],
        ["--retry-exit-code", "75:3:1s,500ms"],
        ["--retry-stderr", "(unclosed"],
        ["--retry-signal", "NOPE"],
        ["--stop-signal", "BOGUS"],
        ["--jitter", "2"],
        ["--success-exit-code", "300"],
        ["--log-format", "xml"],
        ["--no-such-option"],
    ],
)
def test_bad_usage_exits_125_with_one_line_naming_the_value(args):
    """Every malformed value ends with 125 and a single stderr line, never a traceback."""
    result = longrun("exec", *args, "--", "true")
    err = result.stderr.decode()
    assert result.returncode == 125
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    value = args[-1].split(":")[-1] if args[-1] != "--no-such-option" else "--no-such-option"
    assert value.split(",")[-1] in err


def test_missing_command_is_a_usage_error():
    """longrun exec without COMMAND exits 125."""
    assert longrun("exec").returncode == 125


def test_flaky_command_is_retried_until_it_succeeds(tmp_path: Path):
    """A script failing twice with 75 succeeds on the third attempt, seeing LONGRUN_ATTEMPT."""
    counter = tmp_path / "count"
    script = tmp_path / "flaky.sh"
    script.write_text(
        f'#!/bin/sh\necho "$LONGRUN_ATTEMPT/$LONGRUN_RUN/$LONGRUN_TASK" >> {counter}\n'
        f'[ "$(wc -l < {counter})" -ge 3 ] || exit 75\n'
    )
    script.chmod(0o755)
    result = longrun("exec", "--retry-exit-code", "75:5:10ms", "--", str(script))
    assert result.returncode == 0
    assert counter.read_text().split() == ["1/1/flaky.sh", "2/2/flaky.sh", "3/3/flaky.sh"]
    assert result.stderr.decode().count("event=retry") == 2


def test_stderr_rule_retries_on_a_matching_line(tmp_path: Path):
    """A line matching --retry-stderr makes the failure transient."""
    counter = tmp_path / "count"
    command = (
        f"echo x >> {counter}; "
        f'if [ "$(wc -l < {counter})" -lt 2 ]; then echo "dial: connection refused" >&2; exit 1; fi'
    )
    result = longrun(
        "exec", "--retry-stderr", "connection refused:3:10ms", "--", "sh", "-c", command
    )
    assert result.returncode == 0
    assert b"dial: connection refused\n" in result.stderr


def test_exhausted_retries_exit_with_the_last_code():
    """When the budget is spent, longrun ends with the command's status."""
    result = longrun("exec", "--retry-exit-code", "3:2:1ms", "--", "sh", "-c", "exit 3")
    assert result.returncode == 3
    assert b"event=exhausted" in result.stderr


def test_success_exit_code_counts_as_success():
    """--success-exit-code 3 turns exit 3 into 0."""
    assert longrun("exec", "--success-exit-code", "3", "--", "sh", "-c", "exit 3").returncode == 0


def test_logs_go_to_stderr_only():
    """longrun's own lines never touch stdout."""
    result = longrun("exec", "-v", "--", "sh", "-c", "echo out; exit 2")
    assert result.stdout == b"out\n"
    assert b"event=permanent" in result.stderr


def test_json_logs_are_one_object_per_line():
    """--log-format json writes parseable objects with task and event."""
    import json

    result = longrun("exec", "--log-format", "json", "--", "false")
    events = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert {e["event"] for e in events} == {"attempt-failed", "permanent"}
    assert all(e["task"] == "false" for e in events)


def test_quiet_silences_warnings():
    """-qq prints nothing at all."""
    assert longrun("exec", "-qq", "--", "false").stderr == b""


def test_dry_run_prints_the_design_example_schedule():
    """--dry-run shows each rule's delays: 2s 6s 18s 54s 1m0s."""
    result = longrun(
        "exec",
        "--dry-run",
        "--interval",
        "30s",
        "--retry-exit-code",
        "75:5:2s,60s,3",
        "--",
        "./check.sh",
    )
    assert result.returncode == 0
    assert "delays: 2s 6s 18s 54s 1m0s" in result.stdout.decode()
    assert "every 30s" in result.stdout.decode()


def test_environment_and_cwd_are_inherited(tmp_path: Path):
    """The command inherits the environment and the working directory."""
    result = longrun(
        "exec",
        "--",
        "sh",
        "-c",
        'echo "$MY_VAR $(pwd)"',
        env={**os.environ, "MY_VAR": "hello"},
        cwd=tmp_path,
    )
    assert result.stdout.decode().strip() == f"hello {tmp_path}"


def test_version_is_reported():
    """longrun --version prints the package version."""
    from longrun_cli import __version__

    result = longrun("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout.decode()


def test_python_dash_m_entry_point_works():
    """python -m longrun_cli is the same program."""
    assert longrun("exec", "--", sys.executable, "-c", "pass").returncode == 0
