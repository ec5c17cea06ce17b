"""The last lines of one task's output, kept for ``longrun ctl logs`` (pure: no IO).

Both of a task's streams feed one ring, in the order their chunks arrive; each
stream keeps its own partial line, so a stdout line never swallows half of a
stderr line. Chunks are kept whole and cut into lines only when read. Memory is
bounded: past ``SOFT_BYTES`` (or the ring's ``byte_limit``, if smaller) the chunks
older than the newest ``capacity`` lines go, and the oldest go past ``byte_limit``
whatever they hold: a group of 2,000 chatty tasks must not keep 2,000 x 1,000
lines. A line longer than ``LINE_LIMIT`` bytes is shown as several.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

LINE_LIMIT = 16 * 1024
DEFAULT_CAPACITY = 1000
GROUP_BYTES = 64 * 1024 * 1024  # what a whole group's rings may hold, shared out per task
MIN_BYTES = 16 * 1024  # what each task's ring may hold at least (past 4,096 tasks)
LINE_OVERHEAD = 48  # what Python spends on each line a tail cuts, beyond its bytes
# Past this many bytes a ring drops what no tail can need (a chunk of a chatty task
# is not counted on arrival: that was a tenth of a group's output cost).
SOFT_BYTES = 1024 * 1024


def bytes_per_task(tasks: int) -> int:
    return max(MIN_BYTES, GROUP_BYTES // max(tasks, 1))


class LogRing:
    # A group of 2,000 tasks has 2,000 rings: nothing is allocated before a line comes.
    __slots__ = (
        "_blocks",
        "_byte_limit",
        "_bytes",
        "_capacity",
        "_line_limit",
        "_partial",
        "followers",
    )

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        line_limit: int = LINE_LIMIT,
        byte_limit: int = GROUP_BYTES,
    ) -> None:
        # The complete lines of each chunk as one block of bytes, with its line count
        # and its cost: storing and evicting cost one C count per chunk (a group's hot
        # path); lines are cut only on reading (``tail``) or for a follower.
        # [carried partial line, chunk, end of its last line in it, lines or -1]
        self._blocks: deque[list[Any]] | None = None
        self._capacity = capacity
        self._line_limit = line_limit
        self._byte_limit = byte_limit
        self._bytes = 0
        self._partial: dict[int, bytes] | None = None
        # Followers (``logs -f``): called with each batch of complete lines.
        self.followers: set[Callable[[list[bytes]], None]] = _NO_FOLLOWERS

    def feed(self, stream: int, chunk: bytes, newlines: int = -1) -> None:
        """Add what ``stream`` (1 or 2) wrote; complete lines enter the ring.

        ``newlines``: how many ``chunk`` holds, if the caller knows (-1: counted here
        when needed).
        """
        partial = self._partial
        head = partial.pop(stream, b"") if partial else b""
        # No copy of the chunk: the block is ``head`` (the stream's carried partial
        # line) and the chunk up to its last newline, joined only when read.
        end = chunk.rfind(b"\n") + 1
        if end:
            rest = chunk[end:]
        else:  # no line ends here: all of it is the partial line
            head, rest = b"", head + chunk
        if len(rest) >= self._line_limit:  # kept as a line (of pieces) of its own
            chunk = (chunk if end else rest) + b"\n"
            end, rest = len(chunk), b""
            if newlines >= 0:
                newlines += 1
        if rest:
            if partial is None:
                partial = self._partial = {}
            partial[stream] = rest
        if end:
            self._add(head, chunk, end, newlines)

    def end(self, stream: int) -> None:
        """The stream closed: its unfinished last line is a line too."""
        rest = self._partial.pop(stream, b"") if self._partial else b""
        if rest:
            self._add(b"", rest + b"\n", len(rest) + 1)

    def tail(self, count: int) -> list[bytes]:
        """The last ``count`` lines kept: at most ``capacity``, within the byte limit."""
        wanted = min(count, self._capacity)
        kept: list[bytes] = []
        size = 0
        for head, chunk, end, _lines in reversed(self._blocks or ()):
            for line in reversed(self._cut(head, chunk, end)):
                cost = len(line) + LINE_OVERHEAD
                if len(kept) >= wanted or (kept and size + cost > self._byte_limit):
                    return kept[::-1]
                kept.append(line)
                size += cost
        return kept[::-1]

    def follow(self, follower: Callable[[list[bytes]], None]) -> None:
        if self.followers is _NO_FOLLOWERS:
            self.followers = set()
        self.followers.add(follower)

    def unfollow(self, follower: Callable[[list[bytes]], None]) -> None:
        self.followers.discard(follower)

    def _cut(self, head: bytes, chunk: bytes, end: int) -> list[bytes]:
        """A block's lines, without their newlines; one over the line limit as pieces."""
        block = head + chunk[:end]
        lines = block[:-1].split(b"\n")
        limit = self._line_limit
        if len(block) > limit and max(map(len, lines)) > limit:
            lines = [
                line[start : start + limit]
                for line in lines
                for start in range(0, max(len(line), 1), limit)
            ]
        return lines

    def _add(self, head: bytes, chunk: bytes, end: int, lines: int = -1) -> None:
        blocks = self._blocks
        if blocks is None:
            blocks = self._blocks = deque()
        # Its lines are counted only if compaction needs them (and nobody told).
        blocks.append([head, chunk, end, lines])
        self._bytes += len(head) + end
        if self._bytes > min(self._byte_limit, SOFT_BYTES):
            self._compact(blocks)
        if self.followers:
            cut = self._cut(head, chunk, end)
            for follower in list(self.followers):
                follower(cut)

    def _compact(self, blocks: deque[list[Any]]) -> None:
        """Drop the blocks no tail can need: older than the newest ``capacity`` lines, or
        past the byte limit. Newlines are counted newest first, each block once, and
        only this far: a fast stream of short lines counts one block in many."""
        covered = 0
        keep = 0
        for entry in reversed(blocks):
            keep += 1
            if entry[3] < 0:
                entry[3] = entry[0].count(b"\n") + entry[1].count(b"\n", 0, entry[2])
            covered += entry[3]
            if covered >= self._capacity:
                break
        while len(blocks) > keep:
            self._bytes -= _size(blocks.popleft())
        # The newer blocks' bytes alone fill the byte limit: no tail reaches the oldest.
        while len(blocks) > 1 and self._bytes - _size(blocks[0]) >= self._byte_limit:
            self._bytes -= _size(blocks.popleft())


def _size(entry: list[Any]) -> int:
    return len(entry[0]) + int(entry[2])


_NO_FOLLOWERS: set[Callable[[list[bytes]], None]] = set()  # shared, never added to
