"""Readiness probes that are tried until they pass: a command, an HTTP GET, a TCP connect.

(A regex probe needs no trying: the task's output copier reports the match.) Each
try is bounded by what is left of the probe's timeout, and is cancelled with the
task: a probe command is killed, a connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from longrun_cli.engine.launch import LaunchSpec, SpawnError
from longrun_cli.policy.duration import format_duration, to_seconds
from longrun_cli.policy.group import split_host_port

if TYPE_CHECKING:
    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.task import Task
    from longrun_cli.engine.taskio import Spawner
    from longrun_cli.policy.group import ReadyProbe


class Prober:
    """Tries one task's probe every ``interval`` until it passes or ``timeout`` is spent."""

    def __init__(self, spawner: Spawner, clock: Clock, kill_now: asyncio.Future[None]) -> None:
        self._spawner = spawner
        self._clock = clock
        self._kill_now = kill_now
        self._last_failure = "failed"

    async def watch(
        self,
        probe: ReadyProbe,
        task: Task,
        started: asyncio.Event,
        ready: asyncio.Event,
        became_ready: Callable[[], None],
        not_ready: Callable[[str], None],
    ) -> None:
        await started.wait()
        deadline = self._clock.now() + to_seconds(probe.timeout)
        tried = probe.kind in ("command", "http", "tcp")
        while not ready.is_set():
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                not_ready(f"not ready within {format_duration(probe.timeout)}: {probe.describe()}")
                return
            if tried and await self.try_once(probe, task, remaining):
                became_ready()
                return
            waiter = asyncio.ensure_future(ready.wait())
            pause = asyncio.ensure_future(
                self._clock.sleep(min(remaining, to_seconds(probe.interval)))
            )
            try:
                await asyncio.wait([waiter, pause], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                pause.cancel()

    async def try_once(self, probe: ReadyProbe, task: Task, limit: float) -> bool:
        return await self.check(probe, task, limit) is None

    async def check(self, probe: ReadyProbe, task: Task, limit: float) -> str | None:
        """One try of a command, HTTP or TCP probe: None if it passed, else why not."""
        if probe.http is not None:
            return await _bounded(_http_failure(probe.http), limit)
        if probe.tcp is not None:
            return await _bounded(_tcp_failure(probe.tcp), limit)
        passed = await self._command_ok(probe.command or "false", task, limit)
        return None if passed else self._last_failure

    async def _command_ok(self, command: str, task: Task, limit: float) -> bool:
        launch = LaunchSpec(
            argv=("/bin/sh", "-c", command),
            env=task.base_env,
            cwd=task.spec.cwd,
            stdin_null=True,
            quiet=True,
        )
        try:
            child = self._spawner.spawn(launch)
        except SpawnError as exc:
            self._last_failure = str(exc)
            return False
        timer = asyncio.ensure_future(self._clock.sleep(limit))
        try:
            racers: list[asyncio.Future[Any]] = [child.exited, timer]
            await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The task ended while its probe ran: the probe goes with it.
            await child.stop(signal.SIGKILL, 0.0, self._kill_now)
            await child.wait()
            raise
        finally:
            timer.cancel()
        timed_out = not child.exited.done()
        if timed_out:
            await child.stop(signal.SIGKILL, 0.0, self._kill_now)
        status = await child.wait()
        if timed_out:
            self._last_failure = f"no result within {format_duration(round(limit * 1e9))}"
        else:
            self._last_failure = f"exit {status.code}"
        return not timed_out and status.code == 0


async def _bounded(attempt: Any, limit: float) -> str | None:
    failure: str | None
    try:
        failure = await asyncio.wait_for(attempt, limit)
    except TimeoutError:
        failure = f"no answer within {format_duration(round(limit * 1e9))}"
    except (OSError, ValueError) as exc:
        failure = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        failure = failure or repr(exc)
    return failure


async def _tcp_failure(address: str) -> str | None:
    """None when the address accepts a TCP connection."""
    await tcp_ok(address)
    return None


async def _http_failure(url: str) -> str | None:
    """None when a GET of ``url`` is answered 2xx or 3xx (redirects are not followed)."""
    from longrun_cli.engine.http import http_status

    status = await http_status(url)
    return None if 200 <= status < 400 else f"answered {status}"


async def tcp_ok(address: str) -> bool:
    """The address accepts a TCP connection."""
    host, port = split_host_port(address)
    _reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
