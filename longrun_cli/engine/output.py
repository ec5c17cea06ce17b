"""Group output: every task's lines, prefixed, on longrun's stdout and stderr.

Reading happens on the event loop (no thread per stream: a group of 2,000 tasks
reads 4,000 pipes); writing is ``engine.destination``'s (a regular file in place,
a pipe or terminal by a thread of its own behind a bounded queue), so a slow
reader of longrun's output throttles the tasks (their reads pause, their pipes
fill) and never the event loop.

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

import asyncio
import fcntl
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from longrun_cli.engine.destination import Destination, settle
from longrun_cli.engine.framing import LineFramer
from longrun_cli.engine.streams import PatternWatch, Pieces

if TYPE_CHECKING:
    from longrun_cli.engine.logring import LogRing

READ_SIZE = 64 * 1024
READS_PER_TURN = 4  # chunks taken from one pipe before the loop polls again
PARTIAL_WAIT = 0.1  # seconds a partial line may wait for the rest of it
STREAM_TURN = 1.0  # seconds a line being streamed may keep the others waiting


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
        framer = self._framer
        if framer is None:
            if self._log is not None:
                self._log.feed(self._destination.fd, chunk)
            self._put(chunk)
            return
        began = framer.streaming
        out = framer.feed(chunk)
        if self._log is not None:
            self._log.feed(self._destination.fd, chunk, framer.newlines)
        if framer.streaming:
            now = self._loop.time()
            if not began:
                self._streaming_since = now
            elif now - self._streaming_since > STREAM_TURN and self._destination.others_waiting:
                out.append(framer.cut())  # others have waited long enough: their turn
        self._put(out)
        self._arm_timer(restart=began or framer.streaming)

    def _put(self, out: Pieces | bytes) -> None:
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
        self._destination.written().add_done_callback(lambda _: settle(self._done, hits))


def local_stamp() -> bytes:
    """--timestamps: local time, ISO 8601 to the millisecond, as concurrently -t writes it."""
    from datetime import datetime

    return datetime.now().isoformat(timespec="milliseconds").encode() + b" "
