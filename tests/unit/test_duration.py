"""Go-style durations: parsing, formatting and rejection of bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.policy.duration import (
    MAX_DURATION,
    MILLISECOND,
    MINUTE,
    SECOND,
    format_duration,
    parse_duration,
)
from longrun_cli.policy.errors import SpecError


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("250ms", 250 * MILLISECOND),
        ("2s", 2 * SECOND),
        ("1m30s", 90 * SECOND),
        ("1.5h", 90 * MINUTE),
        ("1us", 1_000),
        ("1µs", 1_000),
        ("10ns", 10),
        ("5", 5 * SECOND),
        ("0.1", 100 * MILLISECOND),
        ("0", 0),
        (".5s", 500 * MILLISECOND),
        ("1h2m3s4ms", 3_723_004 * MILLISECOND),
        (" 3s ", 3 * SECOND),
    ],
)
def test_parses_go_durations_and_bare_seconds(text, nanos):
    """Go syntax and bare numbers of seconds parse to exact nanoseconds."""
    assert parse_duration(text) == nanos


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-1s", "negative"),
        ("5x", "unknown unit 'x'"),
        ("", "empty"),
        ("1..2s", "expected a number"),
        ("s", "expected a number"),
        ("1s2", "missing unit"),
        ("99999999999h", "too large"),
        ("abc", "'abc'"),
    ],
)
def test_rejects_malformed_durations_naming_the_value(text, fragment):
    """Bad durations raise SpecError whose message names the value and the problem."""
    with pytest.raises(SpecError, match="invalid duration") as info:
        parse_duration(text)
    assert fragment in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (250 * MILLISECOND, "250ms"),
        (2 * SECOND, "2s"),
        (60 * SECOND, "1m0s"),
        (90 * MINUTE, "1h30m0s"),
        (1_500 * MILLISECOND, "1.5s"),
    ],
)
def test_formats_like_go(nanos, text):
    """format_duration matches Go's time.Duration.String."""
    assert format_duration(nanos) == text


@given(st.integers(min_value=0, max_value=MAX_DURATION))
def test_format_then_parse_round_trips(nanos):
    """Every duration Go can print parses back to the same value."""
    assert parse_duration(format_duration(nanos)) == nanos


@given(st.text(max_size=30))
def test_random_input_parses_or_raises_spec_error(text):
    """Arbitrary input never raises anything but the clear SpecError."""
    try:
        assert parse_duration(text) >= 0
    except SpecError as exc:
        assert "invalid duration" in str(exc)
