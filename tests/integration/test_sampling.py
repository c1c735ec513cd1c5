"""Sampling over a real run (`fanout run` against moto, OTLP to a receiver on 127.0.0.1): at
ratio 0 nothing but a sampled parent's event is recorded, and every copy carries a traceparent
whose trace id and sampled flag a downstream parent-based sampler can follow."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from fanout.aws.urls import queue_name
from tests.integration.test_observability import by_prefix, receiver, run_fanout
from tests.support.harness import Harness, dumps, simplified
from tests.support.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration
__all__ = ["receiver"]  # the fixture, shared with test_observability

RULES = """
targets:
  out: {{queue_url: "{out}"}}
rules:
  - id: all
    condition: "`true`"
    targets: [out]
"""


def traceparent(trace_id: str, flags: str) -> dict[str, Any]:
    value = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-{flags}"
    return {"traceparent": {"DataType": "String", "StringValue": value}}


async def test_ratio_zero_honours_a_sampled_parent_and_propagates_the_flag(
    harness: Harness, receiver: OtlpReceiver
) -> None:
    h = harness
    source, dlq, out = [await h.queue(n) for n in ("source", "dlq", "out")]
    rules = h.rules(RULES.format(out=out))
    sampled_trace, unsampled_trace = uuid.uuid4().hex, uuid.uuid4().hex
    sampled, unsampled = simplified(), simplified()
    roots = [simplified() for _ in range(5)]
    await h.send(source, [dumps(sampled)], MessageAttributes=traceparent(sampled_trace, "01"))
    await h.send(source, [dumps(unsampled)], MessageAttributes=traceparent(unsampled_trace, "00"))
    await h.send(source, [dumps(e) for e in roots])

    code, logs = await run_fanout(
        h,
        source,
        dlq,
        rules,
        receiver,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.0",
    )
    assert code == 0, logs

    copies = {orjson.loads(m["Body"])["id"]: m for m in await h.drain(out)}
    assert len(copies) == 7

    def parts(event: dict[str, Any]) -> list[str]:
        attrs = copies[event["id"]]["MessageAttributes"]
        return str(attrs["traceparent"]["StringValue"]).split("-")

    # The sampled parent wins over ratio 0: its event is recorded, in its trace.
    spans = receiver.spans()
    [process] = by_prefix(spans, "process ")
    assert process.trace_id == sampled_trace
    assert process.attributes["fanout.event.id"] == sampled["id"]
    assert parts(sampled) == ["00", sampled_trace, process.span_id, "01"]
    # Nothing else is recorded: no receive, send or settle span (roots at ratio 0), and no HTTP
    # client span (sampled-out calls suppress the HTTP client instrumentation).
    assert {s.name for s in spans} == {f"process {queue_name(source)}"}

    # The unsampled parent's trace goes on, still not sampled.
    version, trace_id, span_id, flags = parts(unsampled)
    assert (version, trace_id, flags) == ("00", unsampled_trace, "00")
    assert len(span_id) == 16 and int(span_id, 16) != 0
    # Roots sampled out: a trace id of their own each, sampled flag clear.
    root_parts = [parts(e) for e in roots]
    assert len({p[1] for p in root_parts}) == len(roots)
    assert all(int(p[3], 16) & 0x01 == 0 for p in root_parts)
    # Metrics are not sampled.
    assert receiver.metric_total("fanout.copies") == 7
