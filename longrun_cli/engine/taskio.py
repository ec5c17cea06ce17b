"""What a task is given and what it gives back: stop requests, its IO, its result.

Apart from the task loop, so that the loop stays readable; both are on exec's
start-up path (kept small: no Protocol class is built at run time).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from longrun_cli.policy.outcome import Outcome
from longrun_cli.policy.signals import signal_name

if TYPE_CHECKING:
    from longrun_cli.engine.launch import ExitStatus, LaunchSpec
    from longrun_cli.engine.logring import LogRing
    from longrun_cli.telemetry import AttemptTrace


if TYPE_CHECKING:  # types only: a Protocol class costs ~0.3 M instructions to build

    class ChildProcess(Protocol):
        pid: int

        @property
        def exited(self) -> asyncio.Future[int]:
            """Done once the leader has exited (its streams may still be draining)."""
            ...

        async def wait(self) -> ExitStatus: ...

        async def stop(self, signum: int, grace: float, kill_now: asyncio.Future[None]) -> bool: ...

    class Spawner(Protocol):
        def spawn(self, spec: LaunchSpec) -> ChildProcess: ...


class StopControl:
    """A stop requested from outside (a signal), and the request to stop waiting for it.

    Futures rather than Events: asyncio.wait takes them directly, so waiting on a
    stop costs no extra task per attempt.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.requested: asyncio.Future[None] = loop.create_future()
        self.kill_now: asyncio.Future[None] = loop.create_future()
        self.signal: int | None = None
        self._kill_waiters: weakref.WeakSet[asyncio.Future[None]] = weakref.WeakSet()
        self._stop_waiters: weakref.WeakSet[asyncio.Future[None]] = weakref.WeakSet()

    def kill_waiter(self) -> asyncio.Future[None]:
        """A future of the caller's own, set with ``kill_now``.

        Every task of a group stopping at once waits for the second signal. On the
        shared future, each wait that ends removes its callback from a list as long
        as the group: 2,000 tasks, 40 ms of list scans. On its own future, from a
        list of one.
        """
        return _waiter(self.kill_now, self._kill_waiters)

    def stop_waiter(self) -> asyncio.Future[None]:
        """A future of the caller's own, set with ``requested`` (see ``kill_waiter``).

        Every attempt and every pause between attempts waits for a stop; each that
        ends without one (the command exited, the pause is over) would otherwise
        scan the shared future's list of all the others' callbacks.
        """
        return _waiter(self.requested, self._stop_waiters)

    @property
    def is_requested(self) -> bool:
        return self.requested.done()

    def request(self, signum: int) -> bool:
        """Record a stop signal; a second one returns True: skip the grace period."""
        if self.signal is not None:
            _settle_all(self.kill_now, self._kill_waiters)
            return True
        self.signal = signum
        self.cancel()
        return False

    def cancel(self) -> None:
        """Stop every task without an outside signal (a group task failed)."""
        _settle_all(self.requested, self._stop_waiters)


async def first_done(futures: list[asyncio.Future[Any]], timeout: float | None = None) -> None:
    """Return once one of ``futures`` is done, or after ``timeout`` seconds.

    ``asyncio.wait(..., return_when=FIRST_COMPLETED)`` for the one use longrun has,
    without its sets, its ``ensure_future`` of each, and the done and pending sets it
    builds and nobody reads: a group of 2,000 tasks stopping waits 6,000 times.
    """
    for future in futures:
        if future.done():
            return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    for future in futures:
        future.add_done_callback(wake)
    timer = loop.call_later(timeout, wake, None) if timeout is not None else None
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        for future in futures:
            future.remove_done_callback(wake)


def _waiter(
    shared: asyncio.Future[None], waiters: weakref.WeakSet[asyncio.Future[None]]
) -> asyncio.Future[None]:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if shared.done():
        waiter.set_result(None)
    else:
        waiters.add(waiter)
    return waiter


def _settle_all(
    shared: asyncio.Future[None], waiters: weakref.WeakSet[asyncio.Future[None]]
) -> None:
    if not shared.done():
        shared.set_result(None)
        for waiter in list(waiters):
            if not waiter.done():
                waiter.set_result(None)


class TaskStatus(Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXHAUSTED = "exhausted"
    DEADLINE = "deadline"
    STOPPED = "stopped"


# The statuses that end a task as a failure (a group's first one stops the others).
FAILURES = (TaskStatus.FAILED, TaskStatus.EXHAUSTED, TaskStatus.DEADLINE)


class TaskResult(NamedTuple):
    status: TaskStatus
    exit_status: int
    runs: int
    outcome: Outcome | None = None


class TaskIO:
    """How a task's processes meet the outside: defaults are those of ``longrun exec``."""

    # A plain class, not a NamedTuple: a NamedTuple's __new__ is compiled at run time,
    # on every start (~0.1 M instructions a field); this one comes compiled from the .pyc.
    __slots__ = (
        "gate",
        "halt_reason",
        "log",
        "on_progress",
        "on_ready_match",
        "on_started",
        "output_prefix",
        "output_stamp",
        "pass_fds",
        "stderr_ready_patterns",
        "stdin_null",
        "stdout_patterns",
    )

    def __init__(
        self,
        *,
        output_prefix: bytes | None = None,
        stdin_null: bool = False,
        stdout_patterns: tuple[str, ...] = (),
        stderr_ready_patterns: tuple[str, ...] = (),
        on_ready_match: Callable[[str], None] | None = None,
        on_started: Callable[[], None] | None = None,
        on_progress: Callable[[str, int | None, int, int, float | None, str | None], None]
        | None = None,
        log: LogRing | None = None,
        output_stamp: Callable[[], bytes] | None = None,
        gate: Callable[[], bool] | None = None,
        halt_reason: str = "on request (longrun ctl)",
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        # --lock file: descriptors the command inherits (the lock lives while it does)
        self.pass_fds = pass_fds
        # --lock: asked before every attempt; False stops the task as a halt
        self.gate = gate
        # why a halt stops this task, for its log line
        self.halt_reason = halt_reason
        # group: copy both streams line by line
        self.output_prefix = output_prefix
        self.stdin_null = stdin_null
        # readiness regexes on stdout
        self.stdout_patterns = stdout_patterns
        # and on stderr
        self.stderr_ready_patterns = stderr_ready_patterns
        # one of them appeared
        self.on_ready_match = on_ready_match
        # after every successful spawn
        self.on_started = on_started
        # Every change of phase: (phase, pid, run, attempt, next_at, last_exit), see Progress.
        self.on_progress = on_progress
        # the last lines of output, for longrun ctl logs
        self.log = log
        # --timestamps
        self.output_stamp = output_stamp


EXEC_IO = TaskIO()


def short_exit(outcome: Outcome) -> str:
    """The last exit as ``ctl status`` shows it: ``0``, ``75``, ``SIGKILL`` or ``timeout``."""
    if outcome.timed_out:
        return "timeout"
    if outcome.unhealthy is not None:
        return "unhealthy"
    if outcome.signal is not None:
        return "SIG" + signal_name(outcome.signal)
    return str(outcome.exit_code)


def random_sample() -> float:
    # Imported on first use: most tasks never draw (jitter 0) and start-up matters.
    import random

    return random.random()


def outcome_of(status: ExitStatus) -> Outcome:
    return Outcome(exit_code=status.code, signal=status.signal, stderr_hits=status.stderr_hits)


def outcome_fields(outcome: Outcome) -> dict[str, object]:
    if outcome.timed_out:
        return {"timeout": True}
    if outcome.unhealthy is not None:
        return {"unhealthy": outcome.unhealthy}
    if outcome.signal is not None:
        return {"signal": signal_name(outcome.signal)}
    return {"exit_code": outcome.exit_code}


def span_decision(outcome: Outcome, ended: TaskStatus | None, *, retried: bool) -> str:
    """The decision an attempt's span records: success, retry, exhausted, timeout or permanent.

    ``ended``: the status the task ended with after this attempt (None: it goes on).
    """
    if retried:
        return "retry"
    if ended is None:
        return "success"
    if ended is TaskStatus.EXHAUSTED:
        return "exhausted"
    if ended is TaskStatus.DEADLINE or outcome.timed_out:
        return "timeout"
    return "permanent"


def finish_attempt(
    trace: AttemptTrace,
    outcome: Outcome | None,
    decision: str,
    *,
    rule: str | None = None,
    delay: float | None = None,
    error: str | None = None,
    pid: int | None = None,
) -> None:
    """End an attempt's span; ``outcome`` None: the attempt was abandoned (stopped, deadline)."""
    if outcome is not None and decision != "success":
        error = outcome.describe()
    trace.finish(
        decision=decision,
        exit_code=None if outcome is None else outcome.exit_code,
        signal=None if outcome is None else outcome.signal,
        rule=rule,
        delay_seconds=delay,
        error=error,
        pid=pid,
    )
