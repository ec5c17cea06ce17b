"""The ring of a task's last lines against a simple reference, for any chunking."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.engine import logring
from longrun_cli.engine.logring import LINE_OVERHEAD, LogRing, bytes_per_task

# Any bytes, and chunks rich in newlines (random bytes rarely hold one).
texts = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"")),
    st.lists(st.sampled_from([b"\n", b"a", b"bcd", b"\xff"]), max_size=20).map(b"".join),
)
chunks = st.lists(st.tuples(st.sampled_from([1, 2]), texts), max_size=30)


def reference(
    pieces: list[tuple[int, bytes]], capacity: int, limit: int, byte_limit: int = 10**9
) -> list[bytes]:
    """Each stream's text cut at newlines; a line is complete at its newline (or at the end)."""
    partial = {1: b"", 2: b""}
    lines: list[bytes] = []
    for stream, chunk in pieces:
        partial[stream] += chunk
        while b"\n" in partial[stream] or len(partial[stream]) >= limit:
            head, sep, rest = partial[stream].partition(b"\n")
            if not sep and len(head) >= limit:
                lines.append(head)
                partial[stream] = b""
                continue
            if not sep:
                break
            lines.append(head)
            partial[stream] = rest
    for stream in (1, 2):
        if partial[stream]:
            lines.append(partial[stream])
    cut = [line[i : i + limit] for line in lines for i in range(0, max(len(line), 1), limit)]
    # The longest run of last lines within both bounds (one line is always kept).
    kept: list[bytes] = []
    size = 0
    for line in reversed(cut):
        cost = len(line) + LINE_OVERHEAD
        if len(kept) == capacity or (kept and size + cost > byte_limit):
            break
        kept.insert(0, line)
        size += cost
    return kept


@given(
    chunks,
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=4, max_value=64),
    st.integers(min_value=1, max_value=400),
    st.booleans(),
    st.sampled_from([16, logring.SOFT_BYTES]),
)
def test_the_ring_keeps_the_last_lines_of_any_chunking(
    pieces, capacity, limit, byte_limit, told, soft
):
    """Whether the ring counts a chunk's lines itself or is told (the framer's count), and
    whether it drops old chunks at once (a soft limit of 16 bytes) or after 1 MiB."""
    with patch.object(logring, "SOFT_BYTES", soft):
        ring = LogRing(capacity, line_limit=limit, byte_limit=byte_limit)
        for stream, chunk in pieces:
            ring.feed(stream, chunk, chunk.count(b"\n") if told else -1)
        ring.end(1)
        ring.end(2)
    assert ring.tail(capacity) == reference(pieces, capacity, limit, byte_limit)


def test_a_big_group_shares_out_a_bounded_budget():
    assert bytes_per_task(2000) * 2000 <= 64 * 1024 * 1024
    assert bytes_per_task(1) == 64 * 1024 * 1024
    assert bytes_per_task(100_000) == 16 * 1024


def test_followers_get_each_complete_line_once():
    ring = LogRing(10)
    got: list[bytes] = []
    ring.follow(got.extend)
    ring.feed(1, b"one\ntw")
    ring.feed(2, b"err\n")
    ring.feed(1, b"o\n")
    assert got == [b"one", b"err", b"two"]
    assert ring.tail(2) == [b"err", b"two"]
    assert ring.tail(0) == []


def test_a_chatty_task_keeps_little_and_counts_little():
    """64 MiB of 70-byte lines in 64 KiB chunks: the ring holds about SOFT_BYTES, and
    its tail is still the last 1,000 lines."""
    line = b"x" * 69 + b"\n"
    chunk = line * (65536 // 70) + b"x" * 30
    ring = LogRing(1000, byte_limit=64 * 1024 * 1024)
    for _ in range(1024):
        ring.feed(1, chunk)
    assert ring._bytes <= logring.SOFT_BYTES + 2 * len(chunk)
    tail = ring.tail(1000)
    assert len(tail) == 1000
    assert set(tail) <= {b"x" * 69, b"x" * 30 + b"x" * 69}
