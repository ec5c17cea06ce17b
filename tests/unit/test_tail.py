"""The stderr tail against a reference: the last lines of everything written, bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.engine.tail import StderrTail

chunks = st.lists(st.sampled_from([b"\n", b"a", b"bc\n", b"x" * 40, b"\xff\n"]), max_size=80)


def reference(data: bytes, count: int, limit: int) -> bytes:
    kept = data[-limit:]
    if not kept:
        return b""
    body = kept[:-1] if kept.endswith(b"\n") else kept
    return b"\n".join(body.split(b"\n")[-count:]) + b"\n"


@given(chunks, st.integers(1, 60), st.integers(1, 200))
def test_the_tail_is_the_last_lines_of_the_last_bytes(pieces, count, limit):
    tail = StderrTail(limit)
    for chunk in pieces:
        tail.feed(chunk)
    out = tail.lines(count)
    assert out == reference(b"".join(pieces), count, limit)
    assert len(out) <= limit + 1


def test_a_flood_keeps_memory_bounded():
    tail = StderrTail(1024)
    for _ in range(10_000):
        tail.feed(b"y" * 100 + b"\n")
    assert len(tail._data) <= 2 * 1024 + 101
    assert tail.lines(3) == (b"y" * 100 + b"\n") * 3
