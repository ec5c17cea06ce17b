"""What a group knows about each of its tasks while it runs, and how it is shown.

The runner keeps one ``TaskState`` per task: what dependents wait on (started,
ready, done) and what ``longrun ctl status`` shows (a ``TaskView``). Operations
on a running task (stop, start, restart) are the runner's; this module only
names states and keeps their bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from longrun_cli.engine.logring import LogRing
from longrun_cli.engine.taskio import TaskResult, TaskStatus, short_exit
from longrun_cli.policy.errors import quote
from longrun_cli.policy.group import Condition

if TYPE_CHECKING:
    from longrun_cli.engine.task import Task
    from longrun_cli.policy.group import GroupTask

# Every state a task can be shown in, in the order of a task's life.
STATES = (
    "waiting",  # for its depends_on conditions
    "starting",  # its initial delay, or running but not yet ready (a readiness probe)
    "running",
    "ready",  # running, and its readiness condition has held
    "backoff",  # waiting to retry
    "sleeping",  # between interval runs
    "succeeded",
    "failed",
    "exhausted",
    "stopped",
)
ENDED = ("succeeded", "failed", "exhausted", "stopped")
_ENDED_AS = {
    TaskStatus.SUCCEEDED: "succeeded",
    TaskStatus.FAILED: "failed",
    TaskStatus.DEADLINE: "failed",
    TaskStatus.EXHAUSTED: "exhausted",
    TaskStatus.STOPPED: "stopped",
}


class Progress(NamedTuple):
    """Where a task is, for ``longrun ctl status``: reported (TaskIO.on_progress) at every
    change of phase.

    ``phase`` is ``starting`` (the initial delay), ``running``, ``backoff`` or
    ``sleeping`` (between interval runs); ``next_at`` is the clock time of the
    next run or retry.
    """

    phase: str
    pid: int | None
    run: int
    attempt: int
    next_at: float | None
    last_exit: str | None


class Refused(Exception):
    """An operation that cannot be done now (unknown task, wrong state): one line why."""


class TaskView(NamedTuple):
    """One row of ``longrun ctl status``; times are the runner clock's."""

    name: str
    state: str
    pid: int | None
    run: int
    attempt: int
    last_exit: str | None
    since: float
    next_at: float | None
    ready: bool | None  # None: the task has no readiness condition


class TaskState:
    """One task of a running group: what dependents observe and what operators see."""

    __slots__ = (
        "done", "generation", "group_task", "halt", "log", "on_ready", "parked", "progress",
        "ready", "ready_failed", "restart_pending", "runs", "shown", "since", "spawns",
        "started", "task", "waiting", "wake",
    )  # fmt: skip

    def __init__(
        self, group_task: GroupTask, on_ready: Callable[[], None], log: LogRing, now: float
    ) -> None:
        self.group_task = group_task
        self.on_ready = on_ready
        self.started = asyncio.Event()
        self.ready = asyncio.Event()
        self.ready_failed = asyncio.Event()
        self.done: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self.task: Task | None = None
        self.log = log
        # Operations: ``halt`` stops the current Task alone; a parked task (stopped
        # on request) waits for ``wake``.
        self.halt: asyncio.Future[None] | None = None
        self.wake: asyncio.Future[None] | None = None
        self.restart_pending = False
        self.parked = False
        self.waiting = False
        self.progress: Progress | None = None
        self.runs = 0
        self.spawns = 0
        self.generation = 0  # Tasks started so far (a restart starts a new one)
        self.shown = "waiting"
        self.since = now

    @property
    def name(self) -> str:
        return self.group_task.name

    def mark_started(self) -> None:
        self.started.set()
        if self.group_task.ready is None and not self.ready.is_set():
            self.ready.set()
            self.on_ready()

    @property
    def halted_on_request(self) -> bool:
        return self.halt is not None and self.halt.done()

    def state_name(self) -> str:
        if self.done.done():
            return _ENDED_AS[self.done.result().status]
        if self.parked:
            return "stopped"
        progress = self.progress
        if self.waiting or self.task is None or progress is None:
            return "starting" if self.task is not None else "waiting"
        if progress.phase != "running":
            return progress.phase
        if self.group_task.ready is None:
            return "running"
        return "ready" if self.ready.is_set() else "starting"

    def refresh(self, now: float) -> None:
        """Note the time of a change of state."""
        name = self.state_name()
        if name != self.shown:
            self.shown, self.since = name, now

    def view(self) -> TaskView:
        progress = self.progress
        running = progress is not None and progress.phase == "running" and self.shown not in ENDED
        return TaskView(
            name=self.name,
            state=self.shown,
            pid=progress.pid if running and progress is not None else None,
            run=progress.run if progress is not None else 0,
            attempt=progress.attempt if progress is not None else 0,
            last_exit=self._last_exit(),
            since=self.since,
            next_at=progress.next_at
            if progress is not None and self.shown in ("starting", "backoff", "sleeping")
            else None,
            ready=None if self.group_task.ready is None else self.ready.is_set(),
        )

    def _last_exit(self) -> str | None:
        outcome = self.done.result().outcome if self.done.done() else None
        if outcome is not None:
            return short_exit(outcome)
        if self.progress is not None:
            return self.progress.last_exit
        if self.done.done() and self.done.result().status is not TaskStatus.STOPPED:
            return str(self.done.result().exit_status)  # it never ran: a dependency failed
        return None


def select(states: dict[str, TaskState], names: Sequence[str]) -> list[TaskState]:
    """The tasks ``names`` mean: a task's name, or NAME for every replica NAME.K of it."""
    if not names:
        raise Refused("name at least one task")
    chosen: list[TaskState] = []
    for name in names:
        found = [
            state
            for task, state in states.items()
            if task == name or (task.startswith(name + ".") and task[len(name) + 1 :].isdigit())
        ]
        if not found:
            raise Refused(f"no task named {quote(name)}")
        chosen += [state for state in found if state not in chosen]
    return chosen


def refusal(state: TaskState, verb: str) -> str | None:
    """Why ``verb`` (stop, start, restart) cannot be done to ``state`` now; None when it can."""
    name, shown = quote(state.name), state.shown
    if state.parked:
        return f"task {name} is already stopped" if verb == "stop" else None
    if shown in ENDED:
        done = {"stop": "stopped", "start": "started", "restart": "restarted"}[verb]
        return f"task {name} has ended ({shown}); it cannot be {done} now"
    if state.waiting or shown == "waiting":
        return f"task {name} has not started: it is waiting for its dependencies"
    if verb == "start":
        return f"task {name} is {shown}; use restart"
    return None


def holds(state: TaskState, condition: Condition) -> bool:
    """``depends_on``'s condition on ``state`` is met now."""
    if condition is Condition.STARTED:
        return state.started.is_set()
    if condition is Condition.READY:
        return state.ready.is_set()
    return state.done.done() and state.done.result().status is TaskStatus.SUCCEEDED
