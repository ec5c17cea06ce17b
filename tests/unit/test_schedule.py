"""Cron schedules through cronsim: aliases, zones, DST and month ends, with time passed in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.schedule import (
    ALIASES,
    fire_times,
    missed_between,
    next_fire,
    parse_schedule,
)

BERLIN = ZoneInfo("Europe/Berlin")


def fires(text: str, start: datetime, count: int = 5, zone=None) -> list[str]:
    schedule = parse_schedule(text, zone, UTC)
    return [f.isoformat() for f in itertools.islice(fire_times(schedule, start), count)]


@given(
    st.integers(0, 59), st.integers(0, 23), st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1))
)
def test_a_daily_time_fires_once_a_day_at_that_time(minute, hour, start):
    schedule = parse_schedule(f"{minute} {hour} * * *", None, UTC)
    times = list(itertools.islice(fire_times(schedule, start.replace(tzinfo=UTC)), 4))
    assert all((t.hour, t.minute, t.second) == (hour, minute, 0) for t in times)
    assert times[0] > start.replace(tzinfo=UTC)
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(times))


@given(st.text(max_size=25))
def test_any_text_is_a_schedule_or_one_line_naming_it(text):
    try:
        parse_schedule(text, None, UTC)
    except SpecError as exc:
        assert "\n" not in str(exc)
        assert "schedule" in str(exc) or "time zone" in str(exc)


@pytest.mark.parametrize(("alias", "expanded"), sorted(ALIASES.items()))
def test_aliases_fire_as_their_five_fields(alias, expanded):
    start = datetime(2026, 5, 17, 13, 45, tzinfo=UTC)
    assert fires(alias, start) == fires(expanded, start)


def test_month_ends_and_leap_days():
    start = datetime(2026, 1, 15, tzinfo=UTC)
    assert fires("0 0 31 * *", start, 3) == [
        "2026-01-31T00:00:00+00:00",
        "2026-03-31T00:00:00+00:00",
        "2026-05-31T00:00:00+00:00",
    ]
    assert fires("0 12 29 2 *", start, 2) == [
        "2028-02-29T12:00:00+00:00",
        "2032-02-29T12:00:00+00:00",
    ]


def test_dst_spring_forward_runs_the_skipped_time_once_at_the_first_real_minute():
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29.
    start = datetime(2026, 3, 27, 12, tzinfo=UTC)
    assert fires("30 2 * * *", start, 3, zone="Europe/Berlin") == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_dst_fall_back_runs_the_repeated_time_once():
    # Europe/Berlin repeats 02:00-03:00 on 2026-10-25.
    start = datetime(2026, 10, 24, 12, tzinfo=UTC)
    times = fires("30 2 * * *", start, 3, zone="Europe/Berlin")
    assert times == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_cron_tz_prefix_wins_over_timezone_and_bad_zones_are_named():
    schedule = parse_schedule("CRON_TZ=Asia/Tokyo 0 9 * * *", "Europe/Berlin", UTC)
    assert schedule.zone_name == "Asia/Tokyo"
    first = next_fire(schedule, datetime(2025, 12, 31, 12, tzinfo=UTC))
    assert first.isoformat() == "2026-01-01T09:00:00+09:00"
    with pytest.raises(SpecError, match="unknown time zone 'Nowhere/Land'"):
        parse_schedule("@daily", "Nowhere/Land", UTC)
    with pytest.raises(SpecError, match="expected five fields"):
        parse_schedule("0 0 * * * *", None, UTC)  # six fields: seconds are not cron's


def test_missed_fire_times_are_counted_from_the_last_one():
    schedule = parse_schedule("*/5 * * * *", None, UTC)
    last = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert missed_between(schedule, last, datetime(2026, 1, 1, 0, 12, tzinfo=UTC)) == (
        1,
        datetime(2026, 1, 1, 0, 10, tzinfo=UTC),
    )
    assert missed_between(schedule, last, datetime(2026, 1, 1, 0, 9, tzinfo=UTC)) == (0, None)
