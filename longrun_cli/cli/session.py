"""Run engine work inside an event loop with longrun's signal handling installed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from longrun_cli.engine.events import Event, EventSink, Level
from longrun_cli.engine.process import SignalRouter, Supervisor
from longrun_cli.engine.task import StopControl
from longrun_cli.policy.signals import forwarded_signals, signal_name, stop_signals

R = TypeVar("R")


def run_session(
    work: Callable[[Supervisor, StopControl], Coroutine[Any, Any, R]],
    sink: EventSink,
    *,
    forward_winch: bool = True,
) -> tuple[R, int | None]:
    """Run ``work`` with TERM/INT/HUP/QUIT stopping gracefully and USR1/USR2/WINCH forwarded."""
    return asyncio.run(_session(work, sink, forward_winch))


async def _session(
    work: Callable[[Supervisor, StopControl], Coroutine[Any, Any, R]],
    sink: EventSink,
    forward_winch: bool,
) -> tuple[R, int | None]:
    supervisor = Supervisor()
    supervisor.install()
    stop = StopControl()

    def on_stop(signum: int) -> None:
        if stop.request(signum):
            sink.emit(
                Event(
                    "kill-now",
                    "longrun",
                    Level.WARNING,
                    f"second {signal_name(signum)}: killing the commands now",
                )
            )
        else:
            sink.emit(
                Event(
                    "stop-requested",
                    "longrun",
                    Level.INFO,
                    f"received {signal_name(signum)}: stopping gracefully",
                )
            )

    router = SignalRouter()
    for signum in stop_signals():
        router.route(signum, on_stop)
    for signum in forwarded_signals():
        if signum != signal.SIGWINCH or forward_winch:
            router.route(signum, supervisor.forward)
    try:
        result = await work(supervisor, stop)
    finally:
        router.close()
        supervisor.close()
    return result, stop.signal
