"""``depends_on``: a task of a group starts once each dependency's condition holds.

While it waits, it says every ``WAITING_NOTE`` seconds what it still waits for. A
stop request, or a group with nothing left that could run (``idle``), ends the
wait; so does a dependency that can no longer meet its condition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from longrun_cli.engine.events import Level
from longrun_cli.engine.taskio import StopControl, TaskStatus, first_done
from longrun_cli.engine.taskstate import TaskState, holds
from longrun_cli.policy.group import Condition, GroupTask

if TYPE_CHECKING:  # types only: a Protocol class costs ~0.3 M instructions to build
    from typing import Protocol

    from longrun_cli.engine.clock import Clock

    class _Emit(Protocol):
        def __call__(self, task: str, name: str, level: Level, message: str) -> None: ...


# How often a task waiting for its dependencies says what it waits for.
WAITING_NOTE = 5.0


class Dependencies:
    """The waits of a group's tasks for the tasks they depend on."""

    def __init__(
        self,
        states: Mapping[str, TaskState],
        stop: StopControl,
        idle: asyncio.Future[None],
        clock: Clock,
        emit: _Emit,
    ) -> None:
        self._states = states  # the runner's, filled when it runs
        self._stop = stop
        self._idle = idle
        self._clock = clock
        self._emit = emit

    async def wait(self, group_task: GroupTask) -> str | None:
        """None when every condition holds; otherwise why the task cannot start."""
        reporter = None
        if group_task.depends_on:
            reporter = asyncio.ensure_future(self._report_waiting(group_task))
        try:
            for dependency, condition in group_task.depends_on:
                state = self._states[dependency]
                reason = await self._condition(state, condition)
                if reason is not None:
                    return f"dependency {dependency!r} {reason}"
            return None
        finally:
            if reporter is not None:
                reporter.cancel()

    async def _report_waiting(self, group_task: GroupTask) -> None:
        """Every WAITING_NOTE seconds, one line: what a task still waits for."""
        while True:
            await self._clock.sleep(WAITING_NOTE)
            pending = [
                f"{dependency} to be {condition.value}"
                for dependency, condition in group_task.depends_on
                if not holds(self._states[dependency], condition)
            ]
            if pending:
                message = f"waiting for {', '.join(pending)}"
                self._emit(group_task.name, "waiting", Level.INFO, message)

    async def _condition(self, state: TaskState, condition: Condition) -> str | None:
        if condition is Condition.STARTED:
            met, failed = state.started, None
        elif condition is Condition.READY:
            met, failed = state.ready, state.ready_failed
        else:
            met, failed = None, None
        met_waiter = asyncio.ensure_future(met.wait()) if met is not None else None
        failed_waiter = asyncio.ensure_future(failed.wait()) if failed is not None else None
        contenders: list[asyncio.Future[Any]] = [
            self._stop.stop_waiter(),
            self._idle,
            state.done,
        ]
        contenders += [w for w in (met_waiter, failed_waiter) if w is not None]
        try:
            await first_done(contenders)
        finally:
            for waiter in (met_waiter, failed_waiter):
                if waiter is not None:
                    waiter.cancel()
        if met is not None and met.is_set():
            return None
        if state.done.done():
            result = state.done.result()
            if condition is Condition.SUCCEEDED and result.status is TaskStatus.SUCCEEDED:
                return None
            return f"ended ({result.status.value}) before it was {condition.value}"
        if failed is not None and failed.is_set():
            return "did not become ready"
        return None  # stop requested, or the group ended: the caller notices
