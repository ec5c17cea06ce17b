"""Conditions that break process wrappers in production, with real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import (
    LONGRUN,
    alive,
    contains,
    read_pids,
    start,
    term_twice,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_sigterm_during_backoff_ends_promptly(tmp_path: Path):
    """TERM while waiting 30s for a retry: longrun dies by TERM at once, no retry."""
    log = tmp_path / "stderr"
    with log.open("wb") as err:
        proc = start("exec", "--retry-exit-code", "1:5:30s", "--", "false", stderr=err)
        wait_for(contains(log, b"event=retry"))
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGTERM
    assert time.monotonic() - began < 5
    assert log.read_bytes().count(b"event=attempt-failed") == 1


def test_sigterm_during_the_shutdown_hook_lets_it_finish(tmp_path: Path):
    """TERM while the hook runs: the hook completes, then longrun dies by TERM."""
    done = tmp_path / "hook-done"
    started = tmp_path / "hook-started"
    proc = start("exec", "--shutdown", f"touch {started}; sleep 1; touch {done}", "--", "true")
    wait_for(started.exists)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert done.exists()
    assert proc.returncode == -signal.SIGTERM


def test_second_sigterm_during_the_hook_kills_it(tmp_path: Path):
    """TERM twice while a hook hangs: the hook is killed at once and said so."""
    started = tmp_path / "hook-started"
    log = tmp_path / "stderr"
    hook = f"touch {started}; sleep 60"
    status, seconds = term_twice(["exec", "--shutdown", hook, "--", "true"], started, log)
    assert seconds < 5
    assert status == -signal.SIGTERM
    assert b"killed on a second stop request" in log.read_bytes()


def test_sigterm_right_at_start_up_leaves_nothing_behind(tmp_path: Path):
    """TERM before or while longrun sets up: it dies by TERM and no command survives."""
    pids = tmp_path / "pids"
    for delay in (0.0, 0.05, 0.1, 0.2):
        proc = subprocess.Popen(
            [*LONGRUN, "exec", "--", "sh", "-c", f"echo $$ >> {pids}; exec sleep 30"],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert proc.returncode == -signal.SIGTERM
    wait_for(lambda: not any(alive(pid) for pid in read_pids(pids)), timeout=10)


def test_a_storm_of_forwarded_signals(tmp_path: Path):
    """1,000 USR1 in a burst: longrun forwards what it can and stays healthy."""
    ready = tmp_path / "ready"
    counter = tmp_path / "count"
    proc = start(
        "exec", "--", "sh", "-c",
        f"trap 'echo x >> {counter}' USR1; touch {ready}; i=0; while [ $i -lt 40 ]; do sleep 0.05; i=$((i+1)); done",
    )  # fmt: skip
    wait_for(ready.exists)
    for _ in range(1000):
        os.kill(proc.pid, signal.SIGUSR1)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert counter.exists()
    assert b"Traceback" not in err


def test_full_log_destination_does_not_change_the_outcome():
    """stderr on /dev/full (ENOSPC on every write): the exit status is the command's."""
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*LONGRUN, "exec", "--retry-exit-code", "3:2:1ms", "--", "sh", "-c", "exit 3"],
            stderr=full, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 3


def test_one_gib_single_line_through_a_stderr_rule():
    """1 GiB without a newline through a matched stream: every byte passes, memory bounded."""
    size = 1024 * 1024 * 1024
    proc = subprocess.Popen(
        [*LONGRUN, "exec", "--retry-stderr", "never-there", "--",
         "sh", "-c", f"head -c {size} /dev/zero >&2"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    status = Path(f"/proc/{proc.pid}/status")
    total = peak_kib = 0
    while chunk := proc.stderr.read(1 << 20):
        total += len(chunk)
        # VmHWM, not wait4's ru_maxrss: a vforked child briefly shares (and is
        # charged for) the test runner's memory before it execs longrun.
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
    assert proc.wait(timeout=30) == 0
    assert total == size
    assert 0 < peak_kib < 64 * 1024


def test_invalid_utf8_passes_through_unchanged():
    """Bytes that are not UTF-8 reach both streams exactly, matched or not."""
    payload = b"\xff\xfe\xc3(\xa0\xa1 refused\n\x80"
    result = subprocess.run(
        [*LONGRUN, "exec", "--retry-stderr", "refused:1:1ms", "--",
         "sh", "-c", "printf '\\377\\376\\303(\\240\\241 refused\\n\\200' | tee /dev/stderr; exit 1"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.stdout == payload * 2
    assert result.stderr.count(payload) == 2
    assert result.returncode == 1


def test_ten_thousand_attempts_without_memory_growth():
    """10,000 attempts: longrun's RSS late in the run stays within 2 MiB of its early RSS."""
    proc = start("exec", "-qq", "--retry-exit-code", "1:9999:1ns,1ns,1", "--", "false")
    status_file = Path(f"/proc/{proc.pid}/status")

    def rss_kib() -> int | None:
        try:
            text = status_file.read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    began = time.monotonic()
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        rss = rss_kib()
        if rss is not None:
            samples.append((time.monotonic() - began, rss))
        time.sleep(0.2)
    assert proc.returncode == 1
    duration = samples[-1][0]
    early = [rss for t, rss in samples if duration * 0.1 <= t <= duration * 0.3]
    late = [rss for t, rss in samples if t >= duration * 0.7]
    assert early
    assert late
    assert max(late) - max(early) < 2048, (max(early), max(late))


def escaping_daemon(pids: Path, body: str = "exec sleep 30", setup: str = "") -> str:
    """Shell that starts a setsid daemon (its pid into ``pids``) and waits until it has escaped.

    The command must not end before the daemon has left its process group: the
    sweep of the group after the command's exit would otherwise stop it first.
    """
    daemon = f"setsid sh -c '{setup}echo $$ > {pids}; {body}' &"
    return f"{daemon} while [ ! -s {pids} ]; do sleep 0.01; done;"


def test_daemon_escaping_with_setsid_is_adopted_and_stopped(tmp_path: Path, reap_strays):
    """A setsid daemon is reparented to longrun (subreaper) and stopped when longrun ends."""
    pids = tmp_path / "pids"
    result = subprocess.run(
        [*LONGRUN, "exec", "--kill-after", "2s", "--", "sh", "-c",
         escaping_daemon(pids, "exec sleep 60")],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 0, result.stderr
    # Found among longrun's own children once its parent shell exited: adopted.
    assert b"event=orphans" in result.stderr
    wait_for(lambda: not alive(read_pids(pids)[0]), timeout=5)


def test_daemon_ignoring_term_is_killed_after_the_grace(tmp_path: Path, reap_strays):
    """An escaped daemon that ignores TERM gets SIGKILL after --kill-after."""
    pids = tmp_path / "pids"
    began = time.monotonic()
    result = subprocess.run(
        [*LONGRUN, "exec", "--kill-after", "500ms", "--", "sh", "-c",
         escaping_daemon(pids, "while :; do sleep 0.1; done", setup='trap "" TERM; ')],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 0
    assert time.monotonic() - began < 10
    wait_for(lambda: not alive(read_pids(pids)[0]), timeout=5)


def test_group_file_changing_during_a_run_changes_nothing(tmp_path: Path):
    """The TOML is read once: rewriting or deleting it mid-run does not affect the run."""
    config = tmp_path / "longrun.toml"
    marker = tmp_path / "started"
    config.write_text(
        f'[tasks.a]\ncommand = "touch {marker}; sleep 1; echo original"\nshutdown = "echo hook-a"\n'
    )
    proc = start("group", str(config))
    wait_for(marker.exists)
    config.write_text('[tasks.b]\ncommand = "echo replaced"\n')
    config.unlink()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == b"a | original\na | hook-a\n"


def test_escaped_daemon_holding_group_output_does_not_hang_the_task(tmp_path: Path, reap_strays):
    """A setsid daemon keeps a task's stdout pipe open: the task still ends, the daemon is stopped."""
    pids = tmp_path / "pids"
    began = time.monotonic()
    result = subprocess.run(
        [*LONGRUN, "group", "--kill-after", "500ms", "-t",
         f"d={escaping_daemon(pids)} echo started"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 10
    assert result.stdout == b"d | started\n"
    assert b"event=output-held" in result.stderr
    wait_for(lambda: not alive(read_pids(pids)[0]), timeout=5)


def test_escaped_daemon_holding_a_matched_stderr_does_not_hang_exec(tmp_path: Path, reap_strays):
    """exec with a stderr rule: the escaped holder of stderr does not keep longrun waiting."""
    pids = tmp_path / "pids"
    began = time.monotonic()
    result = subprocess.run(
        [*LONGRUN, "exec", "--kill-after", "500ms", "--retry-stderr", "never", "--", "sh", "-c",
         f"{escaping_daemon(pids)} echo done >&2"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 0
    assert time.monotonic() - began < 10
    assert result.stderr.startswith(b"done\n")
    wait_for(lambda: not alive(read_pids(pids)[0]), timeout=5)


def test_command_closing_its_copied_stdout_early_is_still_waited_for():
    """A group task that closes stdout and runs on: its later stderr and exit status still count."""
    result = subprocess.run(
        [*LONGRUN, "group", "-t", "a=echo first; exec >&-; sleep 0.3; echo still-here >&2; exit 3"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"a | first\n"
    assert b"a | still-here\n" in result.stderr


def test_command_closing_its_matched_stderr_early_is_still_retried():
    """exec with a stderr rule: a command that closes stderr, then fails, is still judged by it."""
    result = subprocess.run(
        [*LONGRUN, "exec", "--retry-stderr", "busy:1:1ms", "--", "sh", "-c",
         "echo busy >&2; exec 2>&-; sleep 0.3; exit 4"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 4
    assert result.stderr.count(b"busy\n") == 2
    assert b"event=retry" in result.stderr
