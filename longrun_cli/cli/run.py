"""``exec`` at run time: one Task under a session, then the exit status or the signal."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

from longrun_cli.cli.render import LogRenderer
from longrun_cli.cli.session import Session, run_session
from longrun_cli.engine.clock import MonotonicClock
from longrun_cli.engine.process import reraise
from longrun_cli.engine.task import Task
from longrun_cli.engine.taskio import TaskResult, TaskStatus
from longrun_cli.policy.duration import to_seconds
from longrun_cli.policy.status import EXIT_USAGE
from longrun_cli.policy.taskspec import TaskSpec

if TYPE_CHECKING:
    import asyncio

    from longrun_cli.cli.group import ControlSettings
    from longrun_cli.engine.runner import RunnerResult
    from longrun_cli.engine.taskio import TaskIO
    from longrun_cli.locks import Hold
    from longrun_cli.policy.group import GroupSpec
    from longrun_cli.telemetry import TaskTrace


def run_exec(spec: TaskSpec, renderer: LogRenderer) -> int:
    async def work(session: Session) -> TaskResult:
        trace = session.tracer.task(spec.name, spec.argv)
        if spec.lock is not None:
            return await _run_locked(spec, session, trace)
        task = Task(
            spec, session.supervisor, MonotonicClock(), session.sink, session.stop, trace=trace
        )
        result = await task.run()
        await task.run_hook(result)
        return result

    result, stop_signal = run_session(
        work,
        renderer,
        forward_winch=not spec.foreground,
        # With --ready, systemd hears READY=1 once the probe passed, not at the start.
        ready_event="ready" if spec.ready is not None else "start",
        grace=to_seconds(spec.kill_after),
        stop_signal=spec.stop_signal,
    )
    return _finish(result.exit_status, stop_signal)


async def _run_locked(spec: TaskSpec, session: Session, trace: TaskTrace) -> TaskResult:
    """--lock: only while the lock is held (imported only then)."""
    from longrun_cli.engine.events import Event, Level
    from longrun_cli.engine.locked import run_locked
    from longrun_cli.locks import LockUnusable, locker_for

    lock = spec.lock
    assert lock is not None
    clock = MonotonicClock()
    tasks: list[Task] = []

    def make(
        held: TaskSpec, io: TaskIO, halt: asyncio.Future[None], runs: int, again: bool
    ) -> Task:
        task = Task(
            held, session.supervisor, clock, session.sink, session.stop,
            io=io, trace=trace, halt=halt, runs_before=runs, again=again,
        )  # fmt: skip
        tasks.append(task)
        return task

    def log(message: str) -> None:
        session.sink.emit(Event("lock", spec.name, Level.WARNING, message))

    # The command must be stopped before the lease can run out: its grace is capped.
    grace = to_seconds(spec.kill_after)
    if lock.kind == "etcd":
        grace = max(0.1, min(grace, to_seconds(lock.ttl) / 2 - 0.5))
        spec = spec._replace(kill_after=round(grace * 1e9))
    try:
        result = await run_locked(
            spec, locker_for(lock, log, grace + 0.5), make, session.sink, session.stop
        )
    except LockUnusable as exc:
        session.sink.emit(Event("usage", "longrun", Level.ERROR, str(exc)))
        return TaskResult(TaskStatus.FAILED, EXIT_USAGE, 0)
    if tasks:
        await tasks[-1].run_hook(result)
    return result


def _finish(status: int, stop_signal: int | None) -> int:
    """The exit status, or death by the stop signal longrun received."""
    if stop_signal is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        reraise(stop_signal)
        # Still here: PID 1 ignores its own default-action signals.
        return 128 + stop_signal
    return status


# Tasks above which a group collects its garbage at a slower pace (see run_group).
_LARGE_GROUP = 100


def run_group(
    group: GroupSpec,
    renderer: LogRenderer,
    *,
    prefix: bool,
    control: ControlSettings | None,
    timestamps: bool = False,
) -> int:
    from longrun_cli.cli.render import output_prefixes
    from longrun_cli.engine.runner import Runner

    prefixes = output_prefixes([task.name for task in group.tasks], enabled=prefix)
    if group.lock is not None and group.lock.kind == "etcd":
        from dataclasses import replace

        from longrun_cli.cli.group_lock import etcd_grace

        cap = round(etcd_grace(group.lock) * 1e9)
        capped = [
            replace(task, spec=task.spec._replace(kill_after=min(task.spec.kill_after, cap)))
            for task in group.tasks
        ]
        group = replace(group, tasks=tuple(capped))
    listening = None
    if control is not None:
        from longrun_cli.control.paths import ControlError, bind

        try:
            # Before anything runs: a group of the same name is an error, not a second copy.
            listening = bind(control.path, control.name, own_directory=control.own_directory)
        except ControlError as exc:
            renderer.error(str(exc))
            return EXIT_USAGE

    async def work(session: Session) -> RunnerResult:
        runner = Runner(
            group,
            session.supervisor,
            MonotonicClock(),
            session.sink,
            session.stop,
            prefixes=prefixes,
            trace=session.tracer.group([task.name for task in group.tasks]),
            log_lines=group.log_lines,
            timestamps=timestamps,
        )
        server = None
        if listening is not None and control is not None:
            from longrun_cli.control.server import ControlServer

            server = ControlServer(
                runner,
                listening,
                control.name,
                session.sink,
                lambda: session.request_stop(signal.SIGTERM),
            )
            # Before the lock is had: ctl status of a standby says it stands by.
            await server.start()
        try:
            if group.lock is None:
                return await runner.run()
            from longrun_cli.cli.group_lock import run_holding

            async def serve(hold: Hold) -> RunnerResult:
                runner.hold_lock(hold.token, hold.valid, hold.fds)
                return await runner.run()

            return await run_holding(group.lock, session, serve, runner.show_lock)
        finally:
            if server is not None:
                await server.close()

    large = len(group.tasks) > _LARGE_GROUP
    if large:
        import gc

        # Each task's objects live as long as the group: at the collector's usual pace
        # (every 700 new objects) starting 2,000 tasks scanned them over and over, 0.17
        # s of the run (gen 2 twice); at this pace, 0.06 s, and the same peak memory.
        gc.set_threshold(50_000, 10, 10)
    grace = max(to_seconds(task.spec.kill_after) for task in group.tasks)
    # Two pipes per task, plus probes and hooks: a large group needs more than the
    # usual soft limit of 1024.
    descriptors = 3 * len(group.tasks) + 64
    try:
        result, stop_signal = run_session(
            work, renderer, ready_event="all-ready", grace=grace, descriptors=descriptors
        )
    finally:
        if listening is not None and control is not None:
            from longrun_cli.control.paths import remove

            remove(listening)  # however the session ended
            listening.sock.close()
    if large:
        # The group's objects die with the process: the collection at exit would walk
        # them all once more (60 ms of a 2,000-task group's end, 8 ms frozen).
        gc.freeze()
    return _finish(result.exit_status, stop_signal)
