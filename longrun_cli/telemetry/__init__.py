"""Telemetry behind a small interface: tracing (OpenTelemetry) and systemd notification.

The engine talks to ``Tracer``/``TaskTrace``/``AttemptTrace``; with nothing
configured it gets the no-op versions below and OpenTelemetry is never imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: a Protocol class costs ~0.3 M instructions to build

    class AttemptTrace(Protocol):
        def child_env(self) -> dict[str, str]:
            """Variables that carry this attempt's context into the command (TRACEPARENT)."""
            ...

        def log_ids(self) -> tuple[tuple[str, object], ...]:
            """``trace_id``/``span_id`` fields for log lines about this attempt."""
            ...

        def finish(
            self,
            *,
            decision: str,
            exit_code: int | None,
            signal: int | None,
            rule: str | None,
            delay_seconds: float | None,
            error: str | None,
            pid: int | None,
        ) -> None: ...


if TYPE_CHECKING:  # types only: a Protocol class costs ~0.3 M instructions to build

    class TaskTrace(Protocol):
        def attempt(self, run: int, attempt: int, argv: Sequence[str]) -> AttemptTrace: ...

        def log_ids(self) -> tuple[tuple[str, object], ...]: ...

        def event(self, name: str, **attributes: str | int | float) -> None:
            """A moment in the task's life (the circuit breaker opening, closing)."""
            ...

        def finish(self, status: str, exit_status: int, error: str | None) -> None: ...


if TYPE_CHECKING:  # types only: a Protocol class costs ~0.3 M instructions to build

    class Tracer(Protocol):
        def task(self, name: str, argv: Sequence[str]) -> TaskTrace: ...

        def group(self, tasks: Sequence[str]) -> GroupTrace: ...

        def flush(self) -> str | None:
            """Send everything, within a bounded time; returns a warning if it could not."""
            ...


if TYPE_CHECKING:  # types only: a Protocol class costs ~0.3 M instructions to build

    class GroupTrace(Protocol):
        def task(self, name: str, argv: Sequence[str]) -> TaskTrace: ...

        def finish(self, exit_status: int, first_failure: str | None) -> None: ...


class _NoAttempt:
    def child_env(self) -> dict[str, str]:
        return {}

    def log_ids(self) -> tuple[tuple[str, object], ...]:
        return ()

    def finish(self, **_fields: object) -> None:
        pass


class _NoTask:
    def attempt(self, run: int, attempt: int, argv: Sequence[str]) -> AttemptTrace:
        return NO_ATTEMPT

    def log_ids(self) -> tuple[tuple[str, object], ...]:
        return ()

    def event(self, name: str, **attributes: str | int | float) -> None:
        pass

    def finish(self, status: str, exit_status: int, error: str | None) -> None:
        pass


class _NoGroup:
    def task(self, name: str, argv: Sequence[str]) -> TaskTrace:
        return NO_TASK

    def finish(self, exit_status: int, first_failure: str | None) -> None:
        pass


class NoTracer:
    """Tracing off: every call does nothing."""

    def task(self, name: str, argv: Sequence[str]) -> TaskTrace:
        return NO_TASK

    def group(self, tasks: Sequence[str]) -> GroupTrace:
        return _NoGroup()

    def flush(self) -> str | None:
        return None


NO_ATTEMPT = _NoAttempt()
NO_TASK = _NoTask()


def tracing_configured(environ: Mapping[str, str]) -> bool:
    """Whether the standard OTEL_* variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracer_from_environment(environ: Mapping[str, str]) -> tuple[Tracer, list[str]]:
    """An OpenTelemetry tracer when OTEL_* asks for one, else the no-op (nothing imported);
    with metrics asked for (OTEL_METRICS_EXPORTER), wrapped to record them too.

    Also the warnings to log. A telemetry problem (a malformed OTEL_* value the SDK
    refuses) is a warning and no telemetry, never a command that does not run.
    """
    tracer: Tracer = NoTracer()
    warnings: list[str] = []
    if tracing_configured(environ):
        try:
            # The SDK reads some OTEL_* values as it is imported.
            from longrun_cli.telemetry.otel import OtelTracer

            otel = OtelTracer.from_environment(environ)
            tracer, warnings = otel, list(otel.warnings)
        except Exception as exc:
            warnings = [f"tracing off: {exc}"]
    if _metrics_asked(environ):
        try:
            from longrun_cli.telemetry.metrics import metered, metrics_exporter

            exporter = metrics_exporter(environ)
            if exporter is not None:
                tracer, more = metered(tracer, exporter, environ)
                warnings += more
        except Exception as exc:
            warnings.append(f"metrics off: {exc}")
    return tracer, warnings


def _metrics_asked(environ: Mapping[str, str]) -> bool:
    """Metrics only when OTEL_METRICS_EXPORTER names an exporter: unlike the SDK's default
    (otlp), an endpoint set for spans alone does not start sending metrics too."""
    return bool(environ.get("OTEL_METRICS_EXPORTER", "").strip())
