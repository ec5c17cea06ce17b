"""Exponential backoff: ``delay = initial × multiplier^attempt``, capped, never overflowing."""

from __future__ import annotations

import math
from dataclasses import dataclass

from longrun_cli.policy.duration import MAX_DURATION, SECOND, format_duration
from longrun_cli.policy.errors import SpecError


@dataclass(frozen=True)
class Backoff:
    """One rule's backoff curve; all durations in nanoseconds, ``max_delay == 0`` means no cap."""

    initial: int = SECOND
    max_delay: int = 30 * SECOND
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0:
            raise SpecError(
                f"backoff initial delay must be > 0, got {format_duration(self.initial)}"
            )
        if not (self.multiplier > 0 and math.isfinite(self.multiplier)):
            raise SpecError(
                f"backoff multiplier must be a finite number > 0, got {self.multiplier}"
            )
        if self.max_delay < 0:
            raise SpecError("backoff max delay must not be negative")
        if 0 < self.max_delay < self.initial:
            raise SpecError(
                f"backoff max {format_duration(self.max_delay)} is below "
                f"initial {format_duration(self.initial)}"
            )

    def delay(self, attempt: int) -> int:
        """Delay before retry number ``attempt`` (0-based within the rule's streak)."""
        return backoff_delay(self.initial, self.max_delay, self.multiplier, attempt)

    def schedule(self, retries: int) -> list[int]:
        """The first ``retries`` delays, as ``--dry-run`` shows them."""
        return [self.delay(attempt) for attempt in range(retries)]

    def describe(self) -> str:
        cap = format_duration(self.max_delay) if self.max_delay else "0"
        return f"{format_duration(self.initial)},{cap},{format_multiplier(self.multiplier)}"


def format_multiplier(value: float) -> str:
    """The shortest text that parses back to ``value``: ``2``, ``1.5``, ``1e-06``."""
    text = repr(value)
    return text.removesuffix(".0")


def backoff_delay(initial: int, max_delay: int, multiplier: float, attempt: int) -> int:
    """Pure backoff arithmetic in nanoseconds: caps at ``max_delay`` and clamps on overflow."""
    try:
        raw = initial * multiplier**attempt
    except OverflowError:
        raw = math.inf
    if max_delay > 0 and raw > max_delay:
        return max_delay
    if raw >= MAX_DURATION:
        return MAX_DURATION
    return int(raw)


def jittered(delay: int, ratio: float, uniform01: float) -> int:
    """Draw a delay from ``[delay × (1 − ratio), delay]`` given a uniform sample in [0, 1)."""
    if ratio <= 0:
        return delay
    low = delay * (1.0 - ratio)
    return min(delay, max(0, int(low + (delay - low) * uniform01)))
