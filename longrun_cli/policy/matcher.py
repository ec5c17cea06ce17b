"""Which failed attempts a rule calls transient: exit codes, stderr, signals, timeout, health."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.outcome import Outcome
from longrun_cli.policy.signals import signal_name


class MatchKind(IntEnum):
    """Rule families in the order SPEC §3 checks them: lower values are tried first."""

    TIMEOUT = 0
    UNHEALTHY = 1
    SIGNAL = 2
    STDERR = 3
    EXIT_CODE = 4


@dataclass(frozen=True)
class Matcher:
    """Conditions a failed attempt must all meet; unset conditions are ignored."""

    exit_codes: frozenset[int] | None = None
    stderr: str | None = None
    signals: frozenset[int] | None = None
    timeout: bool = False
    unhealthy: bool = False  # the attempt was stopped because its liveness probe failed

    def __post_init__(self) -> None:
        if self.timeout and self.unhealthy:
            raise SpecError("a rule matches timeout or unhealthy, not both")
        if (self.timeout or self.unhealthy) and (self.exit_codes or self.stderr or self.signals):
            kind = "timeout" if self.timeout else "unhealthy"
            raise SpecError(f"a {kind} rule cannot also match exit codes, stderr or signals")
        if not (
            self.timeout
            or self.unhealthy
            or self.exit_codes
            or self.stderr is not None
            or self.signals
        ):
            raise SpecError(
                "a retry rule needs exit codes, a stderr regex, signals, timeout or unhealthy"
            )

    @property
    def kind(self) -> MatchKind:
        if self.timeout:
            return MatchKind.TIMEOUT
        if self.unhealthy:
            return MatchKind.UNHEALTHY
        if self.signals:
            return MatchKind.SIGNAL
        if self.stderr is not None:
            return MatchKind.STDERR
        return MatchKind.EXIT_CODE

    def matches(self, outcome: Outcome) -> bool:
        """True when this failed ``outcome`` meets every condition of the matcher."""
        if outcome.spawn_error is not None:
            return False
        if outcome.timed_out or self.timeout:
            # A timed-out attempt is a failure of kind timeout, and nothing else.
            return outcome.timed_out and self.timeout
        if outcome.unhealthy is not None or self.unhealthy:
            # Likewise for an attempt stopped by its failing liveness probe.
            return outcome.unhealthy is not None and self.unhealthy
        if self.signals is not None and outcome.signal not in self.signals:
            return False
        if self.exit_codes is not None and outcome.exit_code not in self.exit_codes:
            return False
        return self.stderr is None or self.stderr in outcome.stderr_hits

    def describe(self) -> str:
        parts: list[str] = []
        if self.timeout:
            parts.append("timeout")
        if self.unhealthy:
            parts.append("unhealthy")
        if self.signals:
            parts.append("signal " + ",".join(signal_name(s) for s in sorted(self.signals)))
        if self.stderr is not None:
            parts.append(f"stderr /{self.stderr}/")
        if self.exit_codes:
            parts.append("exit " + format_codes(self.exit_codes))
        return " and ".join(parts)


def format_codes(codes: frozenset[int]) -> str:
    """``{64, 65, 66, 75}`` → ``64-66,75``."""
    ordered = sorted(codes)
    spans: list[str] = []
    start = prev = ordered[0]
    for code in [*ordered[1:], None]:
        if code is not None and code == prev + 1:
            prev = code
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if code is not None:
            start = prev = code
    return ",".join(spans)


def compile_pattern(pattern: str) -> Any:
    """Compile a stderr regex with RE2, whose matching time is linear in the input.

    RE2 is imported here, not at start-up, because only stderr rules need it.
    """
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        # (?m): ^ and $ match at line boundaries, so one search covers many lines;
        # a bytes pattern searches raw output without decoding it first.
        return re2.compile(b"(?m)" + pattern.encode("utf-8", "surrogateescape"), options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else exc
        detail = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        # RE2 quotes the pattern back, raw: keep the message on one line.
        detail = detail.replace("\n", "\\n").replace("\r", "\\r")
        raise SpecError(
            f"invalid regex {quote(pattern)}: {detail} (longrun uses the linear-time RE2 syntax: "
            "no backreferences or lookaround)"
        ) from None
