"""The runner: several tasks at once (Go's ``Runner``) plus ``depends_on`` ordering.

Tasks start concurrently, each once its dependencies' conditions hold. A task that
succeeds does not stop the others; the first permanent failure stops them all.
Only when every task has stopped do the shutdown hooks run, one at a time, in
reverse dependency order (ties last-declared first), all within the shutdown timeout.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from longrun_cli.engine.dependencies import Dependencies
from longrun_cli.engine.events import Event, Level
from longrun_cli.engine.logring import LogRing, bytes_per_task
from longrun_cli.engine.operations import Operations
from longrun_cli.engine.output import local_stamp
from longrun_cli.engine.task import Task
from longrun_cli.engine.taskio import FAILURES, StopControl, TaskIO, TaskResult, TaskStatus
from longrun_cli.engine.taskstate import Progress, TaskState, TaskView
from longrun_cli.policy.duration import format_duration, to_seconds
from longrun_cli.policy.group import GroupSpec, GroupTask
from longrun_cli.telemetry import NO_TASK

if TYPE_CHECKING:
    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.events import EventSink
    from longrun_cli.engine.taskio import Spawner
    from longrun_cli.telemetry import GroupTrace

# A task whose dependency can no longer meet its condition fails with this status.
EXIT_DEPENDENCY_FAILED = 1


class RunnerResult(NamedTuple):
    exit_status: int
    first_failure: str | None
    results: dict[str, TaskResult]


class Runner:
    def __init__(
        self,
        group: GroupSpec,
        spawner: Spawner,
        clock: Clock,
        sink: EventSink,
        stop: StopControl,
        *,
        prefixes: Mapping[str, bytes] | None = None,
        environ: Mapping[str, str] = os.environ,
        trace: GroupTrace | None = None,
        log_lines: int = 1000,
        timestamps: bool = False,
        gate: Callable[[], bool] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        # --lock: no attempt starts unless gate() (the lock is certainly held)
        self._gate = gate
        self.lock_status: str | None = None
        self._pass_fds = pass_fds
        self._timestamps = timestamps
        self._trace = trace
        self._log_lines = log_lines
        self._group = group
        self._spawner = spawner
        self._clock = clock
        self._sink = sink
        self._stop = stop
        self._prefixes = prefixes or {}
        self._environ = dict(environ)  # one plain copy, shared by every task
        self._states: dict[str, TaskState] = {}
        self._first_failure: str | None = None
        self._all_ready_sent = False
        self._unready: deque[str] = deque()
        patience = max(to_seconds(task.spec.kill_after) for task in group.tasks) + 5.0
        self._operations = Operations(self._states, stop, clock, patience)
        self._dependencies = Dependencies(
            self._states, stop, self._operations.idle, clock, self._emit
        )
        # Called after any task changes state (longrun ctl status --watch).
        self.listeners: set[Callable[[], None]] = set()

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def ending(self) -> bool:
        """The group is on its way out: no task will start again."""
        return self._operations.ending

    def hold_lock(self, token: int, gate: Callable[[], bool], fds: tuple[int, ...]) -> None:
        """--lock: what the tasks run under once the lock is held (before ``run``)."""
        self._environ = {**self._environ, "LONGRUN_LOCK_TOKEN": str(token)}
        self._gate = gate
        self._pass_fds = fds

    def show_lock(self, text: str) -> None:
        """--lock: holder or standby, for longrun ctl status (and its watchers)."""
        self.lock_status = text
        for listener in list(self.listeners):
            listener()

    def views(self) -> list[TaskView]:
        return [state.view() for state in self._states.values()]

    def states(self) -> dict[str, TaskState]:
        return self._states

    async def stop(self, names: Sequence[str]) -> list[str]:
        """Stop tasks gracefully: they end ``stopped``, the others go on (see Operations)."""
        return await self._operations.stop(names)

    async def start(self, names: Sequence[str]) -> list[str]:
        """Run tasks stopped on request again."""
        return await self._operations.start(names)

    async def restart(self, names: Sequence[str]) -> list[str]:
        """Stop tasks' attempts gracefully and run them again at once, budgets reset."""
        return await self._operations.restart(names)

    async def run(self) -> RunnerResult:
        """Run every task to its end, then the hooks; never raises for a failing command."""
        now = self._clock.now()
        share = bytes_per_task(len(self._group.tasks))
        self._states.update(
            (
                task.name,
                TaskState(
                    task, self._check_all_ready, LogRing(self._log_lines, byte_limit=share), now
                ),
            )
            for task in self._group.tasks
        )
        self._look_again()
        await asyncio.gather(*(self._run_one(state) for state in self._states.values()))
        results = {name: state.done.result() for name, state in self._states.items()}
        await self._run_hooks(results)
        status = 0
        if self._first_failure is not None:
            status = results[self._first_failure].exit_status
        if self._trace is not None:
            self._trace.finish(status, self._first_failure)
        return RunnerResult(status, self._first_failure, results)

    async def _run_one(self, state: TaskState) -> None:
        group_task = state.group_task
        result = TaskResult(TaskStatus.STOPPED, 0, 0)
        try:
            state.waiting = True
            blocked = await self._dependencies.wait(group_task)
            state.waiting = False
            if blocked is not None:
                result = self._dependency_failed(group_task, blocked)
            elif not self.ending:
                result = await self._start(state)
                # Stopped on request (longrun ctl): wait for start, or go again at once.
                while state.halted_on_request and not self._stop.is_requested:
                    if not state.restart_pending and not await self._park(state):
                        break
                    state.restart_pending = False
                    result = await self._start(state)
        finally:
            state.waiting = state.parked = False
            # Dependents wait on this future: it must resolve on every way out.
            if not state.done.done():
                state.done.set_result(result)
            self._check_all_ready()
            self._operations.check_idle()
            self._changed(state)
        if result.status in FAILURES and self._first_failure is None:
            self._first_failure = group_task.name
            others = len(self._states) > 1
            self._emit(
                group_task.name,
                "stopping-group",
                Level.ERROR,
                "failed permanently" + (": stopping the other tasks" if others else ""),
                exit_status=result.exit_status,
            )
            self._stop.cancel()

    async def _park(self, state: TaskState) -> bool:
        """A task stopped on request waits: True when started again, False when the group ends."""
        state.wake = asyncio.get_running_loop().create_future()
        state.parked = True
        self._changed(state)
        self._check_all_ready()  # the operator took it out: the others may be all there is
        self._operations.check_idle()
        contenders: list[asyncio.Future[Any]] = [
            state.wake,
            self._stop.requested,
            self._operations.idle,
        ]
        await asyncio.wait(contenders, return_when=asyncio.FIRST_COMPLETED)
        if not state.wake.done() or self._stop.is_requested:
            return False
        state.parked = False
        self._look_again()
        return True

    async def _start(self, state: TaskState) -> TaskResult:
        group_task = state.group_task
        probe = group_task.ready
        state.halt = asyncio.get_running_loop().create_future()
        state.generation += 1
        if state.task is not None:  # started again: readiness is to be shown anew
            state.ready.clear()
            state.ready_failed.clear()
            self._look_again()
        io = TaskIO(
            output_prefix=self._prefixes.get(group_task.name, b""),
            stdin_null=True,
            stdout_patterns=probe.stdout_patterns if probe else (),
            stderr_ready_patterns=probe.stderr_patterns if probe else (),
            on_ready_match=lambda _pattern: self._became_ready(state),
            on_started=state.mark_started,
            on_progress=lambda *fields: self._on_progress(state, Progress(*fields)),
            log=state.log,
            output_stamp=local_stamp if self._timestamps else None,
            gate=self._gate,
            pass_fds=self._pass_fds,
        )
        task = Task(
            group_task.spec,
            self._spawner,
            self._clock,
            self._sink,
            self._stop,
            environ=self._environ,
            io=io,
            trace=self._trace.task(group_task.name, group_task.spec.argv)
            if self._trace is not None
            else NO_TASK,
            halt=state.halt,
            runs_before=state.runs,
            again=state.generation > 1,
        )
        state.task = task
        state.progress = None
        self._changed(state)
        prober = None
        if probe is not None:
            from longrun_cli.engine.readiness import Prober

            def not_ready(message: str) -> None:
                state.ready_failed.set()
                self._emit(state.group_task.name, "not-ready", Level.ERROR, message)

            watch = Prober(self._spawner, self._clock, self._stop.kill_now).watch(
                probe,
                task,
                state.started,
                state.ready,
                lambda: self._became_ready(state),
                not_ready,
            )
            prober = asyncio.ensure_future(watch)
        try:
            return await task.run()
        finally:
            state.runs = task.runs
            if prober is not None:
                prober.cancel()
            if not state.ready.is_set() and not state.halted_on_request:
                state.ready_failed.set()

    def _on_progress(self, state: TaskState, progress: Progress) -> None:
        state.progress = progress
        if progress.phase == "running":
            state.spawns += 1
        self._changed(state)

    def _changed(self, state: TaskState) -> None:
        """A task may have changed state: note when, tell the listeners, wake operations."""
        state.refresh(self._clock.now())
        for listener in list(self.listeners):
            listener()
        self._operations.settle()

    def _became_ready(self, state: TaskState) -> None:
        if not state.ready.is_set():
            state.ready.set()
            self._emit(state.group_task.name, "ready", Level.INFO, "ready")
            self._check_all_ready()
            self._changed(state)

    def _check_all_ready(self) -> None:
        """One event when every task is ready, or done with success: systemd's READY=1.

        Never once a probe has failed, a task has failed or a stop was asked
        for: a group that is going down was never ready.
        """
        if self._all_ready_sent or self._stop.is_requested:
            return
        # The tasks not yet seen ready, in order: each check looks at the first only
        # until it is ready (2,000 tasks starting cost 2,000 looks, not 2,000 x 2,000).
        unready = self._unready
        while unready:
            if not self._counts_as_ready(self._states[unready[0]]):
                return
            unready.popleft()
        self._all_ready_sent = True
        self._emit("longrun", "all-ready", Level.DEBUG, "every task is ready")

    def _look_again(self) -> None:
        """A task may no longer count as ready (started again): check them all anew."""
        self._unready = deque(self._states)

    @staticmethod
    def _counts_as_ready(state: TaskState) -> bool:
        if state.parked:  # stopped on request (longrun ctl): not what READY=1 waits for
            return True
        if state.ready_failed.is_set() and not state.ready.is_set():
            return False
        if state.done.done():
            return state.done.result().status is TaskStatus.SUCCEEDED
        return state.ready.is_set()

    def _dependency_failed(self, group_task: GroupTask, why: str) -> TaskResult:
        if self.ending:
            return TaskResult(TaskStatus.STOPPED, 0, 0)
        self._emit(group_task.name, "dependency-failed", Level.ERROR, f"cannot start: {why}")
        return TaskResult(TaskStatus.FAILED, EXIT_DEPENDENCY_FAILED, 0)

    async def _run_hooks(self, results: dict[str, TaskResult]) -> None:
        deadline = self._clock.now() + to_seconds(self._group.shutdown_timeout)
        for name in self._group.shutdown_order():
            task = self._states[name].task
            if task is None or not task.spec.shutdown:
                continue
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                self._emit(
                    name,
                    "hook-skipped",
                    Level.ERROR,
                    "shutdown hook skipped: shutdown timeout "
                    f"{format_duration(self._group.shutdown_timeout)} spent",
                )
                continue
            await task.run_hook(results[name], remaining)

    def _emit(self, task: str, name: str, level: Level, message: str, **fields: object) -> None:
        self._sink.emit(Event(name, task, level, message, tuple(fields.items())))
