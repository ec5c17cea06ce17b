"""The ring of a task's last lines against a simple reference, for any chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.engine.logring import LogRing

chunks = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.binary(max_size=40).map(lambda b: b.replace(b"\r", b""))),
    max_size=30,
)


def reference(pieces: list[tuple[int, bytes]], capacity: int, limit: int) -> list[bytes]:
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
    return cut[-capacity:]


@given(chunks, st.integers(min_value=1, max_value=8), st.integers(min_value=4, max_value=64))
def test_the_ring_keeps_the_last_lines_of_any_chunking(pieces, capacity, limit):
    ring = LogRing(capacity, line_limit=limit)
    for stream, chunk in pieces:
        ring.feed(stream, chunk)
    ring.end(1)
    ring.end(2)
    assert ring.tail(capacity) == reference(pieces, capacity, limit)


def test_followers_get_each_complete_line_once():
    ring = LogRing(10)
    got: list[bytes] = []
    ring.followers.add(got.extend)
    ring.feed(1, b"one\ntw")
    ring.feed(2, b"err\n")
    ring.feed(1, b"o\n")
    assert got == [b"one", b"err", b"two"]
    assert ring.tail(2) == [b"err", b"two"]
    assert ring.tail(0) == []
