"""The circuit breaker of an interval or scheduled task (pure): when it opens, for how long.

Where such a task would end (a permanent failure, a retry budget spent), the
circuit opens instead: no runs for the cooldown, then one trial run. Success
closes it (and every budget starts over); failure reopens it with the cooldown
doubled, up to the maximum.
"""

from __future__ import annotations

from typing import NamedTuple

from longrun_cli.policy.duration import HOUR, format_duration, parse_duration
from longrun_cli.policy.errors import SpecError, quote


class Breaker(NamedTuple):
    cooldown: int  # nanoseconds before the first trial
    max_cooldown: int = HOUR

    def cooldown_after(self, openings: int) -> int:
        """The cooldown of the ``openings``-th opening in a row (1: the first)."""
        cooldown = self.cooldown
        for _ in range(max(0, openings - 1)):
            cooldown *= 2
            if cooldown >= self.max_cooldown:
                return self.max_cooldown
        return min(cooldown, self.max_cooldown)

    def describe(self) -> str:
        return (
            f"open for {format_duration(self.cooldown)} (doubling up to "
            f"{format_duration(self.max_cooldown)}), then one trial run"
        )


def parse_breaker(text: str) -> Breaker:
    """``COOLDOWN[,MAX]``, e.g. ``30s`` or ``1m,2h``."""
    first, comma, second = text.partition(",")
    try:
        cooldown = parse_duration(first.strip())
        maximum = parse_duration(second.strip()) if comma else max(HOUR, cooldown)
    except SpecError as exc:
        raise SpecError(f"--circuit-breaker {quote(text)}: {exc}") from None
    if cooldown <= 0 or maximum < cooldown:
        raise SpecError(
            f"--circuit-breaker {quote(text)}: expected COOLDOWN[,MAX] with 0 < COOLDOWN <= MAX"
        )
    return Breaker(cooldown, maximum)
