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
        data = self._partial + chunk if self._partial else chunk
        last = data.rfind(b"\n")
        if last < 0:
            self._partial = data
            out = head
        else:
            self._partial = data[last + 1 :]
            out = head + self._prefixed(data[: last + 1])
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

    def _prefixed(self, lines: bytes) -> bytes:
        # Bulk operations on the whole block: no Python work per line.
        if not self._prefix:
            return lines
        body = self._after_returns(lines[:-1])
        return self._prefix + body.replace(b"\n", b"\n" + self._prefix) + b"\n"

    def _after_returns(self, text: bytes) -> bytes:
        if not self._terminal or b"\r" not in text:
            return text
        return re.sub(rb"\r(?!\n|$)", lambda _: b"\r" + self._prefix, text)
