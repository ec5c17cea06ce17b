"""The probes of one attempt: exec's ``--ready`` and ``--health`` (either kind of task).

Readiness is tried once a second (each try bounded by 5 s) until it passes; a
regex probe passes when its line appears. Liveness starts once the attempt is
ready (at once without a readiness probe) and is tried every interval; enough
failures in a row resolve ``unhealthy``, and the task stops the attempt. Imported
only when a task has a probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from longrun_cli.engine.events import Level
from longrun_cli.policy.duration import SECOND, format_duration, to_seconds
from longrun_cli.policy.probes import DEFAULT_HEALTH_TIMEOUT

if TYPE_CHECKING:
    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.readiness import Prober
    from longrun_cli.engine.task import Task

    Emit = Callable[..., None]

READY_INTERVAL = SECOND
_REGEX_KINDS = ("stdout", "stderr", "output")


class AttemptProbes:
    def __init__(
        self, task: Task, prober: Prober, clock: Clock, emit: Emit, on_ready: Callable[[], None]
    ) -> None:
        self._task = task
        self._spec = task.spec
        self._prober = prober
        self._clock = clock
        self._emit = emit
        self._on_ready = on_ready
        # Resolved with the reason once the liveness probe has failed too often.
        self.unhealthy: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._ready = asyncio.Event()
        if self._spec.ready is None:
            self._ready.set()
        self._heartbeat_seen = False
        # Regexes reported every time they appear, not only the first (a heartbeat);
        # fixed for the attempt, and asked on every matching chunk.
        health = self._spec.health
        self.heartbeats: frozenset[str] = frozenset()
        if health is not None and health.is_heartbeat:
            self.heartbeats = frozenset(health.probe.stdout_patterns + health.probe.stderr_patterns)
        self._jobs: list[asyncio.Future[None]] = []

    def patterns(self, stream: str) -> tuple[str, ...]:
        """The regexes the process layer must watch on ``stream`` for these probes."""
        found: list[str] = []
        for probe in (self._spec.ready, self._spec.health.probe if self._spec.health else None):
            if probe is not None and probe.kind in _REGEX_KINDS:
                found += probe.stdout_patterns if stream == "stdout" else probe.stderr_patterns
        return tuple(found)

    def matched(self, pattern: str) -> None:
        ready = self._spec.ready
        if ready is not None and pattern in ready.stdout_patterns + ready.stderr_patterns:
            self._became_ready()
        if pattern in self.heartbeats:
            self._heartbeat_seen = True

    def start(self) -> None:
        if self._spec.ready is not None and self._spec.ready.kind not in _REGEX_KINDS:
            self._jobs.append(asyncio.ensure_future(self._try_ready()))
        if self._spec.health is not None:
            self._jobs.append(asyncio.ensure_future(self._watch_health()))

    def cancel(self) -> None:
        for job in self._jobs:
            job.cancel()

    def _became_ready(self) -> None:
        if not self._ready.is_set():
            self._ready.set()
            self._on_ready()

    async def _try_ready(self) -> None:
        probe = self._spec.ready
        assert probe is not None
        bound = to_seconds(DEFAULT_HEALTH_TIMEOUT)
        while not self._ready.is_set():
            if await self._prober.try_once(probe, self._task, bound):
                self._became_ready()
                return
            await self._clock.sleep(to_seconds(READY_INTERVAL))

    async def _watch_health(self) -> None:
        check = self._spec.health
        assert check is not None
        await self._ready.wait()
        self._heartbeat_seen = False
        failures = 0
        while True:
            await self._clock.sleep(to_seconds(check.interval))
            if check.is_heartbeat:
                seen, self._heartbeat_seen = self._heartbeat_seen, False
                failure = None if seen else f"no such line in {format_duration(check.interval)}"
            else:
                failure = await self._prober.check(
                    check.probe, self._task, to_seconds(check.timeout)
                )
            if failure is None:
                if failures:
                    self._emit("healthy", Level.INFO, "healthy again", failed=failures)
                failures = 0
                continue
            failures += 1
            self._emit(
                "health-failed",
                Level.WARNING,
                f"health check failed ({failures}/{check.failures}): {check.what()}: {failure}",
                probe=check.what(),
                reason=failure,
            )
            if failures >= check.failures:
                times = "once" if failures == 1 else f"{failures} times in a row"
                self.unhealthy.set_result(f"{check.what()} failed {times} ({failure})")
                return
