"""Helpers for running the real longrun against real child processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

LONGRUN = [sys.executable, "-m", "longrun_cli"]


def longrun(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 60)
    return subprocess.run([*LONGRUN, *args], check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


def start(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*LONGRUN, *args], **kwargs)  # type: ignore[call-overload,no-any-return]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def contains(path: Path, needle: bytes) -> Callable[[], bool]:
    """A wait_for predicate: ``path`` (a log a process is writing) holds ``needle``."""
    return lambda: path.exists() and needle in path.read_bytes()


def term_twice(args: list[str], started: Path, log: Path) -> tuple[int, float]:
    """Run longrun, TERM it once ``started`` exists and again once it has handled the first.

    Two TERMs arriving before the handler runs would count as one. Returns the exit
    status and the seconds from the second TERM to the exit; stderr goes to ``log``.
    """
    with log.open("wb") as err:
        proc = start(*args, stderr=err)
        wait_for(started.exists)
        proc.send_signal(signal.SIGTERM)
        wait_for(contains(log, b"event=stop-requested"))
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    return proc.returncode, time.monotonic() - began


def process_state(pid: int) -> str:
    """The state letter from /proc (R, S, T = stopped, Z = zombie); "" once gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    return process_state(pid) not in ("", "Z")


def read_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.fixture
def reap_strays() -> Iterator[list[int]]:
    """Pids a test started indirectly; killed at teardown so a failure leaves nothing."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def rundir() -> Iterator[Path]:
    """A short XDG_RUNTIME_DIR: a socket path must stay under 108 bytes."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# The core cases, run twice: on Linux's mechanisms, and on the portable path
# (LONGRUN_PLATFORM=portable: no subreaper, no /proc, default pipe sizes), which is
# all longrun has on macOS. Escaped daemons (setsid) are the documented difference
# and are not among them.
PORTABLE_CORE = {
    "test_exit_status_follows_the_command",
    "test_timeout_exits_124",
    "test_flaky_command_is_retried_until_it_succeeds",
    "test_stderr_rule_retries_on_a_matching_line",
    "test_sigterm_stops_the_command_runs_the_hook_and_is_reraised",
    "test_kill_after_escalates_to_sigkill",
    "test_timeout_kills_the_whole_process_group",
    "test_sigkilled_longrun_takes_its_children_along",
    "test_usr1_is_forwarded_to_the_command",
    "test_binary_output_passes_through_byte_for_byte",
    "test_interval_runs_repeatedly_until_failure",
    "test_first_failure_stops_the_others_and_sets_the_status",
    "test_hooks_run_in_reverse_order_only_after_every_task_stopped",
    "test_sigterm_stops_every_task_runs_hooks_and_is_reraised",
    "test_dependent_starts_after_its_dependency_succeeded",
    "test_stdout_readiness_gates_the_dependent",
    "test_lines_never_interleave_under_concurrent_writers",
    "test_status_shows_every_task_and_restart_gives_one_a_new_pid",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.function.__name__ in PORTABLE_CORE:
        metafunc.fixturenames.append("platform_path")
        metafunc.parametrize("platform_path", ["linux", "portable"], indirect=True)


@pytest.fixture
def platform_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``portable``: every longrun this test starts takes the portable path."""
    if request.param == "portable":
        monkeypatch.setenv("LONGRUN_PLATFORM", "portable")
    return str(request.param)
