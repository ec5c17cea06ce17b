"""A task that runs only while its ``--lock`` is held (SPEC §11).

One-shot: wait for the lock (``--lock-wait``), run, release; the wait running out
is exit 75. Interval and schedule: a standby waits for the lock for as long as it
takes, the holder keeps it between runs. When a hold is lost the running attempt
is stopped at once (the task's ``halt``) and nothing starts until the lock is taken
again: a one-shot task then ends with 75, a periodic one goes back to standby.
The lock is anything with the ``Locker`` interface; this module knows no etcd.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from longrun_cli.engine.events import Event, Level
from longrun_cli.engine.taskio import TaskIO, TaskResult, TaskStatus
from longrun_cli.policy.duration import format_duration, to_seconds

if TYPE_CHECKING:
    from longrun_cli.engine.events import EventSink
    from longrun_cli.engine.task import Task
    from longrun_cli.engine.taskio import StopControl
    from longrun_cli.locks import Hold, Locker
    from longrun_cli.policy.lockurl import LockSpec
    from longrun_cli.policy.taskspec import TaskSpec

EXIT_LOCKED = 75  # EX_TEMPFAIL: the lock was held elsewhere for all of --lock-wait, or lost

# (spec with the token in its env, io, halt, runs so far, started again) -> the Task
MakeTask = Callable[["TaskSpec", TaskIO, "asyncio.Future[None]", int, bool], "Task"]


async def run_locked(
    spec: TaskSpec, locker: Locker, make_task: MakeTask, sink: EventSink, stop: StopControl
) -> TaskResult:
    assert spec.lock is not None
    one_shot = spec.interval is None and spec.schedule is None
    wait = to_seconds(spec.lock.wait) if one_shot and spec.lock.wait is not None else None
    runs, again = 0, False
    try:
        while True:
            hold = await acquire(
                spec.lock,
                locker,
                wait,
                lambda name, level, text: _emit(sink, spec, name, level, text),
                stop,
            )
            if stop.is_requested:
                return _stopped(stop, runs)
            if hold is None:
                waited = format_duration(spec.lock.wait or 0)
                _emit(sink, spec, "lock-busy", Level.ERROR,
                      f"lock {spec.lock.url} still held elsewhere after {waited}")  # fmt: skip
                return TaskResult(TaskStatus.FAILED, EXIT_LOCKED, runs)
            token = str(hold.token)
            _emit(sink, spec, "lock-acquired", Level.INFO,
                  f"holder: lock {spec.lock.url} taken (token {token})", token=token)  # fmt: skip
            halt = _halt_when_lost(hold)
            held = spec._replace(env={**spec.env, "LONGRUN_LOCK_TOKEN": token})
            io = TaskIO(gate=hold.valid, halt_reason="without the lock", pass_fds=hold.fds)
            task = make_task(held, io, halt, runs, again)
            task.trace_event("lock.acquired", **{"longrun.lock.token": hold.token})
            result = await task.run()
            runs = task.runs
            if not hold.lost.done():
                await hold.release()
                return result
            reason = hold.lost.result()
            _emit(
                sink,
                spec,
                "lock-lost",
                Level.ERROR,
                f"lock lost: {reason}; nothing runs without it",
            )
            if one_shot or stop.is_requested:
                return (
                    result
                    if stop.is_requested
                    else TaskResult(TaskStatus.FAILED, EXIT_LOCKED, runs, result.outcome)
                )
            again = True
    finally:
        await locker.close()


async def acquire(
    lock: LockSpec,
    locker: Locker,
    wait: float | None,
    say: Callable[[str, Level, str], None],
    stop: StopControl,
) -> Hold | None:
    """The lock (once free, or at once), or None: the wait ran out, or a stop came first.

    Standing by is said once (``say(event, level, message)``); a one-shot run with
    --lock-wait says it at debug level, as it says in one line if the wait runs out.
    Shared by a task (exec) and a whole group.
    """
    hold = await locker.acquire(0.0)
    if hold is not None:
        return hold
    level = Level.INFO if wait is None else Level.DEBUG
    say("lock-standby", level, f"standby: lock {lock.url} held elsewhere; waiting for it")
    attempt = asyncio.ensure_future(locker.acquire(wait))
    racers: list[asyncio.Future[Any]] = [attempt, stop.requested]
    await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
    if not attempt.done():
        attempt.cancel()
        return None
    return attempt.result()


def _halt_when_lost(hold: Hold) -> asyncio.Future[None]:
    """The task's halt: done the moment the hold is lost."""
    halt: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def lost(_future: asyncio.Future[str]) -> None:
        if not halt.done():
            halt.set_result(None)

    hold.lost.add_done_callback(lost)
    return halt


def _stopped(stop: StopControl, runs: int) -> TaskResult:
    signum = stop.signal
    return TaskResult(TaskStatus.STOPPED, 0 if signum is None else 128 + signum, runs)


def _emit(
    sink: EventSink, spec: TaskSpec, name: str, level: Level, message: str, **fields: object
) -> None:
    sink.emit(Event(name, spec.name, level, message, tuple(fields.items())))
