"""OpenTelemetry tracing: a span per run, per task and per invocation.

Imported only when OTEL_* variables ask for traces. Configuration comes from the
standard variables alone; a TRACEPARENT (and TRACESTATE) in longrun's environment
becomes the parent, and each invocation hands its own context to the command.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from longrun_cli import DISTRIBUTION, __version__

if TYPE_CHECKING:
    from longrun_cli.telemetry import AttemptTrace, GroupTrace, TaskTrace

# Opt-in: the full argv on every span. Off by default, because argv often carries
# secrets (--password=..., tokens) that must not travel to a collector.
FULL_ARGS_VARIABLE = "LONGRUN_TRACE_COMMAND_ARGS"


def command_attributes(argv: Sequence[str], *, full: bool) -> dict[str, Any]:
    """The executable's name always; the whole argv only when asked for."""
    attributes: dict[str, Any] = {"process.executable.name": os.path.basename(argv[0])}
    if full:
        attributes["process.command_args"] = list(argv)
    return attributes


# The most longrun waits for spans to leave on its way out.
FLUSH_BOUND_SECONDS = 5.0
_PROPAGATOR = TraceContextTextMapPropagator()


def _ids(span: Span) -> tuple[tuple[str, object], ...]:
    context = span.get_span_context()
    return (("trace_id", f"{context.trace_id:032x}"), ("span_id", f"{context.span_id:016x}"))


class _Attempt:
    def __init__(self, span: Span) -> None:
        self._span = span

    def child_env(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self._span))
        return {key.upper(): value for key, value in carrier.items()}

    def log_ids(self) -> tuple[tuple[str, object], ...]:
        return _ids(self._span)

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
    ) -> None:
        span = self._span
        span.set_attribute("longrun.decision", decision)
        if pid is not None:
            span.set_attribute("process.pid", pid)
        if exit_code is not None:
            span.set_attribute("process.exit.code", exit_code)
        if signal is not None:
            from longrun_cli.policy.signals import signal_name

            span.set_attribute("longrun.signal", signal_name(signal))
        if rule is not None:
            span.set_attribute("longrun.rule", rule)
        if delay_seconds is not None:
            span.set_attribute("longrun.retry.delay_s", delay_seconds)
            span.add_event(
                "retry scheduled",
                {"longrun.retry.delay_s": delay_seconds, "longrun.rule": rule or ""},
            )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()


class _Task:
    def __init__(self, tracer: trace.Tracer, span: Span, name: str, full_args: bool) -> None:
        self._tracer = tracer
        self._span = span
        self._name = name
        self._full_args = full_args
        self._context = trace.set_span_in_context(span)

    def attempt(self, run: int, attempt: int, argv: Sequence[str]) -> AttemptTrace:
        span = self._tracer.start_span(
            self._name,
            context=self._context,
            kind=SpanKind.INTERNAL,
            attributes={
                "longrun.task": self._name,
                "longrun.run": run,
                "longrun.attempt": attempt,
                **command_attributes(argv, full=self._full_args),
            },
        )
        return _Attempt(span)

    def log_ids(self) -> tuple[tuple[str, object], ...]:
        return _ids(self._span)

    def event(self, name: str, **attributes: str | int | float) -> None:
        self._span.add_event(name, attributes)

    def finish(self, status: str, exit_status: int, error: str | None) -> None:
        self._span.set_attribute("longrun.status", status)
        self._span.set_attribute("longrun.exit_status", exit_status)
        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()


class _Group:
    def __init__(self, owner: OtelTracer, span: Span) -> None:
        self._owner = owner
        self._span = span

    def task(self, name: str, argv: Sequence[str]) -> TaskTrace:
        return self._owner.task(name, argv, parent=trace.set_span_in_context(self._span))

    def finish(self, exit_status: int, first_failure: str | None) -> None:
        self._span.set_attribute("longrun.exit_status", exit_status)
        if first_failure is not None:
            self._span.set_attribute("longrun.first_failure", first_failure)
            self._span.set_status(Status(StatusCode.ERROR, f"task {first_failure} failed"))
        self._span.end()


class ExportProblems(logging.Handler):
    """Collects the SDK's complaints so they become one longrun warning, not raw log lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class OtelTracer:
    def __init__(self, provider: TracerProvider, parent: Context) -> None:
        self._problems = ExportProblems()
        sdk_logger = logging.getLogger("opentelemetry")
        sdk_logger.addHandler(self._problems)
        sdk_logger.propagate = False
        self._provider = provider
        self._tracer = provider.get_tracer("longrun", __version__)
        self._parent = parent
        self.full_args = False
        self.warnings: list[str] = []

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> OtelTracer:
        # shutdown_on_exit=False: an unreachable collector must not hold up exit;
        # flush() below bounds the wait instead.
        provider = TracerProvider(resource=resource_of(environ), shutdown_on_exit=False)
        warnings: list[str] = []
        for exporter_name in _exporters(environ):
            processor = _processor(exporter_name, environ, warnings)
            if processor is not None:
                provider.add_span_processor(processor)
        carrier = {
            key.lower(): environ[key] for key in ("TRACEPARENT", "TRACESTATE") if key in environ
        }
        tracer = cls(provider, _PROPAGATOR.extract(carrier))
        tracer.warnings = warnings
        tracer.full_args = environ.get(FULL_ARGS_VARIABLE, "").lower() in ("1", "true", "yes")
        return tracer

    def task(self, name: str, argv: Sequence[str], parent: Context | None = None) -> TaskTrace:
        span = self._tracer.start_span(
            f"task {name}",
            context=parent if parent is not None else self._parent,
            attributes={"longrun.task": name, **command_attributes(argv, full=self.full_args)},
        )
        return _Task(self._tracer, span, name, self.full_args)

    def group(self, tasks: Sequence[str]) -> GroupTrace:
        span = self._tracer.start_span(
            "longrun group", context=self._parent, attributes={"longrun.tasks": list(tasks)}
        )
        return _Group(self, span)

    def flush(self) -> str | None:
        try:
            done = self._provider.force_flush(timeout_millis=int(FLUSH_BOUND_SECONDS * 1000))
        except Exception as exc:
            return f"could not export spans: {exc}"
        if not done:
            return f"spans not exported within {FLUSH_BOUND_SECONDS:g}s (collector unreachable?)"
        if self._problems.messages:
            return f"spans may not have been exported: {self._problems.messages[-1]}"
        return None


def resource_of(environ: Mapping[str, str]) -> Resource:
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME itself;
    # "longrun" replaces only the SDK's "unknown_service" placeholder.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "longrun"}))
    return resource


def _exporters(environ: Mapping[str, str]) -> list[str]:
    names = environ.get("OTEL_TRACES_EXPORTER", "otlp")
    return [name.strip().lower() for name in names.split(",") if name.strip()]


def _processor(name: str, environ: Mapping[str, str], warnings: list[str]) -> Any:
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # Spans on stderr: stdout belongs to the command.
        return SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr))
    if name != "otlp":
        warnings.append(f"unsupported OTEL_TRACES_EXPORTER {name!r}: ignored")
        return None
    protocol, timeout = otlp_settings(environ, "TRACES")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            warnings.append(
                f"OTLP over gRPC needs 'pip install {DISTRIBUTION}[grpc]'; spans are not exported"
            )
            return None
        return BatchSpanProcessor(GrpcExporter(timeout=int(timeout)))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter(timeout=timeout), schedule_delay_millis=1000)


def otlp_settings(environ: Mapping[str, str], signal: str) -> tuple[str, float]:
    """The OTLP protocol (``OTEL_EXPORTER_OTLP_{signal}_PROTOCOL``, else the general one)
    and the export timeout in seconds, bounded by the flush bound, for spans or metrics."""
    protocol = environ.get(
        f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    return protocol, min(_seconds(environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")), FLUSH_BOUND_SECONDS)


def _seconds(value: str | None) -> float:
    """OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds; default 10s."""
    try:
        millis = float(value) if value else 10_000.0
    except ValueError:
        return 10.0
    # nan, inf or negative: not a timeout an exporter can use.
    return millis / 1000 if math.isfinite(millis) and millis > 0 else 10.0
