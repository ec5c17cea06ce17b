"""Cutting a task's output into prefixed lines: pure, so it is tested against a reference.

A line is written once complete; a partial line can be ``cut`` (a line of its own,
its rest on the next prefixed line); past ``cap`` bytes a line streams as it comes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from longrun_cli.engine.streams import LINE_CAP, Pieces


class LineFramer:
    """Cuts a byte stream into prefixed lines; pure, so it is tested against a reference.

    ``feed`` returns what can be written now: complete lines, each behind the
    prefix, as pieces (bytes and views) to be written in one go. A partial line
    is kept until its newline; once it reaches ``cap`` bytes it is written as it
    comes (``streaming``: the destination is left mid-line until the newline or a
    ``cut``), so memory stays bounded.
    """

    def __init__(
        self,
        prefix: bytes,
        cap: int = LINE_CAP,
        *,
        terminal: bool = False,
        stamp: Callable[[], bytes] | None = None,
    ) -> None:
        self._name = prefix
        self._prefix = prefix
        # --timestamps: the time a chunk arrived, before the name of each of its lines.
        self._stamp = stamp
        self._cap = cap
        self._partial = b""
        # How many newlines the last chunk fed held, when it came free with the work
        # (the replace tells by how much it grew); -1 when not known. The log ring
        # takes it rather than counting the chunk again.
        self.newlines = -1
        self.streaming = False
        # The last chunk fed ended a line (so a partial line after it is a new one).
        self.line_ended = False
        # On a terminal a bare \r (a progress bar redrawn in place) returns to the
        # start of the line: the prefix follows it, or the redraw would cover it.
        self._terminal = terminal and bool(prefix)

    @property
    def pending(self) -> bool:
        """A line has begun and not ended (kept here, or streaming)."""
        return bool(self._partial) or self.streaming

    def feed(self, chunk: bytes) -> Pieces:
        """What can be written now, in pieces for one ``writev``: never joined (a copy)."""
        if self._stamp is not None:
            self._prefix = self._stamp() + self._name
        out: Pieces = []
        if self.streaming:
            newline = chunk.find(b"\n")
            if newline < 0:
                self.newlines = 0
                return [chunk]
            out.append(chunk[: newline + 1])
            chunk = chunk[newline + 1 :]
            self.streaming = False
        last = chunk.rfind(b"\n")
        self.line_ended = last >= 0 or bool(out)
        if last < 0:
            self._partial = self._partial + chunk if self._partial else chunk
            self.newlines = len(out)
        else:
            head = len(out)
            partial, self._partial = self._partial, chunk[last + 1 :]
            self._prefixed(partial, chunk, last, out)
            if head and self.newlines >= 0:
                self.newlines += 1
        if len(self._partial) >= self._cap:
            out.append(self._prefix + self._partial)
            self._partial = b""
            self.streaming = True
        return out

    def cut(self) -> bytes:
        """End the line begun (its rest will start a new prefixed line); b"" when none."""
        if self.streaming:
            self.streaming = False
            return b"\n"
        if not self._partial:
            return b""
        if self._stamp is not None:
            self._prefix = self._stamp() + self._name
        partial, self._partial = self._partial, b""
        return self._prefix + self._after_returns(partial) + b"\n"

    def _prefixed(self, partial: bytes, chunk: bytes, last: int, out: Pieces) -> None:
        """Add ``partial`` and ``chunk`` up to its newline at ``last`` to ``out``, each line
        behind the prefix."""
        # Bulk operations on the whole chunk, no Python work per line, and as few
        # copies as can be: one replace, and views of it.
        prefix = self._prefix
        self.newlines = -1
        if not prefix:
            if partial:
                out.append(partial)
            out.append(memoryview(chunk)[: last + 1])
            return
        if self._terminal and (b"\r" in chunk or b"\r" in partial):
            body = self._after_returns(partial + chunk[:last])
            out.append(prefix + body.replace(b"\n", b"\n" + prefix) + b"\n")
            return
        replaced = chunk.replace(b"\n", b"\n" + prefix)
        self.newlines = (len(replaced) - len(chunk)) // len(prefix)
        # What follows the last newline (the partial line) is cut off with its prefix.
        end = len(replaced) - (len(chunk) - last - 1) - len(prefix)
        out.append(prefix + partial)
        out.append(memoryview(replaced)[:end])

    def _after_returns(self, text: bytes) -> bytes:
        if not self._terminal or b"\r" not in text:
            return text
        return re.sub(rb"\r(?!\n|$)", lambda _: b"\r" + self._prefix, text)
