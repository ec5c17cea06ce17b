"""The supervisor's launch contract, with Popen faked by pytest-subprocess."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from longrun_cli.engine.process import LaunchSpec, SpawnError, Supervisor, _Sentinel


def launch(spec: LaunchSpec) -> Any:
    async def main() -> Any:
        supervisor = Supervisor()
        try:
            return supervisor.spawn(spec)
        finally:
            supervisor.close()

    return asyncio.run(main())


def test_attempt_leads_its_own_process_group_with_the_given_environment(fp):
    """Each attempt is started with process_group=0, its argv and its environment."""
    fp.register(["/bin/sh", "-c", fp.any()])  # the parent-death watcher
    seen: list[dict[str, Any]] = []
    fp.register(["job", "--flag"], callback=lambda process: seen.append(process.kwargs))
    child = launch(LaunchSpec(argv=("job", "--flag"), env={"LONGRUN_RUN": "1"}))
    assert seen[0]["process_group"] == 0
    assert seen[0]["env"] == {"LONGRUN_RUN": "1"}
    assert child.own_group
    assert child.target == f"-{child.pid}"


def test_foreground_attempt_stays_in_longruns_group(fp):
    """--foreground starts the command without a new process group."""
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
        (OSError(8, "Exec format error"), 126, "cannot execute job: Exec format error"),
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
    sentinel = _Sentinel(popen=None, write_fd=write_fd)  # type: ignore[arg-type]
    sentinel.watch("-100")
    sentinel.release_later("-100")
    sentinel.watch("-200")
    assert os.read(read_fd, 1024) == b"+ -100\n- -100\n+ -200\n"
    sentinel.release_later("-200")
    sentinel.flush()
    sentinel.flush()
    sentinel.close()
    assert os.read(read_fd, 1024) == b"- -200\n"
    os.close(read_fd)
