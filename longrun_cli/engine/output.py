"""Group output: every task's lines, prefixed, on longrun's stdout and stderr.

Reading happens on the event loop (no thread per stream: a group of 2,000 tasks
reads 4,000 pipes); writing is one thread per destination, fed by a bounded
queue, so a slow reader of longrun's output throttles the tasks (their reads
pause, their pipes fill) and never the event loop.

Each queued piece is made of whole lines, so lines of different tasks never mix
inside a line, and no lock is ever held while a task pauses. A line is written
once complete; a partial line that has waited ``PARTIAL_WAIT`` (a progress bar
redrawn with ``\\r``) or grown past ``LINE_CAP`` is written as a line of its own
and the rest follows on a new prefixed line.

A destination that fails (disk full, closed descriptor) drops what it cannot
write and the tasks run on unaffected; a destination that is a closed pipe
(EPIPE) stops copying, so the tasks learn their reader is gone, as in a shell
pipeline.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import errno
import fcntl
import os
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from longrun_cli.engine.framing import LineFramer
from longrun_cli.engine.streams import PatternWatch, block_loop_signals, write_all

if TYPE_CHECKING:
    from longrun_cli.engine.logring import LogRing

READ_SIZE = 64 * 1024
READS_PER_TURN = 4  # chunks taken from one pipe before the loop polls again
PARTIAL_WAIT = 0.1  # seconds a partial line may wait for the rest of it
HIGH_WATER = 4 * 1024 * 1024  # queued bytes per destination before the readers pause
STREAM_TURN = 1.0  # seconds a line being streamed may keep the others waiting


class Destination:
    """One of longrun's descriptors, written in order by one thread of its own."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._loop = asyncio.get_running_loop()
        self._queue: deque[bytes] = deque()
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
        self._held: list[tuple[bytes, object, bool]] = []
        self._held_bytes = 0

    @property
    def others_waiting(self) -> bool:
        return bool(self._held)

    @property
    def written_bytes(self) -> int:
        with self._ready:
            return self._written

    def put(self, data: bytes, writer: object = None, *, mid_line: bool = False) -> bool:
        """Queue ``data`` from ``writer``; False when full and the caller should pause.

        ``mid_line``: ``data`` leaves the destination in the middle of a line that
        ``writer`` will end later; nobody else's lines are written until then.
        """
        if self.broken or not data:
            return True
        if self._owner is not None and self._owner is not writer:
            self._held.append((data, writer, mid_line))
            self._held_bytes += len(data)
            return self._queued + self._held_bytes < HIGH_WATER
        self._owner = writer if mid_line else None
        full = self._enqueue(data)
        if self._owner is None and self._held:
            full = self._release_held()
        return full

    def _release_held(self) -> bool:
        """Pass on the pieces held back, in each writer's order, until one leaves a line open."""
        full = True
        progress = True
        while progress and self._held:
            progress = False
            kept: list[tuple[bytes, object, bool]] = []
            blocked: set[int] = set()  # writers with an earlier piece still held
            for data, writer, mid_line in self._held:
                if id(writer) in blocked or (self._owner is not None and self._owner is not writer):
                    kept.append((data, writer, mid_line))
                    blocked.add(id(writer))
                    continue
                self._held_bytes -= len(data)
                full = self._enqueue(data)
                self._owner = writer if mid_line else None
                progress = True
            self._held = kept
        return full

    def _enqueue(self, data: bytes) -> bool:
        self._submitted += len(data)
        if self._direct or (not self._thread and not self._start()):
            self._write(data)  # no thread to be had (ulimit -u): write in place
            self._written += len(data)
            return True
        with self._ready:
            self._queue.append(data)
            self._queued += len(data)
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
            self._enqueue(b"\n")
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
                data = self._queue.popleft()
            self._write(data)
            with self._ready:
                self._queued -= len(data)
                self._written += len(data)
                self._ready.notify_all()
                done = [f for mark, f in self._waiters if mark <= self._written or self.broken]
                self._waiters = [(m, f) for m, f in self._waiters if f not in done]
                resume: list[Callable[[], None]] = []
                if self._queued < HIGH_WATER // 2 or self.broken:
                    resume, self._paused = self._paused, []
            with contextlib.suppress(RuntimeError):  # the loop may be closed
                for future in done:
                    self._loop.call_soon_threadsafe(_resolve, future, None)
                for callback in resume:
                    self._loop.call_soon_threadsafe(callback)

    def _write(self, data: bytes) -> None:
        if self.broken:
            return
        error = write_all(self.fd, data)
        if error == errno.EPIPE:
            self.broken = True
        elif error:  # disk full, a closed descriptor: this piece is lost, the next may go
            self.dropped += len(data)
            self.error = self.error or error


class LineCopier:
    """Copies one task stream to a destination, line by line, on the event loop."""

    def __init__(
        self,
        read_fd: int,
        destination: Destination,
        prefix: bytes | None,
        watch: PatternWatch,
        log: LogRing | None = None,
        stamp: Callable[[], bytes] | None = None,
    ) -> None:
        self._fd = read_fd
        self._log = log  # the task's last lines, for longrun ctl logs
        self._destination = destination
        # None: raw bytes, as they come (exec's copier where no thread can be had).
        self._framer = (
            LineFramer(prefix, terminal=destination.is_terminal, stamp=stamp)
            if prefix is not None
            else None
        )
        self._watch = watch
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[frozenset[str]] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._partial_since = 0.0  # when the partial line now kept began
        self._paused = False
        self._seen_written = -1
        self._streaming_since = 0.0
        os.set_blocking(read_fd, False)
        self._loop.add_reader(read_fd, self._on_readable)

    async def finish(self) -> frozenset[str]:
        """Wait for end of stream and for its lines to be written; the patterns seen."""
        return await asyncio.shield(self._done)

    def caught_up(self) -> bool:
        """True while nothing is pending in the pipe, or nothing can get out anyway.

        Reading paused behind a destination that wrote nothing since the last
        call (a reader of longrun's output that neither reads nor closes) counts
        as caught up: waiting for it would hang the task, and a stop, for good.
        """
        if self._paused:
            written = self._destination.written_bytes
            stalled, self._seen_written = written == self._seen_written, written
            return stalled
        import termios

        try:
            pending = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return True
        return int.from_bytes(pending, sys.byteorder) == 0

    def ended(self) -> frozenset[str] | None:
        """The patterns seen, once the stream ended and was written; None before."""
        return self._done.result() if self._done.done() else None

    def hits_so_far(self) -> frozenset[str]:
        return self._watch.hits()

    def _on_readable(self) -> None:
        # A full chunk says more is waiting: take a few more before going back to the
        # loop's poll (a chatty task costs fewer turns of the loop), unless paused.
        for _ in range(READS_PER_TURN):
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk or self._destination.broken:
                self._end()
                return
            self._take(chunk)
            if len(chunk) < READ_SIZE or self._paused:
                return

    def _take(self, chunk: bytes) -> None:
        self._watch.search_chunk(chunk)
        if self._log is not None:
            self._log.feed(self._destination.fd, chunk)
        framer = self._framer
        if framer is None:
            self._put(chunk)
            return
        began = framer.streaming
        out = framer.feed(chunk)
        if framer.streaming:
            now = self._loop.time()
            if not began:
                self._streaming_since = now
            elif now - self._streaming_since > STREAM_TURN and self._destination.others_waiting:
                out += framer.cut()  # others have waited long enough: their turn
        self._put(out)
        self._arm_timer(restart=began or framer.streaming)

    def _put(self, out: bytes) -> None:
        mid_line = self._framer is not None and self._framer.streaming
        if out and not self._destination.put(out, self, mid_line=mid_line):
            self._paused = True
            self._loop.remove_reader(self._fd)
            self._destination.when_drained(self._resume)

    def _arm_timer(self, *, restart: bool) -> None:
        """A partial line waits PARTIAL_WAIT at most; a streamed one, PARTIAL_WAIT of silence.

        One timer, not one per chunk: a chunk only notes when the partial line it
        leaves began, and the timer, when it fires, waits on for what is left.
        """
        framer = self._framer
        if framer is None or not framer.pending:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if restart or framer.line_ended:
            self._partial_since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_later(PARTIAL_WAIT, self._cut_partial)

    def _resume(self) -> None:
        if self._paused and not self._done.done():
            self._paused = False
            self._loop.add_reader(self._fd, self._on_readable)

    def _cut_partial(self) -> None:
        self._timer = None
        left = self._partial_since + PARTIAL_WAIT - self._loop.time()
        if self._paused or left > 0:
            # Paused: not the command's silence, longrun stopped reading (a slow
            # reader), and the rest of the line is in the pipe. Otherwise the partial
            # line is younger than the wait: wait for what is left of it.
            self._timer = self._loop.call_later(PARTIAL_WAIT if self._paused else left,
                                                self._cut_partial)  # fmt: skip
            return
        if self._framer is not None and not self._done.done():
            self._put(self._framer.cut())

    def _end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._paused:
            self._loop.remove_reader(self._fd)
        self._paused = False
        os.close(self._fd)
        self._watch.end()
        if self._log is not None:
            self._log.end(self._destination.fd)
        if self._framer is not None:
            # A partial last line gets its newline, or the next task's line would continue it.
            self._destination.put(self._framer.cut(), self)
        hits = self._watch.hits()
        self._destination.written().add_done_callback(lambda _: _resolve(self._done, hits))


def local_stamp() -> bytes:
    """--timestamps: local time, ISO 8601 to the millisecond, as concurrently -t writes it."""
    from datetime import datetime

    return datetime.now().isoformat(timespec="milliseconds").encode() + b" "


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


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)
