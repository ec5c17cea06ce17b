"""Probes as the command line writes them, and the liveness check built on one (pure).

``http:URL``, ``tcp:HOST:PORT``, ``stdout:REGEX``, ``stderr:REGEX``,
``output:REGEX`` or ``cmd:COMMAND`` (SPEC §10). A probe is the same value as a
group task's ``ready`` table (``ReadyProbe``); this module only reads the
one-string form and adds what a liveness check needs: how often, how long each
try may take, and how many failures in a row stop the attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longrun_cli.policy.duration import SECOND, format_duration
from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.group import ReadyProbe

# The spelling on the command line → the ReadyProbe field.
_KINDS = {
    "http": "http",
    "https": "http",
    "tcp": "tcp",
    "stdout": "stdout",
    "stderr": "stderr",
    "output": "output",
    "cmd": "command",
}
PROBE_SYNTAX = "http:URL, tcp:HOST:PORT, stdout:REGEX, stderr:REGEX, output:REGEX or cmd:COMMAND"

DEFAULT_HEALTH_INTERVAL = 10 * SECOND
DEFAULT_HEALTH_TIMEOUT = 5 * SECOND
DEFAULT_HEALTH_FAILURES = 3


def parse_probe(text: str, option: str) -> ReadyProbe:
    """One probe string → a ReadyProbe, or a SpecError naming ``option`` and the value."""
    kind, colon, value = text.partition(":")
    field = _KINDS.get(kind.strip().lower()) if colon else None
    if field is None or not value:
        raise SpecError(f"{option} {quote(text)}: expected {PROBE_SYNTAX}")
    if field == "http":
        # http://host/… is itself http:URL; http:host:8080/… is short for it.
        if value.startswith("//"):
            value = kind.strip().lower() + ":" + value
        elif value[:8].lower().startswith(("http://", "https://")):
            scheme, _, rest = value.partition(":")
            value = scheme.lower() + ":" + rest
        else:
            value = kind.strip().lower() + "://" + value
    if field in ("stdout", "stderr", "output"):
        from longrun_cli.policy.matcher import compile_pattern

        try:
            compile_pattern(value)
        except SpecError as exc:
            raise SpecError(f"{option}: {exc}") from None
    fields: dict[str, Any] = {field: value}
    try:
        return ReadyProbe(**fields)
    except SpecError as exc:
        detail = str(exc).removeprefix("ready http ").removeprefix("ready tcp ")
        raise SpecError(f"{option}: {detail}") from None


@dataclass(frozen=True)
class HealthCheck:
    """A liveness probe tried every ``interval`` while an attempt runs (each try bounded by
    ``timeout``); ``failures`` failed tries in a row stop the attempt as unhealthy.

    A regex probe passes when its line appeared since the last try: a heartbeat.
    """

    probe: ReadyProbe
    interval: int = DEFAULT_HEALTH_INTERVAL
    timeout: int = DEFAULT_HEALTH_TIMEOUT
    failures: int = DEFAULT_HEALTH_FAILURES

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise SpecError("health interval and timeout must be > 0")
        if self.failures < 1:
            raise SpecError(f"health failures must be >= 1, got {self.failures}")

    @property
    def is_heartbeat(self) -> bool:
        return self.probe.kind in ("stdout", "stderr", "output")

    def what(self) -> str:
        if self.is_heartbeat:
            return f"{self.probe.what()} within every {format_duration(self.interval)}"
        return self.probe.what()

    def describe(self) -> str:
        tries = "" if self.is_heartbeat else f", every {format_duration(self.interval)}"
        bound = "" if self.is_heartbeat else f" (each within {format_duration(self.timeout)})"
        return (
            f"{self.what()}{tries}{bound}; {self.failures} failure"
            f"{'' if self.failures == 1 else 's'} in a row stop the attempt"
        )


def parse_failures(text: str, option: str = "--health-failures") -> int:
    try:
        count = int(text.strip())
    except ValueError:
        raise SpecError(f"{option} {quote(text)}: expected a whole number >= 1") from None
    if count < 1:
        raise SpecError(f"{option} {quote(text)}: expected a whole number >= 1")
    return count


def probe_text(probe: ReadyProbe) -> str:
    """The one-string form ``parse_probe`` reads back (``--ready``, ``--health``)."""
    if probe.http is not None:
        return probe.http
    spelling = "cmd" if probe.kind == "command" else probe.kind
    return f"{spelling}:{getattr(probe, probe.kind)}"
