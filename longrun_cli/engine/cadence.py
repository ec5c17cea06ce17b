"""When a task runs next: the interval grid, cron fire times, and the circuit breaker.

A mixin of ``Task``: the task loop asks it when to run again; it sleeps with the
task's own ``_pause`` (so a stop or the deadline cuts the wait short) and speaks
with its ``_emit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from longrun_cli.engine.events import Level
from longrun_cli.engine.taskio import TaskResult, TaskStatus
from longrun_cli.policy.duration import format_duration, to_seconds

if TYPE_CHECKING:
    from datetime import datetime

    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.task import Interrupt
    from longrun_cli.policy.decision import Decision
    from longrun_cli.policy.taskspec import TaskSpec
    from longrun_cli.policy.tracker import Budgets
    from longrun_cli.telemetry import TaskTrace


class Cadence:
    spec: TaskSpec
    _clock: Clock
    _trace: TaskTrace
    _fired: datetime | None  # the schedule's fire time of the current run
    _openings: int  # the circuit breaker's openings in a row
    _trial: bool  # the run after a cooldown: success closes, failure reopens
    _streak: int

    if TYPE_CHECKING:  # provided by Task

        async def _pause(self, seconds: float, phase: str) -> Interrupt | None: ...

        def _emit(self, name: str, level: Level, message: str, **fields: object) -> None: ...

    def _breaks(self, ended: TaskResult | tuple[Decision, Budgets]) -> bool:
        """Where the task would end (a permanent failure, a spent budget), or a trial failed."""
        if isinstance(ended, TaskResult):
            return ended.status in (TaskStatus.FAILED, TaskStatus.EXHAUSTED)
        return False  # a retry: a trial never gets one (see _on_failure)

    async def _open_circuit(self) -> Interrupt | None:
        """No runs for the cooldown (doubled at each opening in a row), then one trial."""
        breaker = self.spec.breaker
        assert breaker is not None
        self._openings += 1
        cooldown = breaker.cooldown_after(self._openings)
        self._emit(
            "circuit-open",
            Level.WARNING,
            f"circuit open for {format_duration(cooldown)}",
            openings=self._openings,
        )
        self._trace.event("circuit.open", cooldown_seconds=to_seconds(cooldown))
        interrupt = await self._pause(to_seconds(cooldown), "backoff")
        if interrupt is not None:
            return interrupt
        self._emit("circuit-half-open", Level.INFO, "circuit half-open: one trial run")
        self._trace.event("circuit.half_open")
        self._trial = True
        self._streak = 0
        return None

    async def _until_fire(self, last: datetime | None) -> Interrupt | None:
        """Sleep until the schedule's next fire time; those a run outlasted are skipped."""
        from longrun_cli.policy.schedule import missed_between, next_fire

        schedule = self.spec.schedule
        assert schedule is not None
        now = self._clock.wall()
        if last is not None:
            missed, first = missed_between(schedule, last, now)
            if missed:
                # No overlap and no catching up: a fire time passed during a run is
                # skipped (Kubernetes' concurrencyPolicy: Forbid).
                self._emit(
                    "schedule-skipped",
                    Level.WARNING,
                    f"skipped {missed} fire time{'s' if missed > 1 else ''}: the run was still "
                    "going",
                    first=first.isoformat() if first is not None else None,
                )
        fire = next_fire(schedule, now)
        while (remaining := (fire - self._clock.wall()).total_seconds()) > 0:
            # Slept on the monotonic clock, checked on the civil one (a clock set
            # back or forth while waiting).
            interrupt = await self._pause(remaining, "sleeping")
            if interrupt is not None:
                return interrupt
        self._fired = fire
        return None


def next_after(tick: float, interval: float, now: float) -> float:
    """The grid point after ``tick`` that is still ahead of ``now``.

    Normally ``tick + interval``. When the wake-up itself came late by a whole
    interval or more (longrun was suspended with SIGSTOP, the machine slept),
    the run about to start is the one buffered tick of Go's Ticker: the ticks
    missed meanwhile are dropped rather than run back to back.
    """
    following = tick + interval
    if now >= following:
        following += (int((now - following) // interval) + 1) * interval
    return following
