"""Copying a child's output to ours while watching it for patterns.

Each copied stream gets its own thread, so that a slow reader of longrun's output
throttles the child (as an inherited descriptor would) and never the event loop.
Patterns are RE2 regexes, whose matching time is linear in the text searched.

Two modes:
- raw (``longrun exec``): bytes go through unchanged, as soon as they arrive;
- lines (``longrun group``): each line is written whole with a prefix, under a
  lock shared by every stream with the same destination, so lines from different
  tasks never interleave inside a line. A line longer than ``LINE_CAP`` is
  streamed while holding the lock, keeping memory bounded.
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
import threading
from collections.abc import Callable
from typing import Any

CHUNK = 1024 * 1024
# Matching looks at whole lines; a longer line is searched in windows that overlap
# by OVERLAP bytes, so memory stays bounded whatever the child prints.
WINDOW = 256 * 1024
OVERLAP = 4 * 1024
LINE_CAP = 64 * 1024

_locks: dict[int, threading.Lock] = {}
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


def destination_lock(fd: int) -> threading.Lock:
    """The lock that keeps whole lines together on descriptor ``fd``."""
    return _locks.setdefault(fd, threading.Lock())


class StreamCopier:
    """Copies ``read_fd`` to ``dest_fd`` in a thread, noting which patterns appeared.

    ``on_match`` is called on the event loop the first time each pattern is seen.
    """

    def __init__(
        self,
        read_fd: int,
        dest_fd: int,
        patterns: tuple[str, ...] = (),
        *,
        prefix: bytes | None = None,
        on_match: Callable[[str], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[frozenset[str]] = self._loop.create_future()
        self._pending: list[tuple[str, Any]] = []
        if patterns:
            from longrun_cli.policy.matcher import compile_pattern

            self._pending = [(p, compile_pattern(p)) for p in patterns]
        self._hits: set[str] = set()
        self._read_fd = read_fd
        self._dest_fd = dest_fd
        self._prefix = prefix
        self._on_match = on_match
        self._carry = bytearray()
        self._idle = False
        # The low-level call does not wait for the thread to be scheduled, which
        # threading.Thread.start does: a group of 200 tasks starts 400 copiers.
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

    def hits_so_far(self) -> frozenset[str]:
        return frozenset(self._hits)

    def _read(self) -> bytes:
        self._idle = True
        try:
            return os.read(self._read_fd, CHUNK)
        finally:
            self._idle = False

    def _run(self) -> None:
        # Signals belong to the event loop's thread, where their handlers run.
        signal.pthread_sigmask(signal.SIG_BLOCK, _LOOP_SIGNALS)
        try:
            if self._prefix is None:
                self._copy_raw()
            else:
                self._copy_lines(self._prefix)
        finally:
            os.close(self._read_fd)
            hits = frozenset(self._hits)
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                self._loop.call_soon_threadsafe(_resolve, self._done, hits)

    def _copy_raw(self) -> None:
        line = bytearray()
        while chunk := self._read():
            if not write_all(self._dest_fd, chunk):
                return  # like a shell pipeline: the child learns its reader is gone
            if not self._pending:
                continue
            newline = chunk.rfind(b"\n")
            if newline < 0:
                line += chunk
                if len(line) >= WINDOW:
                    self._search(line)
                    del line[:-OVERLAP]
            else:
                line += memoryview(chunk)[:newline]
                self._search(line)
                line = bytearray(memoryview(chunk)[newline + 1 :])
        if line and self._pending:
            self._search(line)

    def _copy_lines(self, prefix: bytes) -> None:
        lock = destination_lock(self._dest_fd)
        pending = bytearray()
        streaming = False  # inside an over-long line, holding the lock
        try:
            while chunk := self._read():
                pending += chunk
                if streaming:
                    newline = pending.find(b"\n")
                    end = len(pending) if newline < 0 else newline + 1
                    if not write_all(self._dest_fd, bytes(pending[:end])):
                        return
                    self._search_window(pending[:end])
                    del pending[:end]
                    if newline < 0:
                        continue
                    streaming = False
                    self._carry.clear()
                    lock.release()
                last = pending.rfind(b"\n")
                if last >= 0:
                    block = bytes(pending[: last + 1])
                    del pending[: last + 1]
                    if not self._write_lines(lock, prefix, block):
                        return
                if len(pending) > LINE_CAP:
                    lock.acquire()
                    streaming = True
                    if not write_all(self._dest_fd, prefix + bytes(pending)):
                        return
                    self._search_window(pending)
                    pending.clear()
            if pending:
                # A partial last line gets its newline, or the next task's line
                # would continue it.
                if streaming:
                    write_all(self._dest_fd, bytes(pending) + b"\n")
                else:
                    self._write_lines(lock, prefix, bytes(pending) + b"\n")
                self._search_window(pending)
            elif streaming:
                write_all(self._dest_fd, b"\n")
        finally:
            if streaming:
                lock.release()

    def _write_lines(self, lock: threading.Lock, prefix: bytes, block: bytes) -> bool:
        lines = block.split(b"\n")[:-1]
        if self._pending:
            for line in lines:
                self._search(line)
        out = b"".join(prefix + line + b"\n" for line in lines) if prefix else block
        with lock:
            return write_all(self._dest_fd, out)

    def _search_window(self, piece: bytes | bytearray) -> None:
        """Search one piece of an over-long line, with the end of the previous piece."""
        if self._pending:
            self._carry += piece
            self._search(self._carry)
            del self._carry[:-OVERLAP]

    def _search(self, text: bytes | bytearray) -> None:
        still: list[tuple[str, Any]] = []
        for source, regex in self._pending:
            if found_in_a_line(regex, text):
                self._hits.add(source)
                if self._on_match is not None:
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(self._on_match, source)
            else:
                still.append((source, regex))
        self._pending = still


def found_in_a_line(regex: Any, text: bytes | bytearray) -> bool:
    """Search many lines at once; a match across a newline is re-checked line by line."""
    found = regex.search(text)
    if found is None:
        return False
    if b"\n" not in found.group():
        return True
    return any(regex.search(line) for line in bytes(text).split(b"\n"))


def write_all(fd: int, data: bytes) -> bool:
    """Write everything; False when the destination is gone (EPIPE and the like)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return False
        view = view[written:]
    return True


def _resolve(future: asyncio.Future[frozenset[str]], hits: frozenset[str]) -> None:
    if not future.done():
        future.set_result(hits)
