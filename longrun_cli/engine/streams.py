"""Copying exec's output to ours, and watching any stream for patterns.

``longrun exec`` copies a stream only when a pattern needs it (``--retry-stderr``,
a readiness regex): the bytes go through unchanged, as soon as they arrive, from
a thread of their own, so that a slow reader of longrun's output throttles the
child (as an inherited descriptor would) and never the event loop. A group's
prefixed lines are ``engine.output``'s.

Patterns are RE2 regexes, whose matching time is linear in the text searched.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from longrun_cli.engine.logring import LogRing
    from longrun_cli.engine.output import LineCopier
    from longrun_cli.engine.tail import StderrTail

CHUNK = 1024 * 1024
# Matching looks at whole lines; a longer line is searched in windows that overlap
# by OVERLAP bytes, so memory stays bounded whatever the child prints.
WINDOW = 256 * 1024
OVERLAP = 4 * 1024
LINE_CAP = 64 * 1024

# What a group writes in one go: bytes and views of bytes, written by one writev.
Pieces = list[bytes | memoryview]

_LOOP_SIGNALS = {
    signal.SIGCHLD,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
}


def block_loop_signals() -> None:
    """In a helper thread: signals belong to the event loop's thread, where their handlers run."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _LOOP_SIGNALS)


class PatternWatch:
    """Which patterns have appeared in a stream's lines, fed chunk by chunk.

    ``on_match`` is called on the event loop the first time each pattern is seen
    (the watch may be fed from another thread); for the ``repeated`` ones (a
    liveness heartbeat), every time a chunk of lines holds a match.
    """

    def __init__(
        self,
        patterns: tuple[str, ...],
        on_match: Callable[[str], None] | None = None,
        tail: StderrTail | None = None,
        repeated: frozenset[str] = frozenset(),
    ) -> None:
        self._repeated = repeated
        self._tail = tail  # --on-failure: the stream's last lines, copied aside
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[str, Any]] = []
        if patterns:
            from longrun_cli.policy.matcher import compile_pattern

            self._pending = [(p, compile_pattern(p)) for p in patterns]
        self._hits: set[str] = set()
        self._on_match = on_match
        self._line = bytearray()

    def hits(self) -> frozenset[str]:
        return frozenset(self._hits)

    def search_chunk(self, chunk: bytes) -> None:
        if self._tail is not None:
            self._tail.feed(chunk)
        if not self._pending:
            return
        newline = chunk.rfind(b"\n")
        if newline < 0:
            self._line += chunk
            if len(self._line) >= WINDOW:
                self._search(self._line)
                del self._line[:-OVERLAP]
        else:
            self._line += memoryview(chunk)[:newline]
            self._search(self._line)
            self._line = bytearray(memoryview(chunk)[newline + 1 :])

    def end(self) -> None:
        """End of stream: the last line, without its newline, is searched too."""
        if self._line and self._pending:
            self._search(self._line)
        self._line.clear()

    def _search(self, text: bytes | bytearray) -> None:
        still: list[tuple[str, Any]] = []
        for source, regex in self._pending:
            if found_in_a_line(regex, text):
                self._hits.add(source)
                if self._on_match is not None:
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(self._on_match, source)
                if source in self._repeated:
                    still.append((source, regex))
            else:
                still.append((source, regex))
        self._pending = still


class StreamCopier:
    """Copies ``read_fd`` to ``dest_fd`` unchanged, in a thread, watching for patterns.

    When ``dest_fd`` is a closed pipe the copying stops, so the child learns its
    reader is gone (SIGPIPE), as in a shell pipeline. Any other failure to write
    (disk full, a closed descriptor) drops the output and reading goes on: the
    command is not punished for longrun's output, and its stderr is still matched.
    """

    def __init__(self, read_fd: int, dest_fd: int, watch: PatternWatch) -> None:
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[frozenset[str]] = self._loop.create_future()
        self._read_fd = read_fd
        self._dest_fd = dest_fd
        self._watch = watch
        self._idle = False
        # The low-level call does not wait for the thread to be scheduled, which
        # threading.Thread.start does. RuntimeError (no thread under ulimit -u)
        # reaches the caller, which copies on the event loop instead.
        _thread.start_new_thread(self._run, ())

    async def finish(self) -> frozenset[str]:
        """Wait for end of stream; returns the patterns seen."""
        return await asyncio.shield(self._done)

    def caught_up(self) -> bool:
        """True while the copier waits for input and none is pending in the pipe."""
        if not self._idle:
            return False
        import termios

        try:
            pending = fcntl.ioctl(self._read_fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return True  # closed: the stream has ended
        return int.from_bytes(pending, sys.byteorder) == 0

    def ended(self) -> frozenset[str] | None:
        """The patterns seen, once the stream ended and was written; None before."""
        return self._done.result() if self._done.done() else None

    def hits_so_far(self) -> frozenset[str]:
        return self._watch.hits()

    def _read(self) -> bytes:
        self._idle = True
        try:
            return os.read(self._read_fd, CHUNK)
        finally:
            self._idle = False

    def _run(self) -> None:
        block_loop_signals()
        try:
            while chunk := self._read():
                if write_all(self._dest_fd, chunk) == errno.EPIPE:
                    return
                self._watch.search_chunk(chunk)
            self._watch.end()
        finally:
            os.close(self._read_fd)
            hits = self._watch.hits()
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                self._loop.call_soon_threadsafe(_resolve, self._done, hits)


def copier_for(
    pipe: tuple[int, int],
    dest_fd: int,
    patterns: tuple[str, ...],
    prefix: bytes | None,
    on_match: Callable[[str], None] | None = None,
    log: LogRing | None = None,
    stamp: Callable[[], bytes] | None = None,
    tail: StderrTail | None = None,
    *,
    repeated: frozenset[str] = frozenset(),
) -> StreamCopier | LineCopier:
    """The copier of one pipe: exec's raw copier (a thread), or a group's lines (the loop)."""
    read_fd, write_fd = pipe
    os.close(write_fd)
    watch = PatternWatch(patterns, on_match, tail, repeated)
    if prefix is None:
        # Only exec's single copied stream gets a big pipe: a group has hundreds,
        # and past the per-user pipe-page limit the kernel shrinks new pipes to
        # one page.
        from longrun_cli.engine.platform import enlarge_pipe

        enlarge_pipe(read_fd, CHUNK)
        try:
            return StreamCopier(read_fd, dest_fd, watch)
        except RuntimeError:
            pass  # no thread to be had (ulimit -u): copy on the event loop
    from longrun_cli.engine.destination import destination
    from longrun_cli.engine.output import LineCopier

    return LineCopier(read_fd, destination(dest_fd), prefix, watch, log, stamp)


def found_in_a_line(regex: Any, text: bytes | bytearray) -> bool:
    """Search many lines at once; a match across a newline is re-checked line by line."""
    found = regex.search(text)
    if found is None:
        return False
    if b"\n" not in found.group():
        return True
    return any(regex.search(line) for line in bytes(text).split(b"\n"))


def write_all(fd: int, data: bytes) -> int:
    """Write everything; 0, or the errno that stopped it (EPIPE: the reader is gone)."""
    return write_pieces(fd, [data], len(data))


def write_pieces(fd: int, pieces: Pieces, size: int) -> int:
    """Write ``size`` bytes given in pieces, with writev (no copy to join them); 0, or
    the errno that stopped it (EPIPE: the reader is gone)."""
    while True:
        try:
            written = os.writev(fd, pieces)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return exc.errno or errno.EIO
        size -= written
        if size <= 0:
            return 0
        rest: Pieces = []
        for piece in pieces:  # a short write (a pipe, a signal): drop what went out
            if written >= len(piece):
                written -= len(piece)
                continue
            rest.append(memoryview(piece)[written:] if written else piece)
            written = 0
        pieces = rest


def _resolve(future: asyncio.Future[frozenset[str]], hits: frozenset[str]) -> None:
    if not future.done():
        future.set_result(hits)
