"""The group prefixer against a per-line reference, and the destination's turn-taking."""

from __future__ import annotations

import asyncio
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from longrun_cli.engine.destination import Destination
from longrun_cli.engine.framing import LineFramer

PREFIX = b"web | "
# Lines from the alphabet that matters: newlines, carriage returns, plain bytes.
streams = st.lists(st.sampled_from([b"\n", b"\r", b"a", b"bc", b"\xff"]), max_size=200).map(
    b"".join
)


def reference(data: bytes, prefix: bytes) -> bytes:
    """One line at a time: the prefix, the line, a newline (the last one completed)."""
    if not data:
        return b""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join(prefix + line + b"\n" for line in lines)


def fed(framer: LineFramer, chunk: bytes) -> bytes:
    """What the framer gives for ``chunk``, its pieces as one writev writes them."""
    return b"".join(framer.feed(chunk))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(streams, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_chunking_gives_the_reference_lines(data, cuts):
    """Random chunkings of random output give exactly the lines of a per-line prefixer."""
    framer = LineFramer(PREFIX, cap=16)
    out = b""
    for chunk in chunked(data, cuts):
        out += fed(framer, chunk)
        # Told to the log ring, which then never counts: it must be exact.
        assert framer.newlines == chunk.count(b"\n")
    out += framer.cut()
    assert out == reference(data, PREFIX)


@given(streams, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_timestamps_begin_every_line_and_take_nothing_away(data, cuts):
    """--timestamps: each line starts with a stamp; without the stamps, the reference lines."""
    clock = iter(range(10**6))
    framer = LineFramer(PREFIX, cap=16, stamp=lambda: b"<%06d> " % next(clock))
    out = b"".join(fed(framer, chunk) for chunk in chunked(data, cuts)) + framer.cut()
    lines = out.split(b"\n")[:-1] if out else []
    assert all(re.match(rb"<\d{6}> web \| ", line) for line in lines)
    assert re.sub(rb"<\d{6}> ", b"", out) == reference(data, PREFIX)
    stamps = [int(line[1:7]) for line in lines]
    assert stamps == sorted(stamps)  # a line is never stamped before the one above it


@given(streams, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_without_a_prefix_the_bytes_pass_unchanged(data, cuts):
    """--no-prefix: the same bytes, with only the missing last newline added."""
    framer = LineFramer(b"", cap=16)
    out = b"".join(fed(framer, chunk) for chunk in chunked(data, cuts)) + framer.cut()
    assert out == (data if data.endswith(b"\n") or not data else data + b"\n")


@given(
    st.lists(st.tuples(streams, st.booleans()), max_size=20),
)
def test_cuts_end_lines_without_losing_or_unprefixing_a_byte(pieces):
    """Idle cuts anywhere: every output line starts with the prefix and no byte is lost."""
    framer = LineFramer(PREFIX, cap=16)
    out = b""
    for data, cut in pieces:
        out += fed(framer, data)
        if cut:
            out += framer.cut()
    out += framer.cut()
    lines = out.split(b"\n")
    assert lines[-1] == b""
    assert all(line.startswith(PREFIX) for line in lines[:-1])
    original = b"".join(data for data, _ in pieces).replace(b"\n", b"")
    assert b"".join(line[len(PREFIX) :] for line in lines[:-1]) == original


def test_a_long_line_streams_after_the_cap_and_memory_stays_bounded():
    """Past the cap the line is written as it comes, behind one prefix."""
    framer = LineFramer(PREFIX, cap=8)
    assert fed(framer, b"0123") == b""
    assert fed(framer, b"456789") == PREFIX + b"0123456789"
    assert framer.streaming
    assert fed(framer, b"abc") == b"abc"
    assert fed(framer, b"d\nnext") == b"d\n"
    assert not framer.streaming
    assert framer.cut() == PREFIX + b"next\n"


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans(), st.booleans()), max_size=16))
def test_others_wait_while_a_line_is_open_and_keep_their_order(puts):
    """Another writer's pieces wait for an open line to end; each writer's order is kept,
    whether a piece comes as bytes or as the framer's list of bytes and views."""
    read_fd, write_fd = os.pipe()
    expected: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    async def main() -> None:
        destination = Destination(write_fd)
        for index, (writer, mid_line, split) in enumerate(puts):
            piece = f"{writer}{index}{'~' if mid_line else ';'}"
            expected[writer].append(piece)
            data = piece.encode()
            given_data: bytes | list[bytes | memoryview] = (
                [data[:1], memoryview(data)[1:]] if split else data
            )
            destination.put(given_data, writer, mid_line=mid_line)
        for writer in "abc":  # all end their lines
            destination.put(f"{writer}end;".encode(), writer)
            expected[writer].append(f"{writer}end;")
        await destination.written()

    asyncio.run(main())
    os.close(write_fd)
    written = os.read(read_fd, 1 << 16).decode()
    os.close(read_fd)
    pieces = re.findall(r"[abc](?:\d+|end)[~;]", written)
    assert "".join(pieces) == written
    for writer in "abc":
        assert [p for p in pieces if p[0] == writer] == expected[writer]
    owner = None
    for piece in pieces:
        assert owner in (None, piece[0]), written
        owner = piece[0] if piece.endswith("~") else None


def test_on_a_terminal_a_carriage_return_is_followed_by_the_prefix():
    """A progress bar redrawn with \\r keeps its task name on a terminal; CRLF is left alone."""
    framer = LineFramer(PREFIX, terminal=True)
    assert (
        fed(framer, b"10%\r20%\r30%\r\n")
        == PREFIX + b"10%\r" + PREFIX + b"20%\r" + PREFIX + b"30%\r\n"
    )
    assert fed(framer, b"50%\r60%") == b""
    assert framer.cut() == PREFIX + b"50%\r" + PREFIX + b"60%\n"


def test_off_a_terminal_carriage_returns_pass_unchanged():
    """Into a file or pipe the bytes stay as the task wrote them."""
    framer = LineFramer(PREFIX)
    assert fed(framer, b"10%\r20%\n") == PREFIX + b"10%\r20%\n"


@settings(deadline=None, max_examples=50)
@given(
    # Pieces of any size up to 9,000 bytes (random binary is rarely past 4 KiB), each
    # with bytes of its own so that a piece written twice or skipped shows.
    st.lists(
        st.builds(
            lambda size, seed: bytes((seed + i) % 251 for i in range(size)),
            st.integers(min_value=0, max_value=9000),
            st.integers(min_value=0, max_value=250),
        ),
        max_size=6,
    ),
    st.lists(st.integers(min_value=0, max_value=9000), max_size=6),
)
def test_pieces_arrive_whole_and_in_order_through_short_writes(pieces, views):
    """writev into a pipe that takes 4 KiB at a time (short writes): every byte, in order."""
    import fcntl
    import threading

    from longrun_cli.engine.streams import write_pieces

    given_pieces: list[bytes | memoryview] = [
        memoryview(piece)[: views[index]] if index < len(views) else piece
        for index, piece in enumerate(pieces)
    ]
    expected = b"".join(given_pieces)
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(write_fd, False)
    got = bytearray()

    def read() -> None:
        while chunk := os.read(read_fd, 1000):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert write_pieces(write_fd, given_pieces, len(expected)) == 0
    finally:
        os.close(write_fd)
        reader.join()
        os.close(read_fd)
    assert bytes(got) == expected


def test_pieces_report_a_full_disk_and_a_gone_reader():
    import errno

    from longrun_cli.engine.streams import write_pieces

    full = os.open("/dev/full", os.O_WRONLY)
    try:
        assert write_pieces(full, [b"a", memoryview(b"bc")], 3) == errno.ENOSPC
    finally:
        os.close(full)
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        assert write_pieces(write_fd, [b"a", b"b"], 2) == errno.EPIPE
    finally:
        os.close(write_fd)
