"""systemd's notify protocol (sd_notify): READY=1, STATUS=, STOPPING=1, WATCHDOG=1.

Active only when NOTIFY_SOCKET is set. It follows the engine's events, so the
engine knows nothing about systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from longrun_cli.engine.events import Event

if TYPE_CHECKING:
    from longrun_cli.engine.events import EventSink


class Notifier:
    """Sends datagrams to NOTIFY_SOCKET (a path, or ``@name`` for an abstract socket)."""

    def __init__(self, address: str, watchdog_seconds: float | None) -> None:
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._socket.setblocking(False)
        self.watchdog_seconds = watchdog_seconds
        self._ready_sent = False
        self._stopping_sent = False
        # Tasks whose last health check failed: WATCHDOG=1 waits until none is left.
        self.sick: set[str] = set()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Notifier | None:
        address = environ.get("NOTIFY_SOCKET", "")
        if not address or not address.startswith(("/", "@")):
            return None
        watchdog = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        # More than 18 digits is not a watchdog interval (and would overflow a float).
        valid = usec.isdigit() and len(usec) <= 18 and int(usec) > 0
        if valid and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1e6
        return cls(address, watchdog)

    def send(self, message: str) -> None:
        # systemd gone or its socket full: never the task's problem.
        with contextlib.suppress(OSError):
            # A task name from non-UTF-8 argv carries surrogates: systemd wants UTF-8.
            self._socket.sendto(message.encode(errors="replace"), self._address)

    def ready(self) -> None:
        if not self._ready_sent:
            self._ready_sent = True
            self.send("READY=1\nSTATUS=running")

    def stopping(self, status: str | None = None) -> None:
        """STOPPING=1 once, however many ways longrun is told to stop."""
        if not self._stopping_sent:
            self._stopping_sent = True
            self.send("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))
        elif status:
            self.send(f"STATUS={status}")

    async def keep_alive(self) -> None:
        """WATCHDOG=1 at half the watchdog interval, for as long as the loop runs, except
        while a task is sick: systemd's watchdog then fires for a process alive but sick."""
        if self.watchdog_seconds is None:
            return
        while True:
            if not self.sick:
                self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_seconds / 2)

    def close(self) -> None:
        self._socket.close()


class NotifyingSink:
    """Passes events on, and tells systemd about the ones that change longrun's state."""

    def __init__(self, inner: EventSink, notifier: Notifier, *, ready_event: str) -> None:
        self._inner = inner
        self._notifier = notifier
        self._ready_event = ready_event
        self._retrying: set[str] = set()  # tasks whose STATUS= still says "retry"

    def emit(self, event: Event) -> None:
        self._inner.emit(event)
        notifier = self._notifier
        if event.name == self._ready_event:
            notifier.ready()
        if event.name == "health-failed":
            notifier.sick.add(event.task)
            notifier.send(f"STATUS={event.task}: {event.message}")
        elif event.task in notifier.sick and event.name in _HEALED:
            # Healthy again, or longrun replaced (or ended) the sick attempt.
            notifier.sick.discard(event.task)
            if event.name == "healthy":
                notifier.send(f"STATUS={event.task}: running")
        if event.name == "retry":
            fields = dict(event.fields)
            self._retrying.add(event.task)
            notifier.send(
                f"STATUS={event.task}: retry {fields.get('retry', '')} in "
                f"{fields.get('delay', '')} ({fields.get('rule', '')})"
            )
        elif event.name == "start" and event.task in self._retrying:
            # The retry is running now: STATUS= must not go on saying it waits.
            self._retrying.discard(event.task)
            notifier.send(f"STATUS={event.task}: running")
        elif event.name in ("lock-acquired", "lock-standby", "lock-lost"):
            if event.name == "lock-standby":
                # A hot standby is up and doing its job: systemd must not time it out.
                notifier.ready()
            notifier.send(f"STATUS={event.task}: {event.message}")
        elif event.name == "circuit-open":
            notifier.send(f"STATUS={event.task}: {event.message}")
        elif event.name == "circuit-closed":
            notifier.send(f"STATUS={event.task}: running")
        elif event.name in ("stop-requested", "stopping-group"):
            notifier.stopping(f"{event.task}: {event.message}")
        elif event.name in ("permanent", "exhausted", "deadline", "not-ready"):
            notifier.send(f"STATUS={event.task}: {event.message}")


# Events after which a task's failed health check no longer holds WATCHDOG=1 back.
_HEALED = frozenset(
    {"healthy", "retry", "start", "permanent", "exhausted", "deadline", "stopped", "succeeded"}
)
