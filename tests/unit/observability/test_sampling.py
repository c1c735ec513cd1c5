"""Sampling decided before any span exists: parent-based and ratio decisions, the standard
variables, and what a sampled-out event or call builds (nothing but its traceparent)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from fanout.observability.telemetry import (
    TRACEPARENT,
    TRACESTATE,
    Instruments,
    PresetIdGenerator,
    Sampling,
    Telemetry,
    producer_context,
    setup_telemetry,
    unsampled_trace_attributes,
)
from fanout.pipeline.inflight import Received
from tests.support.samples import dumps, simplified
from tests.unit.pipeline.test_worker import Capture, worker

UPSTREAM_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
UPSTREAM_SPAN = 0xB7AD6B7169203331


def traceparent_attribute(flags: str, trace_id: int = UPSTREAM_TRACE) -> dict[str, Any]:
    value = f"00-{trace_id:032x}-{UPSTREAM_SPAN:016x}-{flags}"
    return {TRACEPARENT: {"DataType": "String", "StringValue": value}}


def parent(flags: str, state: str | None = None) -> Any:
    attributes = traceparent_attribute(flags)
    if state is not None:
        attributes[TRACESTATE] = {"DataType": "String", "StringValue": state}
    context = producer_context(attributes, None)
    assert context is not None
    return context


class SpyTracer:
    """The SDK tracer, counting the spans started through it."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self.started: list[str] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.started.append(name)
        return self._tracer.start_span(name, *args, **kwargs)


def traced(sampler: Sampler) -> tuple[Telemetry, InMemorySpanExporter, SpyTracer]:
    """A Telemetry with tracing on, as setup_telemetry builds it, exporting to memory."""
    ids = PresetIdGenerator()
    provider = TracerProvider(sampler=sampler, id_generator=ids)  # type: ignore[arg-type]
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spy = SpyTracer(provider.get_tracer("test"))
    meter = metrics.NoOpMeterProvider().get_meter("test")
    telemetry = Telemetry(
        spy,  # type: ignore[arg-type]
        meter,
        Instruments.create(meter),
        tracing=True,
        sampling=Sampling(provider.sampler, ids),
    )
    return telemetry, exporter, spy


@pytest.fixture
def no_span_objects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every span object built while the test runs: recorded (SDK) or not (API)."""
    built: list[str] = []
    sdk_span = __import__("opentelemetry.sdk.trace", fromlist=["_Span"])._Span
    for cls in (NonRecordingSpan, sdk_span):
        original = cls.__init__

        def spy(
            self: Any, *args: Any, _original: Callable[..., None] = original, **kw: Any
        ) -> None:
            built.append(type(self).__name__)
            _original(self, *args, **kw)

        monkeypatch.setattr(cls, "__init__", spy)
    return built


def test_a_sampled_parent_is_honoured_and_an_unsampled_one_too() -> None:
    sampling = Sampling(ParentBased(ALWAYS_OFF), PresetIdGenerator())
    assert sampling.decide(parent("01"), "process q", SpanKind.CONSUMER) == (True, UPSTREAM_TRACE)
    assert sampling.decide(parent("00"), "process q", SpanKind.CONSUMER) == (False, UPSTREAM_TRACE)
    record, trace_id = sampling.decide(None, "process q", SpanKind.CONSUMER)
    assert record is False and trace_id not in (0, UPSTREAM_TRACE)
    always = Sampling(ParentBased(ALWAYS_ON), PresetIdGenerator())
    assert always.decide(parent("00"), "process q", SpanKind.CONSUMER)[0] is False
    assert always.decide(None, "process q", SpanKind.CONSUMER)[0] is True


def test_ratio_decisions_are_the_samplers_own_on_the_trace_id() -> None:
    ratio = TraceIdRatioBased(0.25)
    sampling = Sampling(ParentBased(ratio), PresetIdGenerator())
    decisions = [sampling.decide(None, "receive q", SpanKind.CLIENT) for _ in range(2000)]
    bound = ratio.bound
    assert all(record == (tid & 0xFFFFFFFFFFFFFFFF < bound) for record, tid in decisions)
    assert 300 < sum(record for record, _ in decisions) < 700  # ~500 of 2000
    assert len({tid for _, tid in decisions}) == 2000


def test_the_recorded_span_keeps_the_decided_trace_id() -> None:
    # A ratio sampler decides on the trace id: the span must not draw another one (the SDK
    # would then decide again, and only ~half of the "yes" decisions would be recorded).
    telemetry, exporter, _ = traced(ParentBased(TraceIdRatioBased(0.5)))
    attributes = {"messaging.system": "aws_sqs", "messaging.operation.type": "receive"}
    decided_yes: list[int] = []

    def built() -> dict[str, str]:
        decided_yes.append(1)
        return attributes.copy()

    recorded = 0
    for _ in range(200):
        span = telemetry.call_span("receive q", SpanKind.CLIENT, built)
        recorded += span.is_recording()
        span.end()
    finished = exporter.get_finished_spans()
    assert len(finished) == recorded == len(decided_yes) and 50 < recorded < 150
    assert all(dict(s.attributes or {}) == attributes for s in finished)


def test_sampler_and_ratio_come_from_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "aiohttp-client")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.0")
    telemetry = setup_telemetry()
    try:
        sampling = telemetry.sampling
        assert sampling is not None
        assert not any(sampling.decide(None, "x", SpanKind.CLIENT)[0] for _ in range(100))
        assert sampling.decide(parent("01"), "x", SpanKind.CONSUMER)[0] is True
        assert telemetry.call_span("x", SpanKind.CLIENT, dict) is trace.INVALID_SPAN
    finally:
        telemetry.shutdown()


def test_a_sampled_out_call_builds_nothing(no_span_objects: list[str]) -> None:
    telemetry, exporter, spy = traced(ParentBased(ALWAYS_OFF))

    def never() -> Any:
        raise AssertionError("attributes and links are built only for a recorded span")

    span = telemetry.call_span("send q", SpanKind.PRODUCER, never, never)
    assert span is trace.INVALID_SPAN
    with telemetry.scope(span, end=True):  # the HTTP client instrumentation is suppressed
        from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled

        assert not is_http_instrumentation_enabled()
    assert spy.started == [] and no_span_objects == [] and exporter.get_finished_spans() == ()


def test_tracing_off_call_span_is_the_invalid_span() -> None:
    assert Telemetry.off().call_span("x", SpanKind.CLIENT, dict) is trace.INVALID_SPAN


def test_unsampled_traceparent_carries_the_trace_id_and_flag_zero() -> None:
    attrs = unsampled_trace_attributes(parent("00", "vendor=x"), UPSTREAM_TRACE)
    version, trace_id, span_id, flags = attrs[TRACEPARENT]["StringValue"].split("-")
    assert (version, int(trace_id, 16), flags) == ("00", UPSTREAM_TRACE, "00")
    assert len(span_id) == 16 and int(span_id, 16) != 0
    assert attrs[TRACESTATE]["StringValue"] == "vendor=x"
    root = unsampled_trace_attributes(None, 0xABC)[TRACEPARENT]["StringValue"]
    # A root's trace id is random (W3C level 2 flag 02, as the SDK marks its own): not sampled.
    assert root.startswith(f"00-{0xABC:032x}-") and root.endswith("-02")
    assert int(root.split("-")[3], 16) & int(TraceFlags.SAMPLED) == 0


def worker_with(telemetry: Telemetry, tmp_path: Path, capture: Capture) -> Any:
    w = worker(tmp_path, capture)
    w._telemetry = telemetry  # the same worker, traced
    return w


def test_a_sampled_out_event_builds_no_span_and_propagates_flag_zero(
    tmp_path: Path, no_span_objects: list[str]
) -> None:
    telemetry, exporter, spy = traced(ParentBased(TraceIdRatioBased(0.0)))
    capture = Capture()
    w = worker_with(telemetry, tmp_path, capture)
    unsampled = Received("m-1", "rh-1", dumps(simplified("high")))
    unsampled.message_attributes = traceparent_attribute("00")
    root = Received("m-2", "rh-2", dumps(simplified("high")))
    w.handle(root)
    assert no_span_objects == []
    w.handle(unsampled)
    # The only span object: the producer's context extracted from the message, which the
    # parent-based sampler decides on (the propagator represents it as a NonRecordingSpan).
    assert no_span_objects == ["NonRecordingSpan"]
    assert spy.started == [] and exporter.get_finished_spans() == ()
    assert unsampled.trace_context is None and root.trace_context is None  # nothing to link
    second, first = [
        c.entry["MessageAttributes"][TRACEPARENT]["StringValue"] for c in capture.submitted
    ]
    assert first.split("-")[1] == f"{UPSTREAM_TRACE:032x}" and first.endswith("-00")
    assert second.split("-")[1] != f"{UPSTREAM_TRACE:032x}" and second.endswith("-02")


def test_a_sampled_parent_makes_the_event_recorded_at_ratio_zero(tmp_path: Path) -> None:
    telemetry, exporter, spy = traced(ParentBased(TraceIdRatioBased(0.0)))
    capture = Capture()
    message = Received("m-1", "rh-1", dumps(simplified("high")))
    message.message_attributes = traceparent_attribute("01")
    worker_with(telemetry, tmp_path, capture).handle(message)
    finished: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    [span] = finished
    assert spy.started == ["process source"]
    context = span.get_span_context()
    assert context is not None and context.trace_id == UPSTREAM_TRACE
    assert span.parent is not None and span.parent.span_id == UPSTREAM_SPAN
    assert [link.context.span_id for link in span.links] == [UPSTREAM_SPAN]
    assert isinstance(message.trace_context, SpanContext)
    assert message.trace_context.span_id == context.span_id
    [copy] = capture.submitted
    sent = copy.entry["MessageAttributes"][TRACEPARENT]["StringValue"]
    assert sent == f"00-{UPSTREAM_TRACE:032x}-{context.span_id:016x}-01"
    assert (span.attributes or {})["fanout.outcome"] == "sent"


def test_trace_state_of_an_unsampled_parent_goes_on() -> None:
    state = TraceState([("vendor", "x")])
    context = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(UPSTREAM_TRACE, UPSTREAM_SPAN, True, TraceFlags(0), state))
    )
    attrs = unsampled_trace_attributes(context, UPSTREAM_TRACE)
    assert attrs[TRACESTATE]["StringValue"] == "vendor=x"


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("parentbased_traceidratio", "0.1"),
        ("parentbased_traceidratio", "0.0"),
        ("parentbased_traceidratio", "1.0"),
        ("traceidratio", "0.3"),
        ("parentbased_always_on", None),
        ("parentbased_always_off", None),
        ("always_on", None),
        ("always_off", None),
    ],
)
def test_the_direct_rule_decides_as_the_configured_sampler(
    monkeypatch: pytest.MonkeyPatch, name: str, arg: str | None
) -> None:
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    if arg is None:
        monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG", raising=False)
    else:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    sampler = _get_from_env_or_default()
    sampling = Sampling(sampler, PresetIdGenerator())
    assert sampling._bound is not None  # the direct rule, not should_sample
    contexts = [None, parent("01"), parent("00")]
    for i in range(3000):
        context = contexts[i % 3]
        record, trace_id = sampling.decide(context, "process q", SpanKind.CONSUMER)
        asked = sampler.should_sample(context, trace_id, "process q", SpanKind.CONSUMER)
        assert record == asked.decision.is_recording(), (name, arg, context, trace_id)


def test_any_other_sampler_is_asked() -> None:
    class EveryOther(Sampler):
        def __init__(self) -> None:
            self.calls = 0

        def should_sample(self, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return (ALWAYS_ON if self.calls % 2 else ALWAYS_OFF).should_sample(*args, **kwargs)

        def get_description(self) -> str:
            return "every other"

    sampler = EveryOther()
    sampling = Sampling(sampler, PresetIdGenerator())
    decisions = [sampling.decide(None, "x", SpanKind.CLIENT)[0] for _ in range(4)]
    assert decisions == [True, False, True, False] and sampler.calls == 4


async def test_suppressed_calls_have_a_session_without_the_http_client_hooks() -> None:
    import aiohttp

    from fanout.aws.lean import _uninstrumented
    from fanout.observability.telemetry import _instrument_aiohttp

    provider = TracerProvider()
    uninstrument = _instrument_aiohttp(provider)
    try:
        async with aiohttp.ClientSession() as instrumented:
            assert instrumented.trace_configs  # the instrumentation's hooks
            plain = _uninstrumented(instrumented)
            assert plain is not None
            assert plain.trace_configs == [] and plain.connector is instrumented.connector
            await plain.close()
            assert not instrumented.connector.closed  # the pool stays with its owner
    finally:
        uninstrument()
    async with aiohttp.ClientSession() as bare:  # tracing off: nothing to strip
        assert _uninstrumented(bare) is None
