"""Cutting a task's output into prefixed lines: pure, so it is tested against a reference.

A line is written once complete; a partial line can be ``cut`` (a line of its own,
its rest on the next prefixed line); past ``cap`` bytes a line streams as it comes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from longrun_cli.engine.streams import LINE_CAP


class LineFramer:
    """Cuts a byte stream into prefixed lines; pure, so it is tested against a reference.

    ``feed`` returns what can be written now: complete lines, each behind the
    prefix. A partial line is kept until its newline; once it reaches ``cap``
    bytes it is written as it comes (``streaming``: the destination is left
    mid-line until the newline or a ``cut``), so memory stays bounded.
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

    def feed(self, chunk: bytes) -> bytes:
        if self._stamp is not None:
            self._prefix = self._stamp() + self._name
        head = b""
        if self.streaming:
            newline = chunk.find(b"\n")
            if newline < 0:
                return chunk
            head, chunk = chunk[: newline + 1], chunk[newline + 1 :]
            self.streaming = False
        last = chunk.rfind(b"\n")
        self.line_ended = last >= 0 or bool(head)
        if last < 0:
            self._partial = self._partial + chunk if self._partial else chunk
            out = head
        else:
            # The carried partial line is not joined to the chunk (a copy of all of
            # it): it goes between the prefix and the chunk's first line.
            partial, self._partial = self._partial, chunk[last + 1 :]
            lines = self._prefixed(partial, chunk, last)
            out = head + lines if head else lines
        if len(self._partial) >= self._cap:
            out += self._prefix + self._partial
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

    def _prefixed(self, partial: bytes, chunk: bytes, last: int) -> bytes:
        """``partial`` and ``chunk`` up to its newline at ``last``, each line behind the
        prefix."""
        # Bulk operations on the whole chunk, no Python work per line, and as few
        # copies as can be: replace everything, then join the part wanted (a view).
        prefix = self._prefix
        if not prefix:
            return partial + chunk[: last + 1]
        if self._terminal and (b"\r" in chunk or b"\r" in partial):
            body = self._after_returns(partial + chunk[:last])
            return prefix + body.replace(b"\n", b"\n" + prefix) + b"\n"
        replaced = chunk.replace(b"\n", b"\n" + prefix)
        # What follows the last newline (the partial line) is cut off with its prefix.
        end = len(replaced) - (len(chunk) - last - 1) - len(prefix)
        with memoryview(replaced) as view:
            return b"".join((prefix, partial, view[:end]))

    def _after_returns(self, text: bytes) -> bytes:
        if not self._terminal or b"\r" not in text:
            return text
        return re.sub(rb"\r(?!\n|$)", lambda _: b"\r" + self._prefix, text)
