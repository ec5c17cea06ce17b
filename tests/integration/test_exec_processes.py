"""Signals, process groups, kill escalation, orphans and streams with real processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import (
    alive,
    longrun,
    process_state,
    read_pids,
    start,
    term_twice,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_sigterm_stops_the_command_runs_the_hook_and_is_reraised(tmp_path: Path):
    """SIGTERM: the child gets TERM, the hook runs, longrun dies by TERM."""
    marker = tmp_path / "hook"
    ready = tmp_path / "ready"
    proc = start(
        "exec",
        "--shutdown",
        f"echo $LONGRUN_STATUS > {marker}",
        "--",
        "sh",
        "-c",
        f"trap 'echo got-term; exit 0' TERM; touch {ready}; while :; do sleep 0.05; done",
    )
    wait_for(ready.exists)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGTERM
    assert b"got-term" in out
    assert marker.read_text().strip() == "stopped"


@pytest.mark.parametrize("how", ["stop", "timeout"])
def test_suspended_command_stops_without_waiting_out_the_grace(how: str, tmp_path: Path):
    """A command suspended by SIGSTOP gets SIGCONT after the stop signal, so TERM acts at once."""
    pids = tmp_path / "pids"
    limits = ["--timeout", "1s"] if how == "timeout" else []
    command = f"echo $$ > {pids}; kill -STOP $$; sleep 60"
    began = time.monotonic()
    proc = start("exec", "--kill-after", "60s", *limits, "--", "sh", "-c", command)
    wait_for(lambda: bool(read_pids(pids)))
    (pid,) = read_pids(pids)
    if how == "stop":
        wait_for(lambda: process_state(pid) == "T")
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - began < 20, err
    assert proc.returncode == (-signal.SIGTERM if how == "stop" else 124), err
    assert b"event=killed" not in err


def test_quiet_stop_on_request_prints_nothing(tmp_path: Path):
    """-q on `systemctl stop`: a requested stop is not an error, so nothing is printed."""
    ready = tmp_path / "ready"
    proc = start("exec", "-q", "--", "sh", "-c", f"touch {ready}; exec sleep 30")
    wait_for(ready.exists)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGTERM
    assert err == b""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_other_stop_signals_are_reraised(signum: int, tmp_path: Path):
    """INT, HUP and QUIT also stop gracefully and are re-raised."""
    ready = tmp_path / "ready"
    proc = start("exec", "--", "sh", "-c", f"touch {ready}; exec sleep 30")
    wait_for(ready.exists)
    time.sleep(0.05)
    proc.send_signal(signum)
    proc.communicate(timeout=20)
    assert proc.returncode == -signum


def test_kill_after_escalates_to_sigkill(tmp_path: Path):
    """A child ignoring TERM is SIGKILLed after --kill-after."""
    ready = tmp_path / "ready"
    began = time.monotonic()
    result = longrun(
        "exec",
        "--timeout",
        "300ms",
        "--kill-after",
        "300ms",
        "--",
        "sh",
        "-c",
        f"trap '' TERM; touch {ready}; while :; do sleep 0.05; done",
    )
    assert result.returncode == 124
    assert time.monotonic() - began < 8
    assert b"event=killed" in result.stderr


def test_second_sigterm_skips_the_grace_period(tmp_path: Path):
    """A second TERM while stopping kills at once, and longrun says so."""
    ready = tmp_path / "ready"
    log = tmp_path / "stderr"
    command = f"trap '' TERM; touch {ready}; while :; do sleep 0.05; done"
    status, seconds = term_twice(
        ["exec", "--kill-after", "60s", "--", "sh", "-c", command], ready, log
    )
    assert seconds < 5
    assert status == -signal.SIGTERM
    assert b"killing the commands now" in log.read_bytes()
    assert b"sent KILL at once (second signal)" in log.read_bytes()
    assert b"after the grace period" not in log.read_bytes()


def test_timeout_kills_the_whole_process_group(tmp_path: Path, reap_strays: list[int]):
    """Descendants in the command's group are stopped with it."""
    pids = tmp_path / "pids"
    result = longrun(
        "exec",
        "--timeout",
        "500ms",
        "--",
        "sh",
        "-c",
        f"sleep 60 & echo $! >> {pids}; sleep 60 & echo $! >> {pids}; wait",
    )
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 124
    wait_for(lambda: not any(alive(pid) for pid in read_pids(pids)), timeout=5)


def test_leftovers_are_stopped_when_the_command_exits(tmp_path: Path, reap_strays: list[int]):
    """A background job left in the group by an exiting command does not survive longrun."""
    pids = tmp_path / "pids"
    result = longrun("exec", "--", "sh", "-c", f"sleep 60 & echo $! > {pids}; exit 0")
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 0
    wait_for(lambda: not alive(read_pids(pids)[0]), timeout=5)


def test_sigkilled_longrun_takes_its_children_along(tmp_path: Path, reap_strays: list[int]):
    """On Linux, SIGKILL to longrun still kills the command and its group."""
    pids = tmp_path / "pids"
    proc = start(
        "exec",
        "--",
        "sh",
        "-c",
        f"sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait",
    )
    wait_for(lambda: len(read_pids(pids)) == 2)
    reap_strays.extend(read_pids(pids))
    proc.kill()
    proc.wait(timeout=10)
    wait_for(lambda: not any(alive(pid) for pid in read_pids(pids)), timeout=5)


def test_each_attempt_has_its_own_process_group():
    """Without --foreground the command leads a new process group."""
    result = longrun("exec", "--", "sh", "-c", "ps -o pid=,pgid= -p $$")
    pid, pgid = result.stdout.split()
    assert pid == pgid
    assert int(pgid) != os.getpgrp()


def test_foreground_keeps_the_command_in_longruns_group():
    """--foreground leaves the command in longrun's process group."""
    result = longrun(
        "exec", "--foreground", "--", "sh", "-c", "ps -o pgid= -p $$; ps -o pgid= -p $PPID"
    )
    child_group, longrun_group = result.stdout.split()
    assert child_group == longrun_group


def test_usr1_is_forwarded_to_the_command(tmp_path: Path):
    """SIGUSR1 sent to longrun reaches the running command."""
    ready = tmp_path / "ready"
    proc = start(
        "exec",
        "--",
        "sh",
        "-c",
        f"trap 'echo usr1; exit 0' USR1; touch {ready}; while :; do sleep 0.05; done",
    )
    wait_for(ready.exists)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=20)
    assert out == b"usr1\n"
    assert proc.returncode == 0


def test_binary_output_passes_through_byte_for_byte(tmp_path: Path):
    """stdout and a matched stderr both arrive unchanged, without waiting for newlines."""
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(3 * 1024 * 1024) + b"no newline at the end")
    result = longrun(
        "exec",
        "--retry-stderr",
        "never-matches",
        "--",
        "sh",
        "-c",
        f"cat {blob}; cat {blob} >&2",
    )
    assert result.returncode == 0
    assert result.stdout == blob.read_bytes()
    assert result.stderr == blob.read_bytes()


def test_unread_streams_are_inherited_not_copied():
    """With no stderr rule, the command writes straight to longrun's own descriptors."""
    result = longrun("exec", "--", "sh", "-c", "readlink /proc/$$/fd/2; readlink /proc/$PPID/fd/2")
    mine, parents = result.stdout.decode().split()
    assert mine == parents


def test_catastrophic_regex_finishes_quickly_on_a_huge_line():
    """(a+)+$ against 1 MiB of 'a' followed by '!' completes in bounded time."""
    began = time.monotonic()
    result = longrun(
        "exec",
        "--retry-stderr",
        "(a+)+$:2:1ms",
        "--",
        "sh",
        "-c",
        "head -c 1048576 /dev/zero | tr '\\0' a >&2; echo '!' >&2; exit 1",
    )
    assert result.returncode == 1
    assert time.monotonic() - began < 20
    assert len(result.stderr) > 1048576


def test_interval_runs_repeatedly_until_failure(tmp_path: Path):
    """--interval runs now and again every interval; a permanent failure ends it."""
    counter = tmp_path / "count"
    result = longrun(
        "exec",
        "--interval",
        "100ms",
        "--",
        "sh",
        "-c",
        f"echo x >> {counter}; [ $(wc -l < {counter}) -lt 4 ]",
    )
    assert result.returncode == 1
    assert len(counter.read_text().split()) == 4


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_as_pid_1_orphans_are_reaped(tmp_path: Path):
    """As PID 1 longrun reaps the zombies it adopts."""
    import sys

    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot create a PID namespace here: {probe.stderr.decode().strip()}")
    script = (
        "for i in 1 2 3; do sh -c 'sleep 0.1 &' ; done; sleep 0.6; "
        "ps -eo stat= | grep -c '^Z' || true"
    )
    result = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-m",
            "longrun_cli",
            "exec",
            "--",
            "sh",
            "-c",
            script,
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "0"


def test_stderr_match_spanning_two_writes_is_found():
    """A line written in pieces (no newline yet) still matches once complete."""
    command = "printf 'dial: conn' >&2; sleep 0.2; printf 'ection refused\\n' >&2; exit 1"
    result = longrun(
        "exec", "--retry-stderr", "connection refused:1:1ms", "--", "sh", "-c", command
    )
    assert result.stderr.count(b"event=retry") == 1
    assert result.stderr.count(b"dial: connection refused\n") == 2


def test_stderr_match_deep_inside_a_huge_line_is_found():
    """A pattern 3 MiB into a single line (beyond the matching window) is still seen."""
    command = "head -c 3145728 /dev/zero | tr '\\0' x >&2; printf 'refused' >&2; exit 1"
    result = longrun("exec", "--retry-stderr", "refused:1:1ms", "--", "sh", "-c", command)
    assert result.stderr.count(b"event=retry") == 1


def test_stderr_pattern_is_searched_per_line_not_across_lines():
    """'a.b' does not match 'a' at the end of one line and 'b' at the start of the next."""
    result = longrun(
        "exec", "--retry-stderr", r"a\sb:1:1ms", "--", "sh", "-c", "printf 'xa\\nbx\\n' >&2; exit 1"
    )
    assert b"event=retry" not in result.stderr
    assert result.returncode == 1


def test_stderr_closed_by_the_reader_gives_the_child_sigpipe():
    """When longrun's stderr reader goes away, the child gets SIGPIPE, as in a pipeline."""
    proc = start("exec", "-qq", "--retry-stderr", "never", "--", "sh", "-c", "yes >&2")
    assert proc.stderr is not None
    assert proc.stderr.read(10) == b"y\ny\ny\ny\ny\n"
    proc.stderr.close()
    assert proc.wait(timeout=20) == 128 + signal.SIGPIPE


def test_stdout_closed_by_the_reader_ends_promptly():
    """longrun exec -- yes | head -1 ends at once with yes's SIGPIPE status."""
    proc = start("exec", "--", "yes")
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"y\n"
    proc.stdout.close()
    assert proc.wait(timeout=20) == 128 + signal.SIGPIPE
