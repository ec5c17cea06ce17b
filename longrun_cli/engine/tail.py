"""The last lines of an attempt's stderr, for ``--on-failure`` (pure: fed chunks, no IO).

Only the last ``limit`` bytes are ever kept, so a command that writes gigabytes
costs nothing more; the lines are cut out when asked for.
"""

from __future__ import annotations

TAIL_LINES = 50
TAIL_BYTES = 64 * 1024


class StderrTail:
    __slots__ = ("_data", "_limit")

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self._data = bytearray()
        self._limit = limit

    def feed(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > 2 * self._limit:  # trim now and then, not on every chunk
            del self._data[: -self._limit]

    def lines(self, count: int = TAIL_LINES) -> bytes:
        """The last ``count`` lines (a partial last line included), at most ``limit`` bytes."""
        data = bytes(self._data[-self._limit :])
        if not data:
            return b""
        body = data[:-1] if data.endswith(b"\n") else data
        kept = body.split(b"\n")[-count:]
        return b"\n".join(kept) + b"\n"
