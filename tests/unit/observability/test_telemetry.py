"""Cheap tracing paths: direct traceparent formatting, CallScope and the HTTP client spans."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fanout.observability.telemetry import (
    NO_SCOPE,
    CallScope,
    Telemetry,
    _instrument_aiohttp,
    trace_attributes,
)


@pytest.mark.parametrize(
    ("flags", "state"),
    [(TraceFlags.SAMPLED, None), (TraceFlags.DEFAULT, TraceState([("vendor", "v1")]))],
)
def test_trace_attributes_are_what_the_w3c_propagator_injects(
    flags: TraceFlags, state: TraceState | None
) -> None:
    context = SpanContext(0xABC, 0x12, is_remote=False, trace_flags=flags, trace_state=state)
    span = NonRecordingSpan(context)
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
    expected = {k: {"DataType": "String", "StringValue": v} for k, v in carrier.items()}
    assert trace_attributes(span) == expected
    assert trace_attributes(trace.INVALID_SPAN) == {}


def test_tracing_off_needs_no_scope() -> None:
    telemetry = Telemetry.off()
    assert telemetry.scope(trace.INVALID_SPAN, end=True) is NO_SCOPE


def exported(sampled: bool) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON if sampled else ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_call_scope_ends_the_span_and_marks_errors() -> None:
    provider, exporter = exported(True)
    span = provider.get_tracer("t").start_span("send q")
    seen: list[object] = []

    def call() -> None:
        with CallScope(span, end=True):
            seen.append(trace.get_current_span())
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        call()
    assert seen == [span]
    (done,) = exporter.get_finished_spans()
    assert done.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in done.events] == ["exception"]


@pytest.mark.parametrize("sampled", [True, False])
async def test_http_client_spans_only_under_recorded_spans(sampled: bool) -> None:
    import aiohttp

    async def ok(_: Any) -> web.Response:
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_post("/000000000000/q", ok)
    provider, exporter = exported(sampled)
    uninstrument = _instrument_aiohttp(provider)
    try:
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
            parent = provider.get_tracer("t").start_span("send q")
            with CallScope(parent, end=True):
                url = server.make_url("/000000000000/q?secret=1")
                async with http.post(url, data=b"{}") as response:
                    assert response.status == 200
    finally:
        uninstrument()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    if not sampled:
        assert spans == {}
        return
    http_span = spans["POST"]
    assert http_span.kind == trace.SpanKind.CLIENT
    assert http_span.parent is not None
    assert http_span.parent.span_id == parent.get_span_context().span_id
