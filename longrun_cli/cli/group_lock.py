"""``longrun group --lock``: the whole group runs only while the lock is held.

A standby waits (``--lock-wait``, default forever) without starting anything; the
holder runs the group; a lost hold stops every task at once, as a failing task
would, and the group ends with 75 so that its supervisor (systemd, Kubernetes)
starts it again, as a standby: an active/passive pair.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from longrun_cli.engine.events import Event, Level
from longrun_cli.engine.locked import EXIT_LOCKED, acquire
from longrun_cli.engine.runner import RunnerResult
from longrun_cli.policy.duration import format_duration, to_seconds
from longrun_cli.policy.status import EXIT_USAGE

if TYPE_CHECKING:
    from longrun_cli.cli.session import Session
    from longrun_cli.locks import Hold
    from longrun_cli.policy.lockurl import LockSpec


async def run_holding(
    spec: LockSpec,
    session: Session,
    serve: Callable[[Hold], Awaitable[RunnerResult]],
    show: Callable[[str], None],
) -> RunnerResult:
    """``show``: the group's lock state as longrun ctl status reports it."""
    from longrun_cli.locks import LockUnusable, locker_for

    def emit(name: str, level: Level, message: str) -> None:
        session.sink.emit(Event(name, "longrun", level, message))
        if name in ("lock-standby", "lock-acquired", "lock-lost", "lock-busy"):
            show(message)

    grace = etcd_grace(spec) + 0.5 if spec.kind == "etcd" else 0.0
    try:
        locker = locker_for(spec, lambda text: emit("lock", Level.WARNING, text), grace)
        wait = None if spec.wait is None else to_seconds(spec.wait)
        hold = await acquire(spec, locker, wait, emit, session.stop)
        if hold is None and session.stop.is_requested:
            signum = session.stop.signal
            return RunnerResult(0 if signum is None else 128 + signum, None, {})
    except LockUnusable as exc:
        emit("usage", Level.ERROR, str(exc))
        return RunnerResult(EXIT_USAGE, str(exc), {})
    if hold is None:
        message = f"lock {spec.url} still held elsewhere after {format_duration(spec.wait or 0)}"
        emit("lock-busy", Level.ERROR, message)
        await locker.close()
        return RunnerResult(EXIT_LOCKED, message, {})
    emit("lock-acquired", Level.INFO, f"holder: lock {spec.url} taken (token {hold.token})")
    hold.lost.add_done_callback(lambda _f: session.stop.cancel())
    try:
        result = await serve(hold)
    finally:
        lost = hold.lost.done()
        await hold.release()
        await locker.close()
    if lost and hold.lost.result() != "released":
        reason = hold.lost.result()
        emit("lock-lost", Level.ERROR, f"lock lost: {reason}; every task was stopped")
        return RunnerResult(EXIT_LOCKED, f"lock lost: {reason}", result.results)
    return result


def etcd_grace(spec: LockSpec) -> float:
    """How long stopping may take under an etcd lock: its tasks' --kill-after is capped
    to this, so that all is stopped before the lease can run out."""
    return max(0.1, to_seconds(spec.ttl) / 2 - 0.5)
