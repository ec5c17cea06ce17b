"""Cron schedules (pure): parsing and fire times, through cronsim; time is always passed in.

cronsim (by the author of healthchecks.io) rather than croniter: it is small, has no
dependencies, is actively maintained, and follows Debian cron on DST — a job at a
time that a spring-forward skips runs at the first minute that exists, and one in
the repeated hour of a fall-back runs once. It does not know the ``@hourly``
family, which are spelled out here as cron(8) defines them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, tzinfo
from typing import NamedTuple

from longrun_cli.policy.errors import SpecError, quote

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
ZONE_PREFIX = "CRON_TZ="
MAX_MISSED = 10_000  # fire times counted as skipped at most (a machine asleep for years)


class Schedule(NamedTuple):
    """A five-field cron expression in a time zone (``zone_name`` None: local time)."""

    text: str  # as the user wrote it, for messages and plans
    expression: str  # five fields, aliases spelled out
    zone_name: str | None
    zone: tzinfo


def parse_schedule(text: str, zone_name: str | None, local: tzinfo) -> Schedule:
    """``text``: five fields or an @alias, optionally after ``CRON_TZ=Zone``.

    ``zone_name`` (--timezone) applies unless the text names its own zone; ``local``
    is the zone used when neither does.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    expression = text.strip()
    if expression.startswith(ZONE_PREFIX):
        named, _, expression = expression[len(ZONE_PREFIX) :].partition(" ")
        zone_name, expression = named, expression.strip()
    expression = ALIASES.get(expression.lower(), expression)
    if len(expression.split()) != 5:
        raise SpecError(
            f"schedule {quote(text)}: expected five fields (minute hour day month weekday) "
            "or @hourly, @daily, @weekly, @monthly, @yearly"
        )
    zone = local
    if zone_name is not None:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SpecError(f"unknown time zone {quote(zone_name)}") from None
    from cronsim import CronSim, CronSimError

    try:
        CronSim(expression, datetime(2026, 1, 1, tzinfo=zone))
    except CronSimError as exc:
        raise SpecError(f"schedule {quote(text)}: {str(exc).lower()}") from None
    return Schedule(text.strip(), expression, zone_name, zone)


def fire_times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Every fire time strictly after ``after`` (an aware datetime), in the schedule's zone."""
    from cronsim import CronSim

    return iter(CronSim(schedule.expression, after.astimezone(schedule.zone)))


def next_fire(schedule: Schedule, now: datetime) -> datetime:
    """The first fire time strictly after ``now``."""
    return next(fire_times(schedule, now))


def missed_between(
    schedule: Schedule, last: datetime, now: datetime
) -> tuple[int, datetime | None]:
    """How many fire times fell in (last, now], and the first of them."""
    count, first = 0, None
    for fire in fire_times(schedule, last):
        if fire > now or count >= MAX_MISSED:
            break
        first = first or fire
        count += 1
    return count, first
