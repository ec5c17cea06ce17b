"""OpenTelemetry metrics of longrun itself, beside its spans (SPEC §10).

``longrun.attempts`` (by task and decision), ``longrun.retries`` (by task and
rule), ``longrun.attempt.duration`` (seconds) and ``longrun.task.up`` (1 while an
attempt runs). They are recorded by wrapping the tracer's task and attempt
handles, so the engine knows nothing of metrics; exported by the standard
``OTEL_METRICS_EXPORTER`` (``otlp``, ``prometheus``, ``console``, ``none``), and
flushed with the spans however longrun ends. Imported only when configured.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from longrun_cli import DISTRIBUTION, __version__
from longrun_cli.telemetry.otel import (
    FLUSH_BOUND_SECONDS,
    ExportProblems,
    otlp_settings,
    resource_of,
)

if TYPE_CHECKING:
    from longrun_cli.telemetry import AttemptTrace, GroupTrace, TaskTrace, Tracer

EXPORTERS = ("otlp", "prometheus", "console", "none")
PROMETHEUS_PORT = 9464


class Instruments:
    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("longrun", __version__)
        self.attempts = meter.create_counter(
            "longrun.attempts", unit="{attempt}", description="Attempts, by task and decision"
        )
        self.retries = meter.create_counter(
            "longrun.retries", unit="{retry}", description="Retries, by task and rule"
        )
        self.duration = meter.create_histogram(
            "longrun.attempt.duration", unit="s", description="How long each attempt ran"
        )
        self.up = meter.create_up_down_counter(
            "longrun.task.up", unit="1", description="1 while an attempt of the task runs"
        )


class MeteredTracer:
    """A Tracer whose task and attempt handles also record the metrics."""

    def __init__(self, inner: Tracer, provider: MeterProvider, problems: ExportProblems) -> None:
        self._inner = inner
        self._provider = provider
        self._problems = problems
        self._instruments = Instruments(provider)

    def task(self, name: str, argv: Sequence[str]) -> TaskTrace:
        return _MeteredTask(self._inner.task(name, argv), name, self._instruments)

    def group(self, tasks: Sequence[str]) -> GroupTrace:
        return _MeteredGroup(self._inner.group(tasks), self._instruments)

    def flush(self) -> str | None:
        spans = self._inner.flush()
        metrics = None
        try:
            # shutdown collects and exports once more, bounded, then stops the reader.
            self._provider.shutdown(timeout_millis=FLUSH_BOUND_SECONDS * 1000)
        except Exception as exc:
            metrics = f"could not export metrics: {exc}"
        if metrics is None and self._problems.messages:
            metrics = f"metrics may not have been exported: {self._problems.messages[-1]}"
        return "; ".join(text for text in (spans, metrics) if text) or None


class _MeteredGroup:
    def __init__(self, inner: GroupTrace, instruments: Instruments) -> None:
        self._inner = inner
        self._instruments = instruments

    def task(self, name: str, argv: Sequence[str]) -> TaskTrace:
        return _MeteredTask(self._inner.task(name, argv), name, self._instruments)

    def finish(self, exit_status: int, first_failure: str | None) -> None:
        self._inner.finish(exit_status, first_failure)


class _MeteredTask:
    def __init__(self, inner: TaskTrace, name: str, instruments: Instruments) -> None:
        self._inner = inner
        self._name = name
        self._instruments = instruments

    def attempt(self, run: int, attempt: int, argv: Sequence[str]) -> AttemptTrace:
        return _MeteredAttempt(
            self._inner.attempt(run, attempt, argv), self._name, self._instruments
        )

    def log_ids(self) -> tuple[tuple[str, object], ...]:
        return self._inner.log_ids()

    def event(self, name: str, **attributes: str | int | float) -> None:
        self._inner.event(name, **attributes)

    def finish(self, status: str, exit_status: int, error: str | None) -> None:
        self._inner.finish(status, exit_status, error)


class _MeteredAttempt:
    def __init__(self, inner: AttemptTrace, task: str, instruments: Instruments) -> None:
        self._inner = inner
        self._task = {"longrun.task": task}
        self._instruments = instruments
        self._started = time.monotonic()
        instruments.up.add(1, self._task)

    def child_env(self) -> dict[str, str]:
        return self._inner.child_env()

    def log_ids(self) -> tuple[tuple[str, object], ...]:
        return self._inner.log_ids()

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
        instruments = self._instruments
        by_decision = {**self._task, "longrun.decision": decision}
        instruments.up.add(-1, self._task)
        instruments.attempts.add(1, by_decision)
        instruments.duration.record(time.monotonic() - self._started, by_decision)
        if decision == "retry":
            instruments.retries.add(1, {**self._task, "longrun.rule": rule or ""})
        self._inner.finish(
            decision=decision,
            exit_code=exit_code,
            signal=signal,
            rule=rule,
            delay_seconds=delay_seconds,
            error=error,
            pid=pid,
        )


def metrics_exporter(environ: Mapping[str, str]) -> str | None:
    """The exporter OTEL_METRICS_EXPORTER names, or None (metrics off).

    Unset means off, not the SDK's default otlp: longrun users set the OTLP
    endpoint for spans, and metrics are a separate choice (documented).
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    name = environ.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    return None if name in ("", "none") else name


def metered(inner: Tracer, exporter: str, environ: Mapping[str, str]) -> tuple[Tracer, list[str]]:
    """``inner`` with metrics, or ``inner`` and a warning if the exporter cannot be had."""
    warnings: list[str] = []
    reader = _reader(exporter, environ, warnings)
    if reader is None:
        return inner, warnings
    problems = ExportProblems()
    for name in ("opentelemetry", "opentelemetry.sdk.metrics"):
        logger = logging.getLogger(name)
        logger.addHandler(problems)
        logger.propagate = False
    provider = MeterProvider(
        metric_readers=[reader], resource=resource_of(environ), shutdown_on_exit=False
    )
    return MeteredTracer(inner, provider, problems), warnings


def _reader(name: str, environ: Mapping[str, str], warnings: list[str]) -> Any:
    interval = _interval(environ)
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        # On stderr: stdout belongs to the command.
        return PeriodicExportingMetricReader(
            ConsoleMetricExporter(out=sys.stderr), export_interval_millis=interval
        )
    if name == "prometheus":
        return _prometheus(environ, warnings)
    if name != "otlp":
        warnings.append(f"unsupported OTEL_METRICS_EXPORTER {name!r}: no metrics")
        return None
    protocol, timeout = otlp_settings(environ, "METRICS")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcExporter,
            )
        except ImportError:
            warnings.append(f"OTLP over gRPC needs 'pip install {DISTRIBUTION}[grpc]'; no metrics")
            return None
        exporter: Any = GrpcExporter(timeout=int(timeout))
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(timeout=timeout)
    return PeriodicExportingMetricReader(
        exporter, export_interval_millis=interval, export_timeout_millis=timeout * 1000
    )


def _prometheus(environ: Mapping[str, str], warnings: list[str]) -> Any:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server
    except ImportError:
        warnings.append(f"the Prometheus exporter needs 'pip install {DISTRIBUTION}[prometheus]'")
        return None
    host = environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "").strip() or "localhost"
    text = environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "").strip() or str(PROMETHEUS_PORT)
    if not text.isdigit() or not 0 < int(text) < 65536:
        warnings.append(f"OTEL_EXPORTER_PROMETHEUS_PORT {text!r} is not a port: no metrics")
        return None
    try:
        start_http_server(int(text), addr=host)
    except OSError as exc:
        warnings.append(f"cannot serve Prometheus metrics on {host}:{text}: {exc.strerror or exc}")
        return None
    return PrometheusMetricReader()


def _interval(environ: Mapping[str, str]) -> int:
    """OTEL_METRIC_EXPORT_INTERVAL in milliseconds (default 60 s)."""
    text = environ.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    try:
        value = float(text) if text else 60_000.0
    except ValueError:
        return 60_000
    return int(value) if 0 < value < 1e9 else 60_000
