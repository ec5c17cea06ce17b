"""A task's shutdown hook: ``sh -c`` after the task has ended, bounded by its timeout.

Imported only when a hook is to run: most runs have none.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from longrun_cli.engine.events import Level
from longrun_cli.engine.launch import ExitStatus, LaunchSpec, SpawnError
from longrun_cli.policy.duration import SECOND, format_duration
from longrun_cli.policy.outcome import Outcome

if TYPE_CHECKING:
    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.taskio import Spawner, TaskIO, TaskResult


Emit = Callable[..., None]  # Task._emit: (name, level, message, **fields)


def hook_launch(
    command: str,
    result: TaskResult,
    base_env: Mapping[str, str],
    cwd: str | None,
    io: TaskIO,
    **env: str,
) -> LaunchSpec:
    """A hook: ``sh -c command`` where the task runs, told how the task ended."""
    return LaunchSpec(
        argv=("/bin/sh", "-c", command),
        env={
            **base_env,
            "LONGRUN_STATUS": result.status.value,
            "LONGRUN_EXIT_STATUS": str(result.exit_status),
            **env,
        },
        cwd=cwd,
        output_prefix=io.output_prefix,
        output_stamp=io.output_stamp,
        stdin_null=io.stdin_null,
    )


async def run_hook(
    spawner: Spawner,
    clock: Clock,
    kill_now: asyncio.Future[None],
    launch: LaunchSpec,
    bound: float,
    emit: Emit,
    *,
    label: str = "shutdown hook",
) -> None:
    """Run the hook ``launch``; a failure, a timeout or a second stop request is logged."""
    command = launch.argv[-1]
    emit("hook-start", Level.DEBUG, f"running {label}", command=command)
    try:
        child = spawner.spawn(launch)
    except SpawnError as exc:
        emit("hook-failed", Level.ERROR, f"{label} failed: {exc}")
        return
    waiter = asyncio.ensure_future(child.wait())
    timer = asyncio.ensure_future(clock.sleep(bound))
    try:
        contenders: list[asyncio.Future[Any]] = [waiter, kill_now, timer]
        await asyncio.wait(contenders, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    if not waiter.done():
        why = (
            "killed on a second stop request"
            if kill_now.done()
            else f"timed out after {format_duration(int(bound * SECOND))}"
        )
        await child.stop(signal.SIGKILL, 0.0, kill_now)
        await waiter
        emit("hook-failed", Level.ERROR, f"{label} {why}", command=command)
        return
    status: ExitStatus = waiter.result()
    if status.code == 0:
        emit("hook-done", Level.DEBUG, f"{label} done")
        return
    failure = Outcome(exit_code=status.code, signal=status.signal)
    emit("hook-failed", Level.ERROR, f"{label} failed: {failure.describe()}", command=command)


async def notify_failure(
    spawner: Spawner,
    clock: Clock,
    kill_now: asyncio.Future[None],
    launch: LaunchSpec,
    tail: bytes,
    bound: float,
    emit: Emit,
) -> None:
    """Run the failure hook with ``tail`` in a private file (LONGRUN_STDERR_TAIL_FILE).

    mkstemp makes it 0600 whatever the umask; it is removed once the hook is done.
    """
    import os
    import tempfile

    path = ""
    try:
        fd, path = tempfile.mkstemp(prefix="longrun-tail-")
        with os.fdopen(fd, "wb") as file:
            file.write(tail)
    except OSError as exc:
        # A full or unwritable temporary directory costs the tail, not the notification.
        emit("hook-tail", Level.WARNING, f"stderr tail not saved: {exc.strerror or exc}")
    try:
        launch.env = {**launch.env, "LONGRUN_STDERR_TAIL_FILE": path}
        await run_hook(spawner, clock, kill_now, launch, bound, emit, label="failure hook")
    finally:
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
