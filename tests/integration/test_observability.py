"""Observability end to end: a `fanout run` subprocess against moto exports over OTLP/HTTP to a
real receiver on 127.0.0.1; plus the hop, the attribute cap, PII, health endpoints, config."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from fanout.aws.urls import queue_name
from fanout.config import Settings
from fanout.errors import ConfigError
from fanout.observability.health import not_ready_reason
from fanout.observability.telemetry import setup_telemetry
from fanout.pipeline.inflight import InFlight, Received
from tests.support.harness import PII, Harness, dumps, pii_event, run_fanout_cli, simplified
from tests.support.otlp_receiver import OtlpReceiver, SpanView

pytestmark = pytest.mark.integration

OPERATIONS = ("receive ", "process ", "send ", "settle ")


@pytest.fixture
async def receiver() -> Any:
    r = OtlpReceiver()
    await r.start()
    yield r
    await r.stop()


async def run_fanout(
    h: Harness, source: str, dlq: str, rules: Path, receiver: OtlpReceiver, **env: str
) -> tuple[int, str]:
    """`python -m fanout run --exit-when-idle` in its own process, exporting to ``receiver``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FANOUT_"))}
    base.update(
        {
            "FANOUT_SOURCE_QUEUE_URL": source,
            "FANOUT_DLQ_URL": dlq,
            "FANOUT_ENDPOINT_URL": h.endpoint,
            "FANOUT_REGION": "us-east-1",
            "FANOUT_RULES": str(rules),
            "FANOUT_WAIT_TIME_SECONDS": "1",
            "FANOUT_POLLERS": "1",
            "FANOUT_MAX_POLLERS": "1",
            "FANOUT_LINGER_MS": "5",
            "FANOUT_LOG_FORMAT": "json",
            "OTEL_SERVICE_NAME": "fanout-test",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            **env,
        }
    )
    code, _, err = await run_fanout_cli("run", "--exit-when-idle", "1", env=base, timeout=120)
    return code, err


def by_prefix(spans: list[SpanView], prefix: str) -> list[SpanView]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_spans_metrics_and_logs_of_a_real_run(
    harness: Harness, receiver: OtlpReceiver
) -> None:
    h = harness
    source, dlq, critical, high = [await h.queue(n) for n in ("source", "dlq", "crit", "high")]
    rules = h.rules(
        f"""
targets:
  critical: {{queue_url: "{critical}"}}
  high: {{queue_url: "{high}"}}
rules:
  - id: critical
    condition: detail.tags.priority == 'critical'
    targets: [critical]
  - id: long-call
    condition: detail.eventBody.interactingDurationMs > `600000`
    targets: [high]
"""
    )
    crit_events = [simplified("critical") for _ in range(3)]
    long_calls = [pii_event(interactingDurationMs=700000) for _ in range(2)]
    unmatched = pii_event(interactingDurationMs=5000)
    invalid = pii_event(interactingDurationMs="very long")  # invalid_detail, names the field
    bodies = [dumps(e) for e in [*crit_events, *long_calls, unmatched, invalid]] + ["not json"]
    await h.send(source, bodies)

    code, logs = await run_fanout(h, source, dlq, rules, receiver)
    assert code == 0, logs
    assert "/v1/traces" in receiver.paths and "/v1/metrics" in receiver.paths

    spans = receiver.spans()
    names = {s.name for s in spans if s.name.startswith(OPERATIONS)}
    src, crit_q, high_q, dlq_q = (queue_name(u) for u in (source, critical, high, dlq))
    assert names == {
        f"receive {src}",
        f"process {src}",
        f"send {crit_q}",
        f"send {high_q}",
        f"send {dlq_q}",
        f"settle {src}",
    }
    kinds = {s.name.split()[0]: s.kind for s in spans if s.name.startswith(OPERATIONS)}
    assert kinds == {
        "receive": "CLIENT",
        "process": "CONSUMER",
        "send": "PRODUCER",
        "settle": "CLIENT",
    }
    for span in spans:
        if span.name.startswith(OPERATIONS):
            assert span.attributes["messaging.system"] == "aws_sqs", span
    resource = spans[0].resource
    assert resource["service.name"] == "fanout-test"
    assert resource["service.version"] and resource["host.name"]
    assert isinstance(resource["process.pid"], int)

    receives = by_prefix(spans, "receive ")
    assert sum(s.attributes["messaging.batch.message_count"] for s in receives) == len(bodies)
    assert {s.attributes["aws.sqs.queue.url"] for s in receives} == {source}

    process = by_prefix(spans, "process ")
    assert len(process) == len(bodies)
    outcomes = Counter(s.attributes["fanout.outcome"] for s in process)
    assert outcomes == {"sent": 5, "unmatched": 1, "dlq": 2}
    by_event = {s.attributes.get("fanout.event.id"): s for s in process}
    for event in crit_events:
        span = by_event[event["id"]]
        assert span.attributes["fanout.rule_ids"] == ("critical",)
        assert span.attributes["fanout.event.type"] == "Interaction Completed"
        assert span.attributes["messaging.message.id"]
    for event in long_calls:
        assert by_event[event["id"]].attributes["fanout.rule_ids"] == ("long-call",)
    assert "fanout.rule_ids" not in by_event[unmatched["id"]].attributes
    errors = sorted(s.attributes["error.type"] for s in process if "error.type" in s.attributes)
    assert errors == ["invalid_detail", "invalid_json"]

    # send -> process links: every routed event's process span is linked from its target's send.
    for queue, events in ((crit_q, crit_events), (high_q, long_calls)):
        sends = [s for s in spans if s.name == f"send {queue}"]
        assert sum(s.attributes["messaging.batch.message_count"] for s in sends) == len(events)
        assert {s.attributes["messaging.destination.name"] for s in sends} == {queue}
        linked = {link for s in sends for link in s.links}
        expected = {(by_event[e["id"]].trace_id, by_event[e["id"]].span_id) for e in events}
        assert linked == expected
    dlq_sends = [s for s in spans if s.name == f"send {dlq_q}"]
    reasons = {r for s in dlq_sends for r in s.attributes["fanout.dlq.reasons"]}
    assert reasons == {"invalid_json", "invalid_detail"}

    settles = by_prefix(spans, "settle ")
    deleted = [
        s for s in settles if s.attributes["messaging.operation.name"] == "DeleteMessageBatch"
    ]
    assert sum(s.attributes["messaging.batch.message_count"] for s in deleted) == len(bodies)

    # aiohttp client spans nest under the messaging spans; the exporter's own POSTs make none.
    messaging_ids = {s.span_id for s in spans if s.name.startswith(OPERATIONS)}
    (check,) = [s for s in spans if s.name == "check queues"]  # start-up GetQueueAttributes
    messaging_ids.add(check.span_id)
    http = [s for s in spans if not s.name.startswith(OPERATIONS) and s is not check]
    assert http and all(s.kind == "CLIENT" for s in http)
    assert all(s.parent_span_id in messaging_ids for s in http)
    assert not [s for s in spans if receiver.endpoint in str(s.attributes)]

    # Metrics: counts equal what was routed.
    m = receiver.metric_total
    assert m("messaging.client.consumed.messages") == len(bodies)
    assert m("messaging.client.sent.messages") == 5 + 2  # copies + DLQ records
    assert m("fanout.copies", **{"fanout.target": "critical"}) == 3
    assert m("fanout.copies", **{"fanout.target": "high"}) == 2
    assert m("fanout.rule.matches", **{"fanout.rule.id": "critical"}) == 3
    assert m("fanout.rule.matches", **{"fanout.rule.id": "long-call"}) == 2
    assert m("fanout.unmatched") == 1
    assert m("fanout.dlq.writes", **{"fanout.dlq.reason": "invalid_json"}) == 1
    assert m("fanout.dlq.writes", **{"fanout.dlq.reason": "invalid_detail"}) == 1
    assert m("messaging.process.duration") == len(bodies)
    assert m("fanout.lag") == 5
    assert m("fanout.batch.entries") >= 3  # one per SendMessageBatch: >= one per queue
    assert m("fanout.traceparent.skipped") == 0
    operations = {
        a["messaging.operation.name"]
        for a, _ in receiver.metrics()["messaging.client.operation.duration"]
    }
    assert {"ReceiveMessage", "SendMessageBatch", "DeleteMessageBatch"} <= operations
    assert "fanout.inflight.messages" in receiver.metrics()
    # Adaptive concurrency gauges: pollers, each queue's limit (targets and dlq), deletes.
    gauges = receiver.metrics()
    assert "fanout.pollers" in gauges
    sends = {a["fanout.target"]: v for a, v in gauges["fanout.send.concurrency"]}
    assert {"critical", "high", "dlq"} <= set(sends) and min(sends.values()) >= 1
    assert next(v for _, v in gauges["fanout.delete.concurrency"]) >= 1
    assert next(v for _, v in gauges["fanout.inflight.limit"]) >= 1000  # FANOUT_MAX_IN_FLIGHT
    assert [v for _, v in gauges["fanout.inflight.bytes.limit"]] == [128 * 2**20]

    # No PII: not in any exported span attribute or event, not in any log line.
    exported = repr([(s.attributes, s.events, s.links) for s in spans])
    for value in PII.values():
        assert value not in exported
        assert value not in logs
    # JSON logs: one object per line; lines about an event carry its ids.
    records = [orjson.loads(line) for line in logs.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    dlq_lines = [r for r in records if "to DLQ" in r["message"]]
    assert len(dlq_lines) == 2
    assert all(r["message_id"] and "event_id" in r for r in dlq_lines)
    assert sum("tracing export is off" in r["message"] for r in records) == 0
    assert sum(r["level"] == "INFO" for r in records) < 10  # state changes, not events


async def test_trace_context_crosses_the_hop(harness: Harness, receiver: OtlpReceiver) -> None:
    h = harness
    source, dlq, out = [await h.queue(n) for n in ("source", "dlq", "out")]
    rules = h.rules(
        f"""
targets:
  out: {{queue_url: "{out}"}}
rules:
  - id: all
    condition: "`true`"
    targets: [out]
"""
    )
    upstream_trace, upstream_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    xray_trace, xray_parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    w3c, xray, full = simplified(), simplified(), simplified()
    traceparent = f"00-{upstream_trace}-{upstream_span}-01"
    await h.send(
        source,
        [dumps(w3c)],
        MessageAttributes={"traceparent": {"DataType": "String", "StringValue": traceparent}},
    )
    header = f"Root=1-{xray_trace[:8]}-{xray_trace[8:]};Parent={xray_parent};Sampled=1"
    await h.sqs.send_message(  # moto keeps system attributes from SendMessage only
        QueueUrl=source,
        MessageBody=dumps(xray),
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
    )
    ten = {f"attr{i}": {"DataType": "String", "StringValue": f"v{i}"} for i in range(10)}
    await h.send(source, [dumps(full)], MessageAttributes=ten)

    code, logs = await run_fanout(h, source, dlq, rules, receiver)
    assert code == 0, logs

    copies = {orjson.loads(m["Body"])["id"]: m for m in await h.drain(out)}
    process = {s.attributes["fanout.event.id"]: s for s in by_prefix(receiver.spans(), "process ")}

    def copy_traceparent(event: dict[str, Any]) -> list[str]:
        return str(copies[event["id"]]["MessageAttributes"]["traceparent"]["StringValue"]).split(
            "-"
        )

    # W3C: the process span continues the upstream trace, links to it, and the copy carries it on.
    span = process[w3c["id"]]
    assert span.trace_id == upstream_trace and span.parent_span_id == upstream_span
    assert (upstream_trace, upstream_span) in span.links
    assert copy_traceparent(w3c) == ["00", upstream_trace, span.span_id, "01"]
    assert copies[w3c["id"]]["MessageAttributes"]["fanout.event_id"]["StringValue"] == w3c["id"]

    # X-Ray AWSTraceHeader: same, from the system attribute.
    span = process[xray["id"]]
    assert span.trace_id == xray_trace and (xray_trace, xray_parent) in span.links
    assert copy_traceparent(xray) == ["00", xray_trace, span.span_id, "01"]

    # Ten attributes already: the copy keeps exactly those, no injection, and it is counted.
    attrs = copies[full["id"]]["MessageAttributes"]
    assert {k: v["StringValue"] for k, v in attrs.items()} == {
        k: v["StringValue"] for k, v in ten.items()
    }
    assert receiver.metric_total("fanout.traceparent.skipped") == 1
    assert receiver.metric_total("fanout.copies") == 3


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """A clean OTEL_* environment plus the given variables."""
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)

    def setenv(**variables: str) -> None:
        for key, value in variables.items():
            monkeypatch.setenv(key, value)

    return setenv


def test_nothing_configured_means_no_export_and_one_line(
    otel_env: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fanout"):
        telemetry = setup_telemetry()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("tracing export is off")
    assert telemetry.tracing is False and telemetry.prometheus_registry is None
    span = telemetry.tracer.start_span("x")
    assert not span.is_recording() and not span.get_span_context().is_valid
    telemetry.shutdown()


def test_sdk_disabled_wins_over_an_endpoint(
    otel_env: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    otel_env(OTEL_SDK_DISABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    with caplog.at_level(logging.INFO, logger="fanout"):
        telemetry = setup_telemetry()
    assert telemetry.tracing is False
    assert "OTEL_SDK_DISABLED" in caplog.text


def test_bad_protocol_and_exporter_names_are_config_errors(
    otel_env: Callable[..., None],
) -> None:
    otel_env(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="udp")
    with pytest.raises(ConfigError, match="grpc or http/protobuf"):
        setup_telemetry()
    otel_env(OTEL_TRACES_EXPORTER="zipkin-ish")
    with pytest.raises(ConfigError, match="unknown exporter 'zipkin-ish'"):
        setup_telemetry()


def test_sampler_comes_from_the_standard_variables(otel_env: Callable[..., None]) -> None:
    otel_env(
        OTEL_TRACES_EXPORTER="console",
        OTEL_TRACES_SAMPLER="traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="aiohttp-client",
    )
    telemetry = setup_telemetry()
    try:
        assert telemetry.tracing is True
        assert not telemetry.tracer.start_span("x").is_recording()
    finally:
        telemetry.shutdown()


def test_readiness_reasons() -> None:
    inflight = InFlight(10)
    assert not_ready_reason(inflight, window=5, stopping=False) == "no successful receive yet"
    inflight.last_receive_ok_at = inflight.last_settled_at = now = 1000.0
    assert not_ready_reason(inflight, window=5, stopping=False, now=now + 4) is None
    assert not_ready_reason(inflight, window=5, stopping=True, now=now) == "shutting down"
    stale = not_ready_reason(inflight, window=5, stopping=False, now=now + 6)
    assert stale == "no successful receive for 6s"
    for i in range(10):  # full: backpressure holds the pollers, settling decides
        inflight.admit(Received(str(i), f"rh{i}", "{}"))
        inflight.unreserve(-1)
    inflight.last_settled_at = now
    assert not_ready_reason(inflight, window=5, stopping=False, now=now + 4) is None
    assert "stuck: 10 messages in flight" in str(
        not_ready_reason(inflight, window=5, stopping=False, now=now + 6)
    )


async def test_health_endpoints_over_http(harness: Harness, otel_env: Callable[..., None]) -> None:
    h = harness
    source, dlq, out = [await h.queue(n) for n in ("source", "dlq", "out")]
    rules = h.rules(
        f'targets:\n  out: {{queue_url: "{out}"}}\n'
        'rules:\n  - id: all\n    condition: "`true`"\n    targets: [out]\n'
    )
    settings: Settings = h.settings(source, dlq, rules, http_port=0, http_host="127.0.0.1")
    otel_env(OTEL_METRICS_EXPORTER="prometheus", OTEL_TRACES_EXPORTER="none")
    telemetry = setup_telemetry()
    service, cm, _ = await h.start(settings, telemetry=telemetry)
    run = asyncio.create_task(service.run())
    try:
        async with aiohttp.ClientSession() as http:
            assert service.health is not None
            while service.health.port is None:
                await asyncio.sleep(0.01)
            base = f"http://127.0.0.1:{service.health.port}"
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            for _ in range(200):  # ready once the first receive came back
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        break
                    assert response.status == 503
                    assert "receive" in await response.text()
                await asyncio.sleep(0.05)
            assert response.status == 200
            await h.send(source, [dumps(simplified()) for _ in range(4)])
            while service.stats.deleted < 4:
                await asyncio.sleep(0.05)
            async with http.get(f"{base}/metrics") as response:
                text = await response.text()
            assert response.status == 200
            assert 'fanout_copies_total{fanout_target="out"' in text
            assert "messaging_client_consumed_messages_total" in text
    finally:
        service.stop.set()
        await asyncio.wait_for(run, 30)
        await cm.__aexit__(None, None, None)
        telemetry.shutdown()


async def test_metrics_endpoint_is_404_without_prometheus(harness: Harness) -> None:
    h = harness
    source, dlq, out = [await h.queue(n) for n in ("source", "dlq", "out")]
    rules = h.rules(
        f'targets:\n  out: {{queue_url: "{out}"}}\n'
        'rules:\n  - id: all\n    condition: "`true`"\n    targets: [out]\n'
    )
    settings = h.settings(source, dlq, rules, http_port=0, http_host="127.0.0.1")
    service, cm, _ = await h.start(settings)
    run = asyncio.create_task(service.run())
    try:
        assert service.health is not None
        while service.health.port is None:
            await asyncio.sleep(0.01)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{service.health.port}/metrics") as response,
        ):
            assert response.status == 404
            assert "OTEL_METRICS_EXPORTER=prometheus" in await response.text()
    finally:
        service.stop.set()
        await asyncio.wait_for(run, 30)
        await cm.__aexit__(None, None, None)


def test_rule_errors_do_not_quote_event_values(tmp_path: Path) -> None:
    from fanout.rules import RuleError, load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(
        'targets:\n  t: {queue_url: "http://127.0.0.1:1/000000000000/t"}\n'
        "rules:\n  - id: bad\n    condition: abs(detail.eventBody.ani) > `1`\n    targets: [t]\n"
    )
    rules = load_rules(path)
    with pytest.raises(RuleError) as caught:
        rules.match(pii_event())
    assert "abs()" in str(caught.value) and "string" in str(caught.value)
    assert PII["ani"] not in str(caught.value)
