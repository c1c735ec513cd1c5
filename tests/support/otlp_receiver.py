"""A real OTLP/HTTP receiver on 127.0.0.1 (aiohttp) decoding the opentelemetry-proto messages,
with flat views of what it received for assertions."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

KINDS = {
    ProtoSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    ProtoSpan.SPAN_KIND_SERVER: "SERVER",
    ProtoSpan.SPAN_KIND_CLIENT: "CLIENT",
    ProtoSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    ProtoSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(value_of(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass
class SpanView:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]


@dataclass
class OtlpReceiver:
    trace_requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    metric_requests: list[ExportMetricsServiceRequest] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    endpoint: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self.endpoint

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    async def _body(request: web.Request) -> bytes:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return body

    async def _traces(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        message = ExportTraceServiceRequest()
        message.ParseFromString(await self._body(request))
        self.trace_requests.append(message)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        message = ExportMetricsServiceRequest()
        message.ParseFromString(await self._body(request))
        self.metric_requests.append(message)
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def spans(self) -> list[SpanView]:
        views = []
        for request in self.trace_requests:
            for resource_spans in request.resource_spans:
                resource = attributes_of(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        views.append(
                            SpanView(
                                name=span.name,
                                kind=KINDS[span.kind],
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes=attributes_of(span.attributes),
                                links=[(ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links],
                                events=[(e.name, attributes_of(e.attributes)) for e in span.events],
                                resource=resource,
                            )
                        )
        return views

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], float]]]:
        """The last export of each metric: name -> [(attributes, value)]; a histogram's value is
        its count, a sum's its (cumulative) value, a gauge's its last value."""
        latest: dict[str, list[tuple[dict[str, Any], float]]] = {}
        for request in self.metric_requests:
            for resource_metrics in request.resource_metrics:
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        kind = metric.WhichOneof("data")
                        points: list[tuple[dict[str, Any], float]] = []
                        for point in getattr(metric, kind).data_points:
                            if kind == "histogram":
                                value: float = point.count
                            else:
                                value = (
                                    point.as_int if point.HasField("as_int") else point.as_double
                                )
                            points.append((attributes_of(point.attributes), value))
                        latest[metric.name] = points
        return latest

    def metric_total(self, name: str, **attributes: Any) -> float:
        return sum(
            value
            for attrs, value in self.metrics().get(name, [])
            if all(attrs.get(k) == v for k, v in attributes.items())
        )
