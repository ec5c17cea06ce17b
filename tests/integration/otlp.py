"""A real OTLP/HTTP receiver for tests: decodes the protobuf the exporter sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    events: list[str]
    service_name: str


@dataclass
class ReceivedPoint:
    """One data point of a metric: a sum's value, or a histogram's count and sum."""

    metric: str
    kind: str  # sum, histogram, gauge
    attributes: dict[str, Any]
    value: float
    count: int = 0
    monotonic: bool = False


@dataclass
class Receiver:
    endpoint: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    points: list[ReceivedPoint] = field(default_factory=list)

    def metric(self, name: str) -> list[ReceivedPoint]:
        return [point for point in self.points if point.metric == name]

    def named(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReceivedSpan:
        (span,) = self.named(name)
        return span


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=[event.name for event in span.events],
                        service_name=str(resource.get("service.name", "")),
                    )
                )
    return spans


def _decode_metrics(body: bytes) -> list[ReceivedPoint]:
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    points = []
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                for point in data.data_points:
                    attributes = {a.key: _value(a.value) for a in point.attributes}
                    if kind == "histogram":
                        points.append(
                            ReceivedPoint(metric.name, kind, attributes, point.sum, point.count)
                        )
                    else:
                        value = point.as_int if point.HasField("as_int") else point.as_double
                        monotonic = bool(getattr(data, "is_monotonic", False))
                        points.append(
                            ReceivedPoint(metric.name, kind, attributes, value, 0, monotonic)
                        )
    return points


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """An OTLP/HTTP endpoint on 127.0.0.1 that records every span and metric point it decodes.

    (The traces' empty response also decodes as an empty metrics response.)"""
    receiver = Receiver(endpoint="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/v1/traces":
                decoded = _decode(body)
                with lock:
                    receiver.spans.extend(decoded)
            elif self.path == "/v1/metrics":
                points = _decode_metrics(body)
                with lock:
                    receiver.points.extend(points)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
