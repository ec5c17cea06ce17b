"""What ``longrun ctl`` asks of a running group: stop, start and restart one task.

A stop on request is never a failure: the task ends ``stopped`` (parked: it can be
started again), its dependents wait for it, and the group goes on. The group ends
once it is idle: no task runs or can run without an operator (each has ended, was
stopped on request, or waits on one that was).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from longrun_cli.engine.taskstate import Refused, TaskState, holds, refusal, select

if TYPE_CHECKING:
    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.taskio import StopControl


class Operations:
    def __init__(
        self, states: dict[str, TaskState], stop: StopControl, clock: Clock, patience: float
    ) -> None:
        self._states = states  # the runner's, filled when it runs
        self._stop = stop
        self._clock = clock
        self._patience = patience  # the longest grace period, and a margin
        self.idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._live: dict[str, TaskState] | None = None  # the tasks not seen ended yet

    @property
    def ending(self) -> bool:
        return self._stop.is_requested or self.idle.done()

    async def stop(self, names: Sequence[str]) -> list[str]:
        """Stop tasks gracefully; they end ``stopped`` and the others go on (no failure).

        Returns once they have stopped (or after their grace period and a margin).
        Raises Refused, naming the task, when one cannot be stopped now.
        """
        chosen = self._select(names, "stop")
        for state in chosen:
            state.restart_pending = False
            _resolve(state.halt)
        await self._until(lambda: all(s.parked or s.done.done() for s in chosen))
        return [state.name for state in chosen]

    async def start(self, names: Sequence[str]) -> list[str]:
        """Run tasks stopped on request again; returns once each has started (or ended)."""
        return await self._run_again(self._select(names, "start"))

    async def restart(self, names: Sequence[str]) -> list[str]:
        """Stop tasks' attempts gracefully and run them again at once, budgets reset.

        A restart on request is never a failure: no rule sees it, no budget is spent.
        """
        return await self._run_again(self._select(names, "restart"))

    async def _run_again(self, chosen: list[TaskState]) -> list[str]:
        before = {state.name: (state.generation, state.spawns) for state in chosen}
        for state in chosen:
            if state.parked:
                state.parked = False
                _resolve(state.wake)
            else:
                state.restart_pending = True
                _resolve(state.halt)

        def again(state: TaskState) -> bool:
            generation, spawns = before[state.name]
            if state.spawns > spawns or state.done.done() or state.parked:
                return True
            progress = state.progress
            return state.generation > generation and progress is not None

        await self._until(lambda: all(again(s) for s in chosen))
        return [state.name for state in chosen]

    def _select(self, names: Sequence[str], verb: str) -> list[TaskState]:
        if self.ending:
            raise Refused("the group is stopping")
        chosen = select(self._states, names)
        for state in chosen:
            why = refusal(state, verb)
            if why is not None:
                raise Refused(why)
        return chosen

    async def _until(self, settled: Callable[[], bool]) -> None:
        """Wait until ``settled()`` holds after a change, at most the longest grace and 5 s."""
        if settled():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((settled, future))
        timer = asyncio.ensure_future(self._clock.sleep(self._patience))
        try:
            await asyncio.wait([future, timer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()

    def settle(self) -> None:
        """A task changed: wake the operations waiting for it."""
        if not self._waiters:
            return
        waiting = []
        for settled, future in self._waiters:
            if future.done():
                continue
            if settled():
                future.set_result(None)
            else:
                waiting.append((settled, future))
        self._waiters = waiting

    def check_idle(self) -> None:
        """Note that nothing can move without an operator: the group is to end."""
        if self.idle.done():
            return
        if self._live is None:
            self._live = {n: s for n, s in self._states.items() if not s.done.done()}
        # Only the tasks not ended, and the first that can still move ends the look:
        # 2,000 tasks ending one by one cost 2,000 looks, not 2,000 x 2,000.
        ended: list[str] = []
        movable = False
        for name, state in self._live.items():
            if state.done.done():
                ended.append(name)
            elif not (state.parked or self._blocked(state)):
                movable = True
                break
        for name in ended:
            del self._live[name]
        if not movable:
            self.idle.set_result(None)

    def _blocked(self, state: TaskState) -> bool:
        """Waiting on a dependency that only an operator can move (stopped on request)."""
        if not state.waiting:
            return False
        for dependency, condition in state.group_task.depends_on:
            other = self._states[dependency]
            if holds(other, condition):
                continue
            if other.parked or self._blocked(other):
                return True
        return False


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
