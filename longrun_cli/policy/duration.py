"""Go-style durations as integer nanoseconds: parsing and Go's formatting."""

from __future__ import annotations

from longrun_cli.policy.errors import SpecError, quote

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
# Go's time.Duration is an int64: the longest delay it can express.
MAX_DURATION = 2**63 - 1

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,
    "μs": MICROSECOND,
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_DIGITS = "0123456789"


def parse_duration(text: str) -> int:
    """Parse ``250ms``, ``1m30s``, ``1.5h`` or a bare number of seconds into nanoseconds."""
    value = text.strip()
    if not value:
        raise SpecError(f"invalid duration {quote(text)}: empty")
    if value.startswith(("-", "+")):
        if value.startswith("-") and value.lstrip("-") not in ("0", ""):
            raise SpecError(f"invalid duration {quote(text)}: must not be negative")
        value = value[1:]
    total = _scaled(value, SECOND, text) if _is_number(value) else _sum_of_units(value, text)
    if total == 0 and any(digit in value for digit in "123456789"):
        # 0.0000000001s is not 0: it is below what longrun can measure.
        raise SpecError(f"invalid duration {quote(text)}: shorter than 1ns, the smallest duration")
    return total


def _sum_of_units(value: str, text: str) -> int:
    total = 0
    pos = 0
    while pos < len(value):
        start = pos
        while pos < len(value) and (value[pos] in _DIGITS or value[pos] == "."):
            pos += 1
        number = value[start:pos]
        if not _is_number(number):
            raise SpecError(
                f"invalid duration {quote(text)}: expected a number at {quote(value[start:])}"
            )
        unit_start = pos
        while pos < len(value) and value[pos] not in _DIGITS and value[pos] != ".":
            pos += 1
        unit = value[unit_start:pos]
        if unit not in _UNITS:
            hint = "missing unit" if not unit else f"unknown unit {quote(unit)}"
            raise SpecError(
                f"invalid duration {quote(text)}: {hint} (use ns, us, ms, s, m or h, e.g. 1m30s)"
            )
        total += _scaled(number, _UNITS[unit], text)
        if total > MAX_DURATION:
            raise SpecError(f"invalid duration {quote(text)}: too large")
    return total


_MAX_DIGITS = 20  # MAX_DURATION in nanoseconds has 19


def _is_number(text: str) -> bool:
    if not text or text == "." or text.count(".") > 1:
        return False
    return all(ch in _DIGITS or ch == "." for ch in text)


def _scaled(number: str, unit: int, original: str) -> int:
    whole, _, frac = number.partition(".")
    whole = whole.lstrip("0")
    if len(whole) > _MAX_DIGITS:  # also keeps int() far from Python's 4,300-digit limit
        raise SpecError(f"invalid duration {quote(original)}: too large")
    # Digits past the 20th change the result by less than a nanosecond.
    frac = frac[:_MAX_DIGITS]
    nanos = int(whole or "0") * unit
    if frac:
        # Integer arithmetic keeps 0.1s exactly 100ms, as Go does.
        nanos += int(frac) * unit // 10 ** len(frac)
    if nanos > MAX_DURATION:
        raise SpecError(f"invalid duration {quote(original)}: too large")
    return nanos


def format_duration(nanos: int) -> str:
    """Format nanoseconds exactly as Go's ``time.Duration.String`` does."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < SECOND:
        for unit_name, unit in (("ms", MILLISECOND), ("µs", MICROSECOND), ("ns", NANOSECOND)):
            if nanos >= unit:
                return sign + _fraction(nanos, unit) + unit_name
    hours, rest = divmod(nanos, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    seconds = _fraction(rest, SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _fraction(nanos: int, unit: int) -> str:
    whole, frac = divmod(nanos, unit)
    if not frac:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(width, '0').rstrip('0')}"


def to_seconds(nanos: int) -> float:
    """Nanoseconds as float seconds, the unit asyncio and clocks work in."""
    return nanos / SECOND
