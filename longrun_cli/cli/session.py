"""Run engine work inside an event loop with longrun's signals and telemetry in place."""

from __future__ import annotations

import _signal
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from longrun_cli.engine.events import Event, Level
from longrun_cli.engine.process import Supervisor
from longrun_cli.engine.taskio import StopControl
from longrun_cli.policy.signals import (
    KEEP_IGNORED,
    fatal_signals,
    forwarded_signals,
    signal_name,
    stop_signals,
)
from longrun_cli.telemetry import tracer_from_environment

if TYPE_CHECKING:
    from longrun_cli.engine.events import EventSink
    from longrun_cli.telemetry import Tracer

R = TypeVar("R")


class Session(NamedTuple):
    """What engine work gets from the session: processes, stop requests, telemetry."""

    supervisor: Supervisor
    stop: StopControl
    sink: EventSink
    tracer: Tracer
    request_stop: Callable[[int], None]  # as if this signal had come (longrun ctl shutdown)


def run_session(
    work: Callable[[Session], Coroutine[Any, Any, R]],
    sink: EventSink,
    *,
    forward_winch: bool = True,
    ready_event: str = "start",
    grace: float = 10.0,
    stop_signal: int = signal.SIGTERM,
    descriptors: int = 0,
) -> tuple[R, int | None]:
    """Run ``work`` with TERM/INT/HUP/QUIT stopping gracefully and USR1/USR2/WINCH forwarded.

    ``ready_event`` is the engine event after which systemd hears READY=1. Spans
    are flushed, within a bounded time, however the work ends. ``stop_signal``
    and ``grace`` stop the processes that escaped their group; ``descriptors`` is
    how many the work may hold at once (a large group raises the soft limit).
    """
    tracer, warnings = tracer_from_environment(os.environ)
    for warning in warnings:
        sink.emit(Event("tracing", "longrun", Level.WARNING, warning))
    limits = _Limits(forward_winch, ready_event, grace, stop_signal, descriptors)
    try:
        return asyncio.run(_session(work, sink, tracer, limits))
    finally:
        output = sys.modules.get("longrun_cli.engine.destination")
        if output is not None:  # a group's lines still queued for a slow reader
            for lost in output.drain_destinations(grace):
                # Not silent, though the statuses stay the commands' own.
                sink.emit(Event("output-lost", "longrun", Level.WARNING, lost))
        flushed = tracer.flush()
        if flushed is not None:
            sink.emit(Event("tracing", "longrun", Level.WARNING, flushed))


class _Limits(NamedTuple):
    forward_winch: bool
    ready_event: str
    grace: float
    stop_signal: int
    descriptors: int


async def _session(
    work: Callable[[Session], Coroutine[Any, Any, R]],
    sink: EventSink,
    tracer: Tracer,
    limits: _Limits,
) -> tuple[R, int | None]:
    # A caller may start longrun with signals blocked (coreutils' tests do): longrun
    # needs SIGCHLD and its stop signals, and the commands get the mask back.
    inherited_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    router = SignalRouter()
    supervisor = Supervisor(child_sigmask=frozenset(inherited_mask))
    supervisor.install(router.route)
    supervisor.on_tty_stop = lambda pid, signum: sink.emit(
        Event(
            "tty-stopped",
            "longrun",
            Level.WARNING,
            f"command {pid} is stopped by {signal_name(signum)}: it wants the terminal;"
            " run it with --foreground",
        )
    )
    if limits.descriptors:
        supervisor.reserve_descriptors(limits.descriptors)
    stop = StopControl()
    supervisor.kill_now = stop.kill_now
    notifier = None
    keep_alive = None
    if "NOTIFY_SOCKET" in os.environ:
        from longrun_cli.telemetry.notify import Notifier, NotifyingSink

        notifier = Notifier.from_environment(os.environ)
        if notifier is not None:
            sink = NotifyingSink(sink, notifier, ready_event=limits.ready_event)
            keep_alive = asyncio.ensure_future(notifier.keep_alive())

    def on_stop(signum: int) -> None:
        if stop.request(signum):
            message = f"second {signal_name(signum)}: killing the commands now"
            sink.emit(Event("kill-now", "longrun", Level.WARNING, message))
        else:
            message = f"received {signal_name(signum)}: stopping gracefully"
            sink.emit(Event("stop-requested", "longrun", Level.INFO, message))

    for signum in (*stop_signals(), *fatal_signals()):
        if signum not in KEEP_IGNORED or _signal.getsignal(signum) != signal.SIG_IGN:
            router.route(signum, on_stop)
    for signum in forwarded_signals():
        # Under --foreground the command shares longrun's group: the terminal
        # already sends it WINCH, and a forwarded copy would make it redraw twice.
        if signum != signal.SIGWINCH or limits.forward_winch:
            router.route(signum, supervisor.forward)
    if inherited_mask:
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
    try:
        result = await work(Session(supervisor, stop, sink, tracer, on_stop))
        grace = 0.0 if stop.kill_now.done() else limits.grace
        escaped = await supervisor.stop_orphans(limits.stop_signal, grace)
        if escaped:
            message = f"stopped {escaped} process(es) that had left their process group"
            sink.emit(Event("orphans", "longrun", Level.WARNING, message))
    finally:
        router.close()
        supervisor.close()
        if notifier is not None:
            notifier.stopping()
            notifier.close()
        if keep_alive is not None:
            keep_alive.cancel()
    return result, stop.signal


class SignalRouter:
    """Every signal handler of longrun: delivers signals to callbacks on the event loop.

    Handlers are set through ``_signal``, the C module under ``signal``, whose
    Python wrappers turn every number into an enum member (~50,000 instructions
    a call: a fifth of a millisecond of start-up for the 15 signals routed).

    asyncio's add_signal_handler checks each call against ``signal.valid_signals()``,
    which builds a set of ~64 enum members every time (and again when the loop
    closes): ~1.6 M instructions of start-up for SIGCHLD alone. One Python-level
    handler that hops onto the loop does the same job. The router's own wakeup
    socket wakes the loop even when another thread took the signal; a burst of
    exits (hundreds of children stopping at once) can fill it, and a dropped
    wakeup byte is harmless (each wake-up reaps every exited child), so Python is
    told not to print a traceback for it.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._callbacks: dict[int, Callable[[int], object]] = {}
        self._previous: dict[int, Any] = {}
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._loop.add_reader(self._wake_read.fileno(), self._drain)
        self._previous_wakeup = signal.set_wakeup_fd(
            self._wake_write.fileno(), warn_on_full_buffer=False
        )

    def route(self, signum: int, callback: Callable[[int], object]) -> None:
        self._callbacks[signum] = callback
        self._previous[signum] = _signal.signal(signum, self._deliver)
        # Restart interrupted system calls, as asyncio's own handlers do: SIGCHLD
        # comes with every attempt, and not every C library retries on EINTR.
        _signal.siginterrupt(signum, False)

    def close(self) -> None:
        for signum, previous in self._previous.items():
            _signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_wakeup)
        self._loop.remove_reader(self._wake_read.fileno())
        self._wake_read.close()
        self._wake_write.close()

    def _deliver(self, signum: int, _frame: object) -> None:
        self._loop.call_soon_threadsafe(self._callbacks[signum], signum)

    def _drain(self) -> None:
        # The bytes only wake the loop; the handlers above do the work.
        with contextlib.suppress(OSError):
            while self._wake_read.recv(4096):
                pass
