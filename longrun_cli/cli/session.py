"""Run engine work inside an event loop with longrun's signal handling installed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from longrun_cli.engine.events import Event, EventSink, Level
from longrun_cli.engine.process import Supervisor
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
    loop = asyncio.get_running_loop()
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

    def on_forward(signum: int) -> None:
        supervisor.forward(signum)

    installed: list[int] = []
    for signum in stop_signals():
        loop.add_signal_handler(signum, on_stop, signum)
        installed.append(signum)
    for signum in forwarded_signals():
        if signum == signal.SIGWINCH and not forward_winch:
            continue
        loop.add_signal_handler(signum, on_forward, signum)
        installed.append(signum)
    try:
        result = await work(supervisor, stop)
    finally:
        supervisor.close()
        for signum in installed:
            loop.remove_signal_handler(signum)
    return result, stop.signal
