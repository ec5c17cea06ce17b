"""The supervisor's launch contract, with Popen faked by pytest-subprocess."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from longrun_cli.engine import process
from longrun_cli.engine.launch import LaunchSpec, SpawnError
from longrun_cli.engine.platform import Watcher
from tests.engine.launching import launch


@pytest.fixture(autouse=True)
def through_popen() -> Iterator[None]:
    """These tests fake subprocess.Popen (pytest-subprocess): the launches take the
    Popen path. The posix_spawn path is what every real-process test runs. (Not the
    monkeypatch fixture: its teardown order with pytest-subprocess's is not ours.)"""
    before, process._QUICK = process._QUICK, False
    yield
    process._QUICK = before


def test_attempt_leads_its_own_process_group_with_the_given_environment(fp):
    """Each attempt is started with process_group=0, its argv, its environment and the mark."""
    fp.register(["/bin/sh", "-c", fp.any()])  # the parent-death watcher
    seen: list[dict[str, Any]] = []
    fp.register(["job", "--flag"], callback=lambda process: seen.append(process.kwargs))
    child = launch(LaunchSpec(argv=("job", "--flag"), env={"LONGRUN_RUN": "1"}))
    assert seen[0]["process_group"] == 0
    assert seen[0]["env"] == {"LONGRUN_RUN": "1", "LONGRUN_MARK": seen[0]["env"]["LONGRUN_MARK"]}
    assert len(seen[0]["env"]["LONGRUN_MARK"]) == 16
    assert child.own_group
    assert child.target == f"-{child.pid}"


def test_foreground_attempt_stays_in_longruns_group(fp):
    """--foreground starts the command without a new process group (and is watched too)."""
    fp.register(["/bin/sh", "-c", fp.any()])  # the parent-death watcher
    seen: list[dict[str, Any]] = []
    fp.register(["job"], callback=lambda process: seen.append(process.kwargs))
    child = launch(LaunchSpec(argv=("job",), env={}, own_group=False))
    assert seen[0]["process_group"] is None
    assert not child.own_group
    assert child.target == str(child.pid)


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (FileNotFoundError(2, "No such file", "job"), 127, "command not found: job"),
        (PermissionError(13, "Permission denied"), 126, "permission denied: job"),
        (
            OSError(8, "Exec format error"),
            126,
            "cannot execute job: not an executable format (missing #! line?)",
        ),
        (
            OSError(24, "Too many open files"),
            126,
            "cannot start job: too many open files (raise ulimit -n)",
        ),
        (
            BlockingIOError(11, "Resource temporarily unavailable"),
            126,
            "cannot start job: process limit reached (ulimit -u)",
        ),
        (OSError(5, "Input/output error"), 126, "cannot execute job: Input/output error"),
    ],
)
def test_spawn_failures_map_to_shell_statuses(fp, monkeypatch, error, status, message):
    """Popen errors become SpawnError with 127 (not found) or 126 (not executable)."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr("subprocess.Popen", refuse)
    with pytest.raises(SpawnError) as info:
        launch(LaunchSpec(argv=("job",), env={}, own_group=False))
    assert (info.value.status, str(info.value)) == (status, message)


def test_watcher_hears_of_exited_groups_with_the_next_spawn_or_at_close():
    """Releases are batched into the next write (one wake-up per attempt) and flushed at close."""
    read_fd, write_fd = os.pipe()
    watcher = Watcher(popen=None, write_fd=write_fd, swept=False)  # type: ignore[arg-type]
    watcher.watch("-100")
    watcher.release_later("-100")
    watcher.watch("-200")
    assert os.read(read_fd, 1024) == b"+ -100\n- -100\n+ -200\n"
    watcher.release_later("-200")
    watcher.flush()
    watcher.flush()
    watcher.close(settled=False)
    assert os.read(read_fd, 1024) == b"- -200\n"
    os.close(read_fd)


def test_with_a_mark_to_sweep_by_new_groups_wait_for_the_flush_in_order():
    """A turn's new groups reach the watcher in one write, at most 64 waiting, and a group
    id released then reused within the batch stays listed (order kept)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    watcher = Watcher(popen=None, write_fd=write_fd, swept=True)  # type: ignore[arg-type]
    assert watcher.watch("-100")
    watcher.release_later("-100")
    assert watcher.watch("-100")  # the id, reused by a new group
    with pytest.raises(BlockingIOError):
        os.read(read_fd, 1024)
    watcher.flush()
    assert os.read(read_fd, 1024) == b"+ -100\n- -100\n+ -100\n"
    waited = [watcher.watch(f"-{pid}") for pid in range(1000, 1064)]
    assert waited == [True] * 63 + [False]  # the 64th writes them all
    assert os.read(read_fd, 4096).count(b"+ ") == 64
    watcher.close(settled=False)
    os.close(read_fd)


def test_a_settled_close_tells_the_watcher_not_to_search():
    """After longrun swept its orphans itself, the watcher hears '= settled' before EOF."""
    read_fd, write_fd = os.pipe()
    watcher = Watcher(popen=None, write_fd=write_fd, swept=True)  # type: ignore[arg-type]
    watcher.release_later("-7")
    watcher.close(settled=True)
    assert os.read(read_fd, 1024) == b"- -7\n= settled\n"
    os.close(read_fd)


def test_low_slots_are_reserved_below_the_old_limit_or_not_at_all():
    """Four descriptors under the limit a large group lowers for its spawns; where there
    is no room below it, none, and nothing opened is kept."""
    import os

    from longrun_cli.engine.launch import LowSlots

    before = len(os.listdir("/proc/self/fd"))
    assert LowSlots.reserve(below=3) is None  # 0, 1 and 2 are taken: no room
    assert len(os.listdir("/proc/self/fd")) == before
    slots = LowSlots.reserve(below=10_000)
    assert slots is not None
    held = [slots._null, *slots._slots]
    assert len(held) == 4
    assert max(held) < 10_000
    for fd in held:
        os.close(fd)
