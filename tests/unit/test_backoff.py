"""Backoff arithmetic: formula, cap, overflow clamp and jitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.policy.backoff import Backoff, backoff_delay, jittered
from longrun_cli.policy.duration import MAX_DURATION, SECOND
from longrun_cli.policy.errors import SpecError


@pytest.mark.parametrize(("attempt", "seconds"), [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30)])
def test_default_backoff_doubles_up_to_the_cap(attempt, seconds):
    """1s,30s,2: 1s 2s 4s 8s 16s then capped at 30s."""
    assert Backoff().delay(attempt) == seconds * SECOND


def test_design_example_schedule():
    """2s,60s,3 gives 2s 6s 18s 54s 60s."""
    assert Backoff(2 * SECOND, 60 * SECOND, 3).schedule(5) == [
        s * SECOND for s in (2, 6, 18, 54, 60)
    ]


@pytest.mark.parametrize("attempt", [64, 1_000, 10_000, 10**9])
def test_uncapped_delay_clamps_instead_of_overflowing(attempt):
    """With no cap, huge attempts clamp to the largest duration, never raise."""
    assert backoff_delay(SECOND, 0, 2.0, attempt) == MAX_DURATION


def test_multiplier_one_is_constant():
    """Multiplier 1 keeps the delay constant."""
    assert Backoff(SECOND, 0, 1.0).schedule(4) == [SECOND] * 4


@pytest.mark.parametrize(
    ("initial", "cap", "multiplier", "message"),
    [
        (0, SECOND, 2.0, "initial delay must be > 0"),
        (SECOND, SECOND, 0.0, "multiplier"),
        (SECOND, SECOND, float("inf"), "multiplier"),
        (2 * SECOND, SECOND, 2.0, "below initial"),
    ],
)
def test_invalid_backoff_is_rejected(initial, cap, multiplier, message):
    """initial > 0, multiplier > 0 and MAX >= INITIAL are required."""
    with pytest.raises(SpecError, match=message):
        Backoff(initial, cap, multiplier)


@given(
    initial=st.integers(min_value=1, max_value=MAX_DURATION),
    cap=st.integers(min_value=0, max_value=MAX_DURATION),
    multiplier=st.floats(min_value=1e-6, max_value=1e6),
    attempt=st.integers(min_value=0, max_value=10**6),
)
def test_delay_is_always_a_bounded_duration(initial, cap, multiplier, attempt):
    """Any configuration yields 0 <= delay <= cap (or the max duration)."""
    delay = backoff_delay(initial, cap, multiplier, attempt)
    assert 0 <= delay <= (cap if cap else MAX_DURATION)


@given(
    delay=st.integers(min_value=0, max_value=MAX_DURATION),
    ratio=st.floats(min_value=0, max_value=1),
    sample=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_jitter_stays_within_its_window(delay, ratio, sample):
    """A jittered delay lies in [d×(1−ratio), d]."""
    value = jittered(delay, ratio, sample)
    # The lower bound is float arithmetic: allow its rounding error on huge delays.
    assert delay * (1 - ratio) * (1 - 1e-12) - 1 <= value <= delay


def test_zero_jitter_is_exact():
    """Jitter 0 (the default) returns the delay unchanged, as the Go package does."""
    assert jittered(5 * SECOND, 0.0, 0.99) == 5 * SECOND
