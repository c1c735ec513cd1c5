"""OpenTelemetry wiring: the one place that builds tracer and meter providers from the standard
``OTEL_*`` environment, plus trace-context propagation through SQS message attributes.

Stages get a ``Telemetry`` (tracer + instruments) passed in; nothing here is a global of ours.
With nothing configured there is no exporter at all (no network attempt) and the tracer is the
API's no-op one, so the hot path pays only for no-op calls.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, Context
from opentelemetry.metrics import Counter, Histogram, Meter, Observation
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fanout import __version__
from fanout.errors import ConfigError
from fanout.observability.stats import Stats

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_ATTRIBUTES = frozenset({TRACEPARENT, TRACESTATE})
XRAY_HEADER = "X-Amzn-Trace-Id"
SYSTEM = "aws_sqs"

# Seconds: SQS calls take milliseconds, long polls up to 20 s, lag up to minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
BATCH_BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)

# Stateless (the SDK's own objects); shared by every Telemetry.
_W3C = TraceContextTextMapPropagator()
_XRAY = AwsXRayPropagator()


class _AttributeGetter(Getter[Mapping[str, Mapping[str, Any]]]):
    """Reads W3C headers from SQS MessageAttributes ({name: {DataType, StringValue}})."""

    def get(self, carrier: Mapping[str, Mapping[str, Any]], key: str) -> list[str] | None:
        attr = carrier.get(key)
        value = attr.get("StringValue") if attr is not None else None
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Mapping[str, Any]]) -> list[str]:
        return list(carrier)


_GETTER = _AttributeGetter()


def producer_context(
    attributes: Mapping[str, Mapping[str, Any]], aws_trace_header: str | None
) -> Context | None:
    """The producer's trace context: W3C ``traceparent`` message attribute, else the X-Ray
    ``AWSTraceHeader`` system attribute; None when neither carries a valid one."""
    if TRACEPARENT in attributes:
        context = _W3C.extract(attributes, getter=_GETTER)
    elif aws_trace_header:
        context = _XRAY.extract({XRAY_HEADER: aws_trace_header})
    else:
        return None
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def trace_attributes(span: Span) -> dict[str, dict[str, Any]]:
    """``traceparent`` (and ``tracestate`` when set) for ``span``, as SQS message attributes.

    What the W3C propagator's ``inject`` writes, formatted directly: one f-string instead of a
    context, a carrier and a setter per event (sampled-out spans propagate too, flag 00)."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return {}
    attrs = {
        TRACEPARENT: {
            "DataType": "String",
            "StringValue": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}",
        }
    }
    if ctx.trace_state:
        attrs[TRACESTATE] = {"DataType": "String", "StringValue": ctx.trace_state.to_header()}
    return attrs


def _random_id(bits: int) -> int:
    """A random non-zero id, as the SDK's RandomIdGenerator makes them (zero is invalid)."""
    value = random.getrandbits(bits)
    while not value:
        value = random.getrandbits(bits)
    return value


class PresetIdGenerator:
    """The SDK's random ids, except that the next trace id can be fixed beforehand.

    ``Sampling.decide`` asks the sampler before any span exists, on a trace id of its own; the
    span it then starts must carry that trace id, or a ratio sampler (which samples by trace id)
    would decide again on another one. Used on the event-loop thread only (spans start there).
    Implements the SDK's ``IdGenerator`` interface."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def preset(self, trace_id: int) -> None:
        self._next = trace_id

    def generate_trace_id(self) -> int:
        trace_id, self._next = self._next, 0
        return trace_id or _random_id(128)

    def generate_span_id(self) -> int:
        return _random_id(64)

    def is_trace_id_random(self) -> bool:
        return True


# W3C trace-context level 2 "random trace id" flag, which the SDK sets on ids it generated.
_RANDOM_FLAG = 0x02


_LOW_64 = (1 << 64) - 1  # TraceIdRatioBased compares the trace id's low 64 bits to its bound


def _standard_rule(sampler: Any) -> tuple[bool, int] | None:
    """(parent-based?, root bound) when ``sampler`` is one the SDK builds from
    ``OTEL_TRACES_SAMPLER`` (always_on/off, traceidratio, their parentbased_ forms with the
    default delegates): its decision is then ``trace_id & 2**64-1 < bound`` at the root and the
    parent's sampled flag under a parent. None for any other sampler (it is asked each time)."""
    from opentelemetry.sdk.trace import sampling

    def bound(root: Any) -> int | None:
        if root is sampling.ALWAYS_ON:
            return _LOW_64 + 1
        if root is sampling.ALWAYS_OFF:
            return 0
        if type(root) is sampling.TraceIdRatioBased:
            return int(root.bound)
        return None

    if type(sampler) in (
        sampling.ParentBased,
        sampling.ParentBasedTraceIdRatio,
        sampling._ParentBasedAlwaysOn,  # what parentbased_always_on/off name
        sampling._ParentBasedAlwaysOff,
    ):
        delegates = (
            getattr(sampler, "_remote_parent_sampled", None) is sampling.ALWAYS_ON
            and getattr(sampler, "_remote_parent_not_sampled", None) is sampling.ALWAYS_OFF
        )
        root = bound(getattr(sampler, "_root", None))
        return (True, root) if delegates and root is not None else None
    root = bound(sampler)
    return (False, root) if root is not None else None


class Sampling:
    """The configured sampler (``OTEL_TRACES_SAMPLER``/``_ARG``, parent-based by default),
    asked once per event or call *before* any span is built, so that what is sampled out
    builds no span, no attribute dict and no link: it only gets the ids propagation needs.

    The samplers the standard variables name are applied by their rule directly (the SDK's
    ``should_sample`` builds a result object and looks the parent up twice per call); any other
    sampler is asked through ``should_sample``.

    Parameters:
        sampler: the tracer provider's sampler (the SDK read it from the environment).
        ids: the tracer provider's id generator, so a recorded span keeps the decided trace id
            (None: a provider built elsewhere; its SDK tracer then decides a root span again).
    """

    __slots__ = ("_bound", "_ids", "_parent_based", "_sampler")

    def __init__(self, sampler: Any, ids: PresetIdGenerator | None) -> None:
        self._sampler = sampler
        self._ids = ids
        rule = _standard_rule(sampler)
        self._parent_based = rule is not None and rule[0]
        self._bound: int | None = rule[1] if rule is not None else None

    def decide(self, parent: Context | None, name: str, kind: SpanKind) -> tuple[bool, int]:
        """(record?, trace id): the parent's trace id, else a new random one. The sampler sees
        no attributes and no links (the standard ones use neither)."""
        bound = self._bound
        if parent is None:
            trace_id = _random_id(128)
            if bound is not None:
                return trace_id & _LOW_64 < bound, trace_id
        else:
            context = trace.get_current_span(parent).get_span_context()
            trace_id = context.trace_id
            if bound is not None:
                if self._parent_based:
                    return context.trace_flags.sampled, trace_id
                return trace_id & _LOW_64 < bound, trace_id
        result = self._sampler.should_sample(parent, trace_id, name, kind)
        return result.decision.is_recording(), trace_id

    def start(
        self,
        tracer: Tracer,
        trace_id: int,
        name: str,
        *,
        kind: SpanKind,
        context: Context | None = None,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
    ) -> Span:
        """The recorded span ``decide`` said yes to, on its trace id."""
        ids = self._ids
        if context is None and ids is not None:
            ids.preset(trace_id)
            try:
                return tracer.start_span(name, context, kind, attributes, links)
            finally:
                ids.preset(0)  # unused (a disabled tracer): never left for another span
        return tracer.start_span(name, context, kind, attributes, links)


def unsampled_trace_attributes(parent: Context | None, trace_id: int) -> dict[str, dict[str, Any]]:
    """``traceparent`` (and the parent's ``tracestate``) for an event that is not recorded: its
    trace id, a fresh span id and sampled flag 0, so that a downstream consumer sampling on its
    parent decides the same way. What a non-recording span would propagate, without one."""
    state = None
    if parent is None:
        flags = _RANDOM_FLAG
    else:
        context = trace.get_current_span(parent).get_span_context()
        flags = context.trace_flags & _RANDOM_FLAG
        state = context.trace_state
    attrs = {
        TRACEPARENT: {
            "DataType": "String",
            "StringValue": f"00-{trace_id:032x}-{_random_id(64):016x}-{flags:02x}",
        }
    }
    if state:
        attrs[TRACESTATE] = {"DataType": "String", "StringValue": state.to_header()}
    return attrs


class CallScope:
    """Makes a messaging span current while its SQS call runs, so the HTTP client span nests
    under it; ends it after (``end``); on an exception sets ERROR status (and records the
    exception, ``record_exception``) as ``trace.use_span`` does.

    A span that is not recorded (sampled out) suppresses the HTTP client instrumentation
    instead: its span would be a non-recorded child too (same trace, parent-based or ratio
    sampler) but would cost as much as a recorded one to build. With tracing off there is
    nothing to do at all (``NO_SCOPE``)."""

    __slots__ = ("_end", "_record_exception", "_span", "_token")

    def __init__(self, span: Span, *, end: bool, record_exception: bool = True) -> None:
        self._span = span
        self._end = end
        self._record_exception = record_exception
        self._token: object = None

    def __enter__(self) -> None:
        span = self._span
        if span.is_recording():
            ctx = trace.set_span_in_context(span)
        else:
            ctx = otel_context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True)
        self._token = otel_context.attach(ctx)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
        span = self._span
        if isinstance(exc, Exception) and span.is_recording():
            if self._record_exception:
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self._end:
            span.end()


class _NoScope:
    """CallScope with tracing off: the span is the API's no-op one; nothing to attach or end."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


NO_SCOPE = _NoScope()


@dataclass(frozen=True)
class Instruments:
    """The metrics recorded on the hot path: histograms, and one rare counter. The counters the
    run's Stats already keeps are observed from it at collection time (``observe_stats``), so
    counting an event costs nothing extra."""

    operation_duration: Histogram
    process_duration: Histogram
    batch_entries: Histogram
    lag: Histogram
    injection_skipped: Counter
    # The attribute keys each of these is recorded with at its call sites (poller, worker,
    # sender, settle, CallObserver): they are not visible here, and the generated metrics
    # reference (docs/hooks/reference.py) lists them from this.
    ATTRIBUTE_KEYS: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType(
        {
            "messaging.client.operation.duration": (
                "messaging.system",
                "messaging.operation.name",
                "messaging.destination.name",
                "error.type",
            ),
            "messaging.process.duration": (
                "messaging.system",
                "messaging.destination.name",
                "fanout.outcome",
            ),
            "fanout.batch.entries": ("messaging.system", "messaging.destination.name"),
            "fanout.lag": (),
            "fanout.traceparent.skipped": ("messaging.system", "messaging.destination.name"),
        }
    )
    # Metric attributes of each (operation, queue), built once: a call records with the same
    # dict every time instead of building one per call.
    _call_attributes: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def call_attributes(self, operation: str, queue: str) -> dict[str, str]:
        """``messaging.client.operation.duration`` attributes of one operation on one queue
        (shared: never mutate)."""
        key = (operation, queue)
        attributes = self._call_attributes.get(key)
        if attributes is None:
            attributes = self._call_attributes[key] = {
                "messaging.system": SYSTEM,
                "messaging.operation.name": operation,
                "messaging.destination.name": queue,
            }
        return attributes

    @classmethod
    def create(cls, meter: Meter) -> Instruments:
        return cls(
            operation_duration=meter.create_histogram(
                "messaging.client.operation.duration",
                unit="s",
                description="Duration of each SQS call (every attempt)",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            ),
            process_duration=meter.create_histogram(
                "messaging.process.duration",
                unit="s",
                description="Validate + match + hand-off time per event",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            ),
            batch_entries=meter.create_histogram(
                "fanout.batch.entries",
                unit="{message}",
                description="Entries per SendMessageBatch call (batch fill)",
                explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
            ),
            lag=meter.create_histogram(
                "fanout.lag",
                unit="s",
                description="Source SentTimestamp to the last target accepting its copy",
                explicit_bucket_boundaries_advisory=LAG_BUCKETS,
            ),
            injection_skipped=meter.create_counter(
                "fanout.traceparent.skipped",
                unit="{event}",
                description="Events whose copies had no room for a traceparent attribute",
            ),
        )


def observe_stats(
    meter: Meter,
    stats: Stats,
    inflight: Callable[[], int],
    *,
    inflight_bytes: Callable[[], int] | None = None,
    source: str,
    target_queues: Mapping[str, str],
    dlq_queue: str | None,
) -> None:
    """Counters read from the run's Stats when a reader collects (no cost per event).

    Callbacks run on the exporter's thread: they copy each Counter (a C-level copy under the
    GIL) before iterating."""

    def counter(
        name: str, unit: str, description: str, read: Callable[[], Iterable[Observation]]
    ) -> None:
        meter.create_observable_counter(
            name, callbacks=[lambda _: read()], unit=unit, description=description
        )

    def sent() -> Iterable[Observation]:
        per_queue: dict[str, int] = {}
        for target, count in dict(stats.per_target).items():
            queue = target_queues.get(target, target)
            per_queue[queue] = per_queue.get(queue, 0) + count
        if dlq_queue is not None:
            per_queue[dlq_queue] = per_queue.get(dlq_queue, 0) + sum(dict(stats.dlq).values())
        return [
            Observation(n, {"messaging.system": SYSTEM, "messaging.destination.name": q})
            for q, n in per_queue.items()
        ]

    def by(key: str, values: Mapping[str, int]) -> list[Observation]:
        return [Observation(n, {key: k}) for k, n in dict(values).items()]

    source_attributes = {"messaging.system": SYSTEM, "messaging.destination.name": source}
    counter(
        "messaging.client.sent.messages",
        "{message}",
        "Messages SQS accepted from SendMessageBatch (targets and DLQ)",
        sent,
    )
    counter(
        "messaging.client.consumed.messages",
        "{message}",
        "Messages received from the source queue",
        lambda: [Observation(stats.received, source_attributes)],
    )
    counter(
        "fanout.rule.matches",
        "{event}",
        "Events matched, per rule",
        lambda: by("fanout.rule.id", stats.per_rule),
    )
    counter(
        "fanout.copies",
        "{message}",
        "Copies accepted, per target",
        lambda: by("fanout.target", stats.per_target),
    )
    counter(
        "fanout.dlq.writes",
        "{message}",
        "DLQ records accepted, per reason",
        lambda: by("fanout.dlq.reason", stats.dlq),
    )
    counter(
        "fanout.unmatched",
        "{event}",
        "Events no rule matched",
        lambda: [Observation(stats.unmatched, source_attributes)],
    )
    counter(
        "fanout.retries",
        "{retry}",
        "Retried SQS calls and batch entries, per error code",
        lambda: by("error.type", stats.retries),
    )
    counter(
        "fanout.credential.errors",
        "{call}",
        "SQS calls refused for fanout's own credentials or clock, per error code (held and "
        "retried one probe at a time, never dead-lettered)",
        lambda: by("error.type", stats.credential_errors),
    )
    counter(
        "fanout.rules.reloads",
        "{reload}",
        "Rules reloads (SIGHUP, --watch-rules), per result: ok, error (old rules kept)",
        lambda: by("result", stats.reloads),
    )
    counter(
        "fanout.task.crashes",
        "{crash}",
        "Crashes of long-lived tasks (heartbeat, reloader, pollers, workers), per task name",
        lambda: by("fanout.task", stats.task_crashes),
    )
    meter.create_observable_gauge(
        "fanout.inflight.messages",
        callbacks=[lambda _: [Observation(inflight(), source_attributes)]],
        unit="{message}",
        description="Received but not yet deleted, released or abandoned",
    )
    if inflight_bytes is not None:
        meter.create_observable_gauge(
            "fanout.inflight.bytes",
            callbacks=[lambda _: [Observation(inflight_bytes(), source_attributes)]],
            unit="By",
            description="Body bytes of the in-flight messages (FANOUT_MAX_IN_FLIGHT_BYTES)",
        )


def observe_concurrency(
    meter: Meter,
    stats: Stats,
    *,
    source: str,
) -> None:
    """Gauges of the adaptive concurrency: pollers, each queue's calls-in-flight limit (targets
    and ``dlq`` by ``fanout.target``; deletes); the in-flight limits are in
    ``observe_inflight_limits``."""
    source_attributes = {"messaging.system": SYSTEM, "messaging.destination.name": source}

    def gauge(
        name: str, unit: str, description: str, read: Callable[[], Iterable[Observation]]
    ) -> None:
        meter.create_observable_gauge(
            name, callbacks=[lambda _: read()], unit=unit, description=description
        )

    gauge(
        "fanout.pollers",
        "{poller}",
        "ReceiveMessage loops running (FANOUT_POLLERS to FANOUT_MAX_POLLERS)",
        lambda: [Observation(stats.pollers, source_attributes)],
    )
    gauge(
        "fanout.send.concurrency",
        "{call}",
        "SendMessageBatch calls allowed in flight, per target (the DLQ as dlq)",
        lambda: [
            Observation(n, {"fanout.target": t})
            for t, n in dict(stats.concurrency).items()
            if t != "delete"
        ],
    )
    gauge(
        "fanout.delete.concurrency",
        "{call}",
        "DeleteMessageBatch calls allowed in flight",
        lambda: [Observation(stats.concurrency.get("delete", 0), source_attributes)],
    )


def observe_inflight_limits(
    meter: Meter,
    limit: Callable[[], int],
    bytes_limit: Callable[[], int | None],
    *,
    source: str,
) -> None:
    """The in-flight budget as gauges, read at collection time (a limit that changes at run
    time is seen as it is): ``fanout.inflight.limit`` against ``fanout.inflight.messages`` and
    ``fanout.inflight.bytes.limit`` against ``fanout.inflight.bytes`` (none when unbounded).
    Dashboards and the saturation alert divide one by the other."""
    attributes = {"messaging.system": SYSTEM, "messaging.destination.name": source}

    def bytes_observations() -> list[Observation]:
        value = bytes_limit()
        return [] if value is None else [Observation(value, attributes)]

    meter.create_observable_gauge(
        "fanout.inflight.limit",
        callbacks=[lambda _: [Observation(limit(), attributes)]],
        unit="{message}",
        description="Messages allowed in flight now (Little's law, from FANOUT_MAX_IN_FLIGHT up)",
    )
    meter.create_observable_gauge(
        "fanout.inflight.bytes.limit",
        callbacks=[lambda _: bytes_observations()],
        unit="By",
        description="Most body bytes in flight (FANOUT_MAX_IN_FLIGHT_BYTES)",
    )


def observe_readiness(meter: Meter, ready: Callable[[], bool]) -> None:
    """``fanout.ready``: 1 when /readyz would answer 200, else 0 (read at collection time), so
    a readiness alert needs no probe of its own."""
    meter.create_observable_gauge(
        "fanout.ready",
        callbacks=[lambda _: [Observation(1 if ready() else 0)]],
        description="1 when the process is ready (/readyz 200), 0 when not",
    )


@dataclass
class Telemetry:
    """Tracer and instruments for one run, and what must be flushed at exit."""

    tracer: Tracer
    meter: Meter
    instruments: Instruments
    tracing: bool = False
    prometheus_registry: Any = None  # prometheus_client.CollectorRegistry when /metrics is on
    sampling: Sampling | None = None  # with tracing on
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.tracing and self.sampling is None:  # an SDK tracer given directly (tests)
            from opentelemetry.sdk.trace.sampling import ALWAYS_ON

            ids = getattr(self.tracer, "id_generator", None)
            self.sampling = Sampling(
                getattr(self.tracer, "sampler", ALWAYS_ON),
                ids if isinstance(ids, PresetIdGenerator) else None,
            )

    @classmethod
    def off(cls) -> Telemetry:
        meter = metrics.NoOpMeterProvider().get_meter("fanout")
        return cls(trace.NoOpTracer(), meter, Instruments.create(meter))

    def call_span(
        self,
        name: str,
        kind: SpanKind,
        attributes: Callable[[], Mapping[str, Any]],
        links: Callable[[], Sequence[Link]] | None = None,
    ) -> Span:
        """The span of one SQS call (a root: batch calls link to their events instead). Sampled
        out or tracing off: the API's shared invalid span (no object built; its methods do
        nothing), and ``attributes``/``links`` are never called."""
        sampling = self.sampling
        if sampling is None:
            return INVALID_SPAN
        record, trace_id = sampling.decide(None, name, kind)
        if not record:
            return INVALID_SPAN
        return sampling.start(
            self.tracer,
            trace_id,
            name,
            kind=kind,
            attributes=attributes(),
            links=links() if links is not None else None,
        )

    def scope(
        self, span: Span, *, end: bool, record_exception: bool = True
    ) -> CallScope | _NoScope:
        """The ``with`` block around one SQS call of ``span`` (see CallScope)."""
        if not self.tracing:
            return NO_SCOPE
        return CallScope(span, end=end, record_exception=record_exception)

    def shutdown(self) -> None:
        """Flush and stop exporters (idempotent)."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                close()
            except Exception:  # a collector that is down must not turn an exit into a crash
                log.warning("telemetry shutdown failed", exc_info=True)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _exporter_names(signal: str, env: Mapping[str, str]) -> list[str]:
    """OTEL_{TRACES,METRICS}_EXPORTER as the SDK reads it, except the default: unset means
    ``otlp`` only when an OTLP endpoint is set, else ``none`` (no surprise network attempt)."""
    raw = env.get(f"OTEL_{signal.upper()}_EXPORTER")
    if raw is None:
        endpoint_vars = (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT",
        )
        raw = "otlp" if any(env.get(v) for v in endpoint_vars) else "none"
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [] if names in ([], ["none"]) else [n for n in names if n != "none"]


def metric_exporter_names(env: Mapping[str, str]) -> list[str]:
    """The metric exporters ``setup_telemetry`` builds for ``env`` (``prometheus`` among them
    when /metrics is served)."""
    return _exporter_names("metrics", env)


def _entry_point_name(name: str, signal: str, env: Mapping[str, str]) -> str:
    if name != "otlp":
        return name
    protocol = (
        env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    by_protocol = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
    if protocol not in by_protocol:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported '{protocol}' (use grpc or http/protobuf)"
        )
    return by_protocol[protocol]


def _load_exporter(name: str, signal: str, env: Mapping[str, str]) -> Any:
    """The exporter class registered under the SDK's entry-point group for ``signal``."""
    point = _entry_point_name(name, signal, env)
    group = f"opentelemetry_{signal}_exporter"
    found = list(entry_points(group=group, name=point))
    if not found:
        raise ConfigError(
            f"OTEL_{signal.upper()}_EXPORTER: unknown exporter '{name}' "
            f"(use otlp, console or none{', prometheus' if signal == 'metrics' else ''})"
        )
    return found[0].load()


def _resource(env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (they win).
    resource = Resource.create(
        {
            "service.version": __version__,
            "service.instance.id": str(uuid.uuid4()),
            "host.name": socket.gethostname(),
            "process.pid": os.getpid(),
        }
    )
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "fanout"}))
    return resource


def setup_telemetry() -> Telemetry:
    """Build providers from the standard OTEL_* variables (docs/observability/index.md).

    Always os.environ: the SDK's sampler, span processor and exporters read it themselves."""
    env = os.environ
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        log.info("OpenTelemetry disabled (OTEL_SDK_DISABLED=true): no traces, no metrics")
        return Telemetry.off()
    trace_names = _exporter_names("traces", env)
    metric_names = _exporter_names("metrics", env)
    if not trace_names and not metric_names:
        log.info(
            "tracing export is off: set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER "
            "/ OTEL_METRICS_EXPORTER to export traces and metrics"
        )
        return Telemetry.off()

    resource = _resource(env)
    closers: list[Callable[[], None]] = []
    tracer: Tracer = trace.NoOpTracer()
    tracer_provider: Any = None
    sampling: Sampling | None = None
    if trace_names:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (SDK default:
        # parentbased_always_on); the processor from OTEL_BSP_*; exporters read their own vars.
        ids = PresetIdGenerator()
        tracer_provider = TracerProvider(resource=resource, id_generator=ids)  # type: ignore[arg-type]
        sampling = Sampling(tracer_provider.sampler, ids)
        for name in trace_names:
            exporter = _load_exporter(name, "traces", env)()
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = tracer_provider.get_tracer("fanout", __version__)
        closers.append(tracer_provider.shutdown)
    else:
        log.info("tracing export is off (OTEL_TRACES_EXPORTER=none); metrics are exported")

    meter_provider: Any = None
    registry: Any = None
    if metric_names:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader

        readers: list[MetricReader] = []
        for name in metric_names:
            if name == "prometheus":
                # Our own registry (not prometheus_client's global one), served on /metrics of
                # FANOUT_HTTP_PORT instead of the exporter's separate HTTP server.
                from opentelemetry.exporter.prometheus import PrometheusMetricReader
                from prometheus_client import CollectorRegistry

                registry = CollectorRegistry(auto_describe=True)
                readers.append(PrometheusMetricReader(registry=registry))
            else:
                exporter = _load_exporter(name, "metrics", env)()
                # Interval from OTEL_METRIC_EXPORT_INTERVAL; shutdown exports a last time.
                readers.append(PeriodicExportingMetricReader(exporter))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        meter = meter_provider.get_meter("fanout", __version__)
        closers.append(meter_provider.shutdown)
    else:
        meter = metrics.NoOpMeterProvider().get_meter("fanout")

    if tracer_provider is not None and "aiohttp-client" not in _disabled_instrumentations(env):
        closers.append(_instrument_aiohttp(tracer_provider))

    log.info(
        "OpenTelemetry on: traces %s, metrics %s, service %s",
        ",".join(trace_names) or "off",
        ",".join(metric_names) or "off",
        resource.attributes.get("service.name"),
    )
    return Telemetry(
        tracer,
        meter,
        Instruments.create(meter),
        tracing=tracer_provider is not None,
        prometheus_registry=registry,
        sampling=sampling,
        _closers=closers,
    )


def _disabled_instrumentations(env: Mapping[str, str]) -> Iterable[str]:
    raw = env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {name.strip() for name in raw.split(",")}


def _instrument_aiohttp(tracer_provider: Any) -> Callable[[], None]:
    """HTTP client spans for every aiohttp request of an SQS call (the SDK's and the lean
    client's sessions), nested under the messaging span that is current while the call runs
    (CallScope). A call whose span is sampled out runs under the suppress-HTTP-instrumentation
    flag, so it makes no HTTP span at all. The exporters use requests/grpc, not aiohttp, and
    the SDK exports under its suppress-instrumentation flag: their traffic never makes spans."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    instrumentor = AioHttpClientInstrumentor()
    # Its HTTP metrics are left on the API's no-op meter: messaging.client.operation.duration
    # already times every call, and they cost as much as the spans.
    instrumentor.instrument(tracer_provider=tracer_provider)

    def uninstrument() -> None:
        instrumentor.uninstrument()

    return uninstrument


class CallObserver:
    """Metrics and span events of one SQS batch call and its retries (``aws.batch.call_batch``)."""

    __slots__ = ("_attributes", "_instruments", "_span")

    def __init__(self, span: Span, instruments: Instruments, operation: str, queue: str) -> None:
        self._span = span
        self._instruments = instruments
        self._attributes = instruments.call_attributes(operation, queue)

    def attempt(self, seconds: float, error_type: str | None = None) -> None:
        attributes = self._attributes
        if error_type is not None:
            attributes = {**attributes, "error.type": error_type}
        self._instruments.operation_duration.record(seconds, attributes)

    def retry(self, attempt: int, code: str, entries: int) -> None:
        if self._span.is_recording():
            self._span.add_event(
                "retry",
                {
                    "fanout.attempt": attempt,
                    "error.type": code,
                    "messaging.batch.message_count": entries,
                },
            )


def link_to(contexts: Iterable[SpanContext | None]) -> list[trace.Link]:
    """Links to distinct valid span contexts (a batch's process spans)."""
    seen: set[int] = set()
    links: list[trace.Link] = []
    for context in contexts:
        if context is not None and context.is_valid and context.span_id not in seen:
            seen.add(context.span_id)
            links.append(trace.Link(context))
    return links
