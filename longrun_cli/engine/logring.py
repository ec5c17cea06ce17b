"""The last lines of one task's output, kept for ``longrun ctl logs`` (pure: no IO).

Both of a task's streams feed one ring, in the order their chunks arrive; each
stream keeps its own partial line, so a stdout line never swallows half of a
stderr line. Memory is bounded three times: at most ``capacity`` lines, each at
most ``LINE_LIMIT`` bytes (a longer line is kept as several), and at most
``byte_limit`` bytes in all (the oldest lines go first): a group of 2,000 chatty
tasks must not keep 2,000 x 1,000 lines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

LINE_LIMIT = 16 * 1024
DEFAULT_CAPACITY = 1000
GROUP_BYTES = 64 * 1024 * 1024  # what a whole group's rings may hold, shared out per task
MIN_BYTES = 16 * 1024  # what each task's ring may hold at least (past 4,096 tasks)
LINE_OVERHEAD = 48  # what Python spends on each kept line beyond its bytes


def bytes_per_task(tasks: int) -> int:
    return max(MIN_BYTES, GROUP_BYTES // max(tasks, 1))


class LogRing:
    # A group of 2,000 tasks has 2,000 rings: nothing is allocated before a line comes.
    __slots__ = (
        "_blocks",
        "_byte_limit",
        "_bytes",
        "_capacity",
        "_count",
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
        # The lines of each chunk as one block: storing and evicting cost the same
        # whatever the number of lines (a group's hot path), lines are cut on reading.
        self._blocks: deque[tuple[list[bytes], int]] | None = None
        self._count = 0
        self._capacity = capacity
        self._line_limit = line_limit
        self._byte_limit = byte_limit
        self._bytes = 0
        self._partial: dict[int, bytes] | None = None
        # Followers (``logs -f``): called with each batch of complete lines.
        self.followers: set[Callable[[list[bytes]], None]] = _NO_FOLLOWERS

    def feed(self, stream: int, chunk: bytes) -> None:
        """Add what ``stream`` (1 or 2) wrote; complete lines enter the ring."""
        partial = self._partial
        data = partial.pop(stream, b"") + chunk if partial else chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) >= self._line_limit:
            lines.append(rest)
            rest = b""
        if rest:
            if partial is None:
                partial = self._partial = {}
            partial[stream] = rest
        if lines:
            self._add(lines)

    def end(self, stream: int) -> None:
        """The stream closed: its unfinished last line is a line too."""
        rest = self._partial.pop(stream, b"") if self._partial else b""
        if rest:
            self._add([rest])

    def tail(self, count: int) -> list[bytes]:
        """The last ``count`` lines kept: at most ``capacity``, within the byte limit."""
        wanted = min(count, self._capacity)
        kept: list[bytes] = []
        size = 0
        for lines, _ in reversed(self._blocks or ()):
            for line in reversed(lines):
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

    def _add(self, lines: list[bytes]) -> None:
        limit = self._line_limit
        if max(map(len, lines)) > limit:
            lines = [
                line[start : start + limit]
                for line in lines
                for start in range(0, max(len(line), 1), limit)
            ]
        blocks = self._blocks
        if blocks is None:
            blocks = self._blocks = deque()
        cost = sum(map(len, lines)) + LINE_OVERHEAD * len(lines)
        blocks.append((lines, cost))
        self._count += len(lines)
        self._bytes += cost
        # A block goes once the blocks after it hold enough lines or bytes for any tail.
        while len(blocks) > 1 and (
            self._count - len(blocks[0][0]) >= self._capacity
            or self._bytes - blocks[0][1] >= self._byte_limit
        ):
            old, old_cost = blocks.popleft()
            self._count -= len(old)
            self._bytes -= old_cost
        if self.followers:
            for follower in list(self.followers):
                follower(lines)


_NO_FOLLOWERS: set[Callable[[list[bytes]], None]] = set()  # shared, never added to
