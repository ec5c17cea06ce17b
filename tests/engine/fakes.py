"""A virtual-time clock and scripted processes, so engine tests never sleep."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from longrun_cli.engine.launch import ExitStatus, LaunchSpec, SpawnError


class FakeClock:
    """Virtual time: when every coroutine is waiting, jump to the earliest sleeper."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = 0.0
        self.start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        # wake time -> extra seconds: that sleeper wakes late (longrun was SIGSTOPped).
        self.late_wakeups: dict[float, float] = {}

    def now(self) -> float:
        return self.t

    def wall(self) -> datetime:
        """Civil time: ``start`` plus the virtual seconds (tests of cron schedules)."""
        return self.start + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wake = self.t + max(0.0, seconds)
        wake += self.late_wakeups.pop(round(wake, 6), 0.0)
        heapq.heappush(self._sleepers, (wake, next(self._seq), future))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.ensure_future(self._drive())
        await future

    async def _drive(self) -> None:
        while self._sleepers:
            for _ in range(50):  # let every runnable coroutine reach its next wait
                await asyncio.sleep(0)
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # cancelled sleeper
            if not self._sleepers:
                return
            wake, _, future = heapq.heappop(self._sleepers)
            self.t = max(self.t, wake)
            future.set_result(None)


@dataclass
class Script:
    """One scripted attempt: how long it runs and how it ends."""

    duration: float = 0.0
    code: int | None = 0
    signal: int | None = None
    stderr_hits: frozenset[str] = frozenset()
    spawn_error: int | None = None  # 126 or 127: the command cannot start
    stdout_match_after: float | None = None  # readiness regex seen after this long


class FakeChild:
    """Runs for its script's duration in virtual time unless stopped first."""

    def __init__(self, clock: FakeClock, script: Script, pid: int) -> None:
        self.clock = clock
        self.script = script
        self.pid = pid
        self.stopped_with: list[int] = []
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.ensure_future(self._run())

    @property
    def exited(self) -> asyncio.Future[int]:
        return self._exited

    async def _run(self) -> None:
        await self.clock.sleep(self.script.duration)
        if not self._exited.done():
            self._exited.set_result(0)

    async def wait(self) -> ExitStatus:
        await self._exited
        if self.stopped_with:
            return ExitStatus(None, self.stopped_with[0], self.script.stderr_hits)
        return ExitStatus(self.script.code, self.script.signal, self.script.stderr_hits)

    async def stop(self, signum: int, grace: float, kill_now: asyncio.Future[None]) -> bool:
        self.stopped_with.append(signum)
        self._runner.cancel()
        if not self._exited.done():
            self._exited.set_result(0)
        return False


class FakeSpawner:
    """Hands out scripted attempts in order and records when and how each started."""

    def __init__(
        self, clock: FakeClock, scripts: Iterable[Script], hook: Script | None = None
    ) -> None:
        self.clock = clock
        self._scripts = iter(scripts)
        self._hook = hook or Script()
        self.launches: list[LaunchSpec] = []
        self.start_times: list[float] = []
        self.children: list[FakeChild] = []

    def spawn(self, spec: LaunchSpec) -> FakeChild:
        script = self._hook if _is_hook(spec) else next(self._scripts, Script())
        self.launches.append(spec)
        self.start_times.append(self.clock.now())
        if script.spawn_error is not None:
            raise SpawnError("command not found: fake", script.spawn_error)
        child = FakeChild(self.clock, script, pid=1000 + len(self.launches))
        self.children.append(child)
        return child

    @property
    def task_launches(self) -> list[LaunchSpec]:
        """Launches of the command itself, not of shutdown hooks."""
        return [spec for spec in self.launches if not _is_hook(spec)]

    @property
    def task_start_times(self) -> list[float]:
        return [
            t for t, spec in zip(self.start_times, self.launches, strict=True) if not _is_hook(spec)
        ]


def _is_hook(spec: LaunchSpec) -> bool:
    return "LONGRUN_STATUS" in spec.env


class GroupSpawner(FakeSpawner):
    """Scripts per task name; hooks and probes get their own scripts; records a timeline."""

    def __init__(
        self,
        clock: FakeClock,
        scripts: dict[str, list[Script]],
        hooks: dict[str, Script] | None = None,
        probes: dict[str, list[Script]] | None = None,
    ) -> None:
        super().__init__(clock, [])
        self._per_task = {name: iter(items) for name, items in scripts.items()}
        self._hooks = hooks or {}
        self._probes = {name: iter(items) for name, items in (probes or {}).items()}
        self.timeline: list[tuple[float, str, str]] = []  # (time, kind, task)

    def spawn(self, spec: LaunchSpec) -> FakeChild:
        name = spec.env["LONGRUN_TASK"]
        if _is_hook(spec):
            kind, script = "hook", self._hooks.get(name, Script())
        elif spec.quiet:
            kind, script = "probe", next(self._probes.get(name, iter(())), Script(code=1))
        else:
            kind, script = "run", next(self._per_task.get(name, iter(())), Script())
        self.launches.append(spec)
        self.start_times.append(self.clock.now())
        self.timeline.append((self.clock.now(), kind, name))
        child = FakeChild(self.clock, script, pid=1000 + len(self.launches))
        self.children.append(child)
        if (
            kind == "run"
            and spec.on_stdout_match is not None
            and script.stdout_match_after is not None
        ):
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(self._match_later(spec, script))
            )
        return child

    async def _match_later(self, spec: LaunchSpec, script: Script) -> None:
        await self.clock.sleep(script.stdout_match_after or 0.0)
        assert spec.on_stdout_match is not None
        spec.on_stdout_match(spec.stdout_patterns[0])

    def started(self, kind: str) -> list[str]:
        return [name for _, k, name in self.timeline if k == kind]
