"""Where a group's output goes: one writer per descriptor of longrun (stdout, stderr).

A regular file is written in place; a pipe or a terminal gets a thread of its own,
fed by a bounded queue, so a slow reader of longrun's output throttles the tasks
(their reads pause, their pipes fill) and never the event loop. Lines of different
tasks never mix inside a line: a line being streamed holds the others back.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import errno
import os
import stat
import threading
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from longrun_cli.engine.streams import Pieces, block_loop_signals, write_pieces

HIGH_WATER = 4 * 1024 * 1024  # queued bytes per destination before the readers pause


class Destination:
    """One of longrun's descriptors, written in order by one thread of its own."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._loop = asyncio.get_running_loop()
        self._queue: deque[tuple[Pieces, int]] = deque()  # pieces and their size
        self._ready = threading.Condition(threading.Lock())
        self._queued = 0
        self._submitted = 0
        self._written = 0
        self._thread = False
        self.is_terminal = os.isatty(fd)
        # A regular file takes a write at once (the page cache): written in place, no
        # thread to wake per chunk. Pipes and terminals can stall: they get the thread.
        try:
            self._direct = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            self._direct = False
        self.broken = False  # EPIPE: nobody reads any more
        self.dropped = 0  # bytes a failed write lost (disk full, a closed descriptor)
        self.error = 0  # the errno of the first such failure
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._paused: list[Callable[[], None]] = []
        # A writer that left the destination mid-line (a line over LINE_CAP being
        # streamed): everyone else's pieces wait in _held until it ends the line.
        self._owner: object | None = None
        self._held: list[tuple[Pieces, int, object, bool]] = []
        self._held_bytes = 0

    @property
    def others_waiting(self) -> bool:
        return bool(self._held)

    @property
    def written_bytes(self) -> int:
        with self._ready:
            return self._written

    def put(self, data: bytes | Pieces, writer: object = None, *, mid_line: bool = False) -> bool:
        """Queue ``data`` from ``writer``; False when full and the caller should pause.

        ``data``: bytes, or pieces written together (the framer's, never joined).
        ``mid_line``: ``data`` leaves the destination in the middle of a line that
        ``writer`` will end later; nobody else's lines are written until then.
        """
        if isinstance(data, bytes):
            pieces: Pieces = [data]
            size = len(data)
        else:
            pieces = data
            size = sum(map(len, data))
        if self.broken or not size:
            return True
        if self._owner is not None and self._owner is not writer:
            self._held.append((pieces, size, writer, mid_line))
            self._held_bytes += size
            return self._queued + self._held_bytes < HIGH_WATER
        self._owner = writer if mid_line else None
        full = self._enqueue(pieces, size)
        if self._owner is None and self._held:
            full = self._release_held()
        return full

    def _release_held(self) -> bool:
        """Pass on the pieces held back, in each writer's order, until one leaves a line open."""
        full = True
        progress = True
        while progress and self._held:
            progress = False
            kept: list[tuple[Pieces, int, object, bool]] = []
            blocked: set[int] = set()  # writers with an earlier piece still held
            for pieces, size, writer, mid_line in self._held:
                if id(writer) in blocked or (self._owner is not None and self._owner is not writer):
                    kept.append((pieces, size, writer, mid_line))
                    blocked.add(id(writer))
                    continue
                self._held_bytes -= size
                full = self._enqueue(pieces, size)
                self._owner = writer if mid_line else None
                progress = True
            self._held = kept
        return full

    def _enqueue(self, pieces: Pieces, size: int) -> bool:
        self._submitted += size
        if self._direct or (not self._thread and not self._start()):
            self._write(pieces, size)  # no thread to be had (ulimit -u): write in place
            self._written += size
            return True
        with self._ready:
            self._queue.append((pieces, size))
            self._queued += size
            self._ready.notify()
            return self._queued + self._held_bytes < HIGH_WATER

    def when_drained(self, resume: Callable[[], None]) -> None:
        """Call ``resume`` on the loop once the queue has room again."""
        self._paused.append(resume)

    def written(self) -> asyncio.Future[None]:
        """Resolves once everything queued so far has been written (or dropped)."""
        future = self._loop.create_future()
        with self._ready:
            if self._written >= self._submitted or self.broken:
                future.set_result(None)
            else:
                self._waiters.append((self._submitted, future))
        return future

    def drain_blocking(self, patience: float) -> None:
        """At exit: wait while the writer makes progress, at most ``patience`` s per stall.

        A line still open (an escaped daemon's output, mid-line) is ended first, so
        the lines held back behind it are written too.
        """
        if self._owner is not None:
            self._owner = None
            self._enqueue([b"\n"], 1)
            self._release_held()
        with self._ready:
            while self._queue and not self.broken:
                before = self._written
                self._ready.wait(patience)
                if self._written == before:
                    return

    def _start(self) -> bool:
        global _writer_threads  # noqa: PLW0603  # counted for Supervisor.spawn's check
        try:
            _thread.start_new_thread(self._run, ())
        except RuntimeError:
            return False
        _writer_threads += 1
        self._thread = True
        return True

    def _run(self) -> None:
        block_loop_signals()
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                pieces, size = self._queue.popleft()
            self._write(pieces, size)
            with self._ready:
                self._queued -= size
                self._written += size
                self._ready.notify_all()
                done = [f for mark, f in self._waiters if mark <= self._written or self.broken]
                self._waiters = [(m, f) for m, f in self._waiters if f not in done]
                resume: list[Callable[[], None]] = []
                if self._queued < HIGH_WATER // 2 or self.broken:
                    resume, self._paused = self._paused, []
            with contextlib.suppress(RuntimeError):  # the loop may be closed
                for future in done:
                    self._loop.call_soon_threadsafe(settle, future, None)
                for callback in resume:
                    self._loop.call_soon_threadsafe(callback)

    def _write(self, pieces: Pieces, size: int) -> None:
        if self.broken:
            return
        error = write_pieces(self.fd, pieces, size)
        if error == errno.EPIPE:
            self.broken = True
        elif error:  # disk full, a closed descriptor: this piece is lost, the next may go
            self.dropped += size
            self.error = self.error or error


_destinations: dict[int, Destination] = {}
_writer_threads = 0  # started by Destination; they write, and never open a descriptor


def writer_threads() -> int:
    return _writer_threads


def destination(fd: int) -> Destination:
    """The one writer of ``fd`` in this event loop."""
    found = _destinations.get(fd)
    if found is None or found._loop is not asyncio.get_running_loop():
        found = _destinations[fd] = Destination(fd)
    return found


def drain_destinations(patience: float = 10.0) -> list[str]:
    """Before longrun exits: let every writer finish; what was lost, one line each."""
    lost = []
    for found in _destinations.values():
        found.drain_blocking(patience)
        if found.dropped:
            name = {1: "stdout", 2: "stderr"}.get(found.fd, f"descriptor {found.fd}")
            lost.append(f"{found.dropped} bytes of output lost: {name}: {os.strerror(found.error)}")
    return lost


T = TypeVar("T")


def settle(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)
