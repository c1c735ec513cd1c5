"""End-to-end pipeline tests against moto's SQS server on 127.0.0.1 (no mocks of aioboto3)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from fanout.aws.urls import queue_name
from fanout.testing.faultproxy import Delay, ErrorResponse, FailEntries, FaultProxy
from tests.support.harness import Harness, conversation, dumps, ids_of, simplified

pytestmark = pytest.mark.integration

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"

RULES = """
match: {match}
targets:
  critical: {{queue_url: "{critical}"}}
  high: {{queue_url: "{high}"}}
  standard: {{queue_url: "{standard}"}}
  supervisors: {{queue_url: "{supervisors}"}}
  ledger:
    queue_url: "{ledger}"
    fifo: {{message_group_id: detail.eventBody.conversationId}}
default_targets: {defaults}
rules:
  - id: critical
    condition: detail.tags.priority == 'critical'
    targets: [critical]
    stop: {stop}
  - id: high
    condition: detail.tags.priority == 'high' || detail.duration_ms > `120000`
    targets: [high]
  - id: standard
    condition: detail.channel == 'voice' && detail.outcome == 'completed'
    targets: [standard]
  - id: long-voice
    condition: >-
      "detail-type" == 'v2.detail.events.conversation.{{id}}.user.end'
      && detail.eventBody.mediaType == 'VOICE' && detail.eventBody.interactingDurationMs > `600000`
    targets: [supervisors, high]
  - id: abandoned
    condition: detail.eventBody.acdOutcome == 'ABANDON'
    targets: [supervisors]
  - id: wrapup
    condition: >-
      starts_with("detail-type", 'v2.detail.events.conversation.')
      && detail.eventBody.wrapupCode != null
    targets: [ledger]
"""

TARGETS = ("critical", "high", "standard", "supervisors")


async def setup(
    h: Harness, *, match: str = "all", stop: bool = False, defaults: str = "[]", **extra: Any
) -> dict[str, Any]:
    urls = {name: await h.queue(name) for name in ("source", "dlq", *TARGETS)}
    urls["ledger"] = await h.queue("ledger", fifo=True)
    path = h.rules(RULES.format(match=match, stop=str(stop).lower(), defaults=defaults, **urls))
    urls["settings"] = h.settings(urls["source"], urls["dlq"], path, **extra)
    return urls


async def target_ids(h: Harness, urls: dict[str, Any]) -> dict[str, list[str]]:
    return {name: sorted(ids_of(await h.drain(urls[name]))) for name in (*TARGETS, "ledger")}


async def test_routes_original_and_genesys_events(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    events = {
        "critical_voice": simplified("critical"),  # critical + standard
        "high": simplified("high", channel="chat", outcome="abandoned"),
        "long": simplified("low", channel="email", duration_ms=120001),
        "edge": simplified("low", channel="email", duration_ms=120000),  # not > 120000
        "standard": simplified("normal"),
        "long_call": conversation("user.end", mediaType="VOICE", interactingDurationMs=700000),
        "short_call": conversation("user.end", mediaType="VOICE", interactingDurationMs=5000),
        "abandon": conversation("acd.end", mediaType="VOICE", acdOutcome="ABANDON"),
        "wrapup": conversation("wrapup", wrapupCode="c0ffee", mediaType="CHAT"),
    }
    bodies = {name: dumps(event) for name, event in events.items()}
    await h.send(urls["source"], list(bodies.values()))

    stats = await h.run_until_idle(urls["settings"])

    eid = {name: event["id"] for name, event in events.items()}
    got = await target_ids(h, urls)
    assert got["critical"] == [eid["critical_voice"]]
    assert got["high"] == sorted([eid["high"], eid["long"], eid["long_call"]])
    assert got["standard"] == sorted([eid["critical_voice"], eid["standard"]])
    assert got["supervisors"] == sorted([eid["long_call"], eid["abandon"]])
    assert got["ledger"] == [eid["wrapup"]]
    assert await h.drain(urls["dlq"]) == []
    assert await h.depth(urls["source"]) == (0, 0)
    assert stats.received == stats.deleted == len(events)
    assert stats.unmatched == 2  # "edge" and "short_call"
    assert stats.per_rule["standard"] == 2 and stats.per_rule["long-voice"] == 1
    assert stats.per_target["high"] == 3


async def test_copy_is_the_original_body_with_event_id_attribute(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    # Odd spacing and key order: a re-serialising implementation would change these bytes.
    body = (
        '{"id":"e-1",  "source":"genesys.cloud","detail-type":"Interaction Completed",'
        '"detail":{"tags":{"priority":"critical"},"x":"\u00e9"}}'
    )
    await h.send(
        urls["source"],
        [body],
        MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme"}},
    )
    await h.run_until_idle(urls["settings"])
    [copy] = await h.drain(urls["critical"])
    assert copy["Body"] == body
    assert copy["MessageAttributes"]["fanout.event_id"]["StringValue"] == "e-1"
    assert copy["MessageAttributes"]["tenant"]["StringValue"] == "acme"


@pytest.mark.parametrize(
    ("match", "stop", "expected"),
    [
        ("first", False, {"critical"}),
        ("all", True, {"critical"}),
        ("all", False, {"critical", "high", "standard"}),
    ],
)
async def test_first_match_and_stop(
    harness: Harness, match: str, stop: bool, expected: set[str]
) -> None:
    h = harness
    urls = await setup(h, match=match, stop=stop)
    event = simplified("critical", duration_ms=999999)  # matches critical, high, standard
    await h.send(urls["source"], [dumps(event)])
    stats = await h.run_until_idle(urls["settings"])
    got = await target_ids(h, urls)
    assert {name for name, ids in got.items() if ids} == expected
    assert stats.deleted == 1


async def test_default_targets_receive_unmatched_events(harness: Harness) -> None:
    h = harness
    urls = await setup(h, defaults="[standard]")
    unmatched = simplified("low", channel="sms", outcome="abandoned")
    await h.send(urls["source"], [dumps(unmatched)])
    stats = await h.run_until_idle(urls["settings"])
    got = await target_ids(h, urls)
    assert got["standard"] == [unmatched["id"]]
    assert stats.unmatched == 1 and stats.defaulted == 1


async def test_fifo_target_group_id_and_deterministic_dedup(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    event = conversation("wrapup", wrapupCode="c0ffee", conversationId="conv-42")
    # The same event delivered twice (EventBridge/SQS at-least-once): one copy in the FIFO.
    await h.send(urls["source"], [dumps(event), dumps(event)])
    stats = await h.run_until_idle(urls["settings"])
    copies = await h.drain(urls["ledger"])
    assert len(copies) == 1
    attrs = copies[0]["Attributes"]
    assert attrs["MessageGroupId"] == "conv-42"
    expected = hashlib.sha256(f"{event['id']}\x00ledger".encode()).hexdigest()
    assert attrs["MessageDeduplicationId"] == expected
    assert stats.per_target["ledger"] == 2  # both accepted by SQS; SQS deduplicated
    assert stats.deleted == 2


@pytest.mark.parametrize(
    ("body", "reason", "mentions"),
    [
        ("not json {", "invalid_json", "not JSON"),
        ("[1, 2, 3]", "invalid_envelope", "array"),
        ('{"id": "x", "source": "s", "detail-type": "t"}', "invalid_envelope", "detail"),
        (
            '{"id": "x", "source": "s", "detail-type": "t", "detail": "str"}',
            "invalid_envelope",
            "detail",
        ),
        (dumps(simplified("high", duration_ms="120001")), "invalid_detail", "detail.duration_ms"),
        (
            dumps(conversation("user.end", interactingDurationMs="long")),
            "invalid_detail",
            "detail.eventBody.interactingDurationMs",
        ),
    ],
)
async def test_bad_bodies_go_to_dlq_with_reason(
    harness: Harness, body: str, reason: str, mentions: str
) -> None:
    h = harness
    urls = await setup(h)
    good = simplified("critical")
    await h.send(urls["source"], [body, dumps(good)])
    stats = await h.run_until_idle(urls["settings"])
    [dead] = await h.drain(urls["dlq"])
    record = orjson.loads(dead["Body"])
    assert record["reason"] == reason
    assert mentions in record["error_message"]
    assert record["body"] == body  # the original, for redrive
    assert record["approximate_receive_count"] == 1
    assert record["source_message_id"]
    assert dead["MessageAttributes"]["fanout.reason"]["StringValue"] == reason
    assert (await target_ids(h, urls))["critical"] == [good["id"]]  # the service kept going
    assert await h.depth(urls["source"]) == (0, 0)
    assert stats.dlq[reason] == 1


async def test_copy_over_target_size_limit_is_dead_lettered(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    # An older queue with the former 256 KiB-era style limit, here 2 KiB for the test.
    await h.sqs.set_queue_attributes(
        QueueUrl=urls["high"], Attributes={"MaximumMessageSize": "2048"}
    )
    event = simplified("critical", duration_ms=999999)  # critical, high, standard
    event["detail"]["notes"] = "x" * 3000
    await h.send(urls["source"], [dumps(event)])
    stats = await h.run_until_idle(urls["settings"])
    got = await target_ids(h, urls)
    assert got["critical"] == got["standard"] == [event["id"]]  # partial fan-out delivered
    [dead] = await h.drain(urls["dlq"])
    record = orjson.loads(dead["Body"])
    assert record["failed_targets"] == ["high"]  # only the target that failed
    assert record["error_code"] == "MessageTooLarge"
    assert orjson.loads(record["body"])["id"] == event["id"]
    assert stats.deleted == 1


async def test_target_deleted_mid_run_goes_to_dlq(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    service, cm, _ = await h.start(urls["settings"])
    try:
        run = asyncio.create_task(service.run(exit_when_idle=1.5))
        await h.sqs.delete_queue(QueueUrl=urls["critical"])
        events = [simplified("critical", channel="chat") for _ in range(3)]
        await h.send(urls["source"], [dumps(e) for e in events])
        stats = await asyncio.wait_for(run, 30)
    finally:
        await cm.__aexit__(None, None, None)
    records = [orjson.loads(m["Body"]) for m in await h.drain(urls["dlq"])]
    assert sorted(orjson.loads(r["body"])["id"] for r in records) == sorted(e["id"] for e in events)
    assert {r["error_code"] for r in records} == {"AWS.SimpleQueueService.NonExistentQueue"}
    assert all(r["failed_targets"] == ["critical"] for r in records)
    assert stats.deleted == 3


async def test_partial_batch_failure_retries_only_failed_entries(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    urls = await setup(h, linger_ms=200)
    events = [simplified("critical", channel="chat") for _ in range(6)]
    doomed = {events[1]["id"], events[4]["id"]}
    async with FaultProxy(moto_endpoint) as proxy:
        rule = proxy.add(
            FailEntries(
                "SendMessageBatch",
                code="InternalError",
                sender_fault=False,
                select=lambda entry: orjson.loads(entry["MessageBody"])["id"] in doomed,
                queue=queue_name(urls["critical"]),
            )
        )
        await h.send(urls["source"], [dumps(e) for e in events])
        stats = await h.run_until_idle(urls["settings"], endpoint=proxy.url)
        sends = [b for b in proxy.bodies("SendMessageBatch") if b["QueueUrl"].endswith("critical")]
    assert rule.hits == 1
    assert len(sends) == 2
    assert len(sends[0]["Entries"]) == 6
    retried = {orjson.loads(e["MessageBody"])["id"] for e in sends[1]["Entries"]}
    assert retried == doomed
    assert sorted(ids_of(await h.drain(urls["critical"]))) == sorted(e["id"] for e in events)
    assert stats.retries["InternalError"] == 1


async def test_non_retryable_entry_failure_dead_letters_only_that_event(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    urls = await setup(h, linger_ms=200)
    events = [simplified("critical", channel="chat") for _ in range(4)]
    bad = events[2]["id"]
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(
            FailEntries(
                "SendMessageBatch",
                code="InvalidParameterValue",
                sender_fault=True,
                select=lambda entry: orjson.loads(entry["MessageBody"])["id"] == bad,
                queue=queue_name(urls["critical"]),
            )
        )
        await h.send(urls["source"], [dumps(e) for e in events])
        stats = await h.run_until_idle(urls["settings"], endpoint=proxy.url)
    assert sorted(ids_of(await h.drain(urls["critical"]))) == sorted(
        e["id"] for e in events if e["id"] != bad
    )
    [dead] = [orjson.loads(m["Body"]) for m in await h.drain(urls["dlq"])]
    assert dead["event_id"] == bad and dead["error_code"] == "InvalidParameterValue"
    assert stats.retries == {}  # SenderFault without throttling: not retried
    assert stats.deleted == 4


async def test_throttled_send_is_retried_with_backoff(harness: Harness, moto_endpoint: str) -> None:
    h = harness
    urls = await setup(h)
    event = simplified("critical", channel="chat")
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(ErrorResponse("SendMessageBatch", status=403, code="RequestThrottled", times=2))
        await h.send(urls["source"], [dumps(event)])
        stats = await h.run_until_idle(urls["settings"], endpoint=proxy.url)
    assert ids_of(await h.drain(urls["critical"])) == [event["id"]]
    assert stats.retries["RequestThrottled"] == 2


async def test_dlq_write_failure_leaves_source_message(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    urls = await setup(h, visibility_timeout_seconds=30)
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(
            ErrorResponse(
                "SendMessageBatch",
                status=403,
                code="AccessDenied",
                sender_fault=True,
                queue=queue_name(urls["dlq"]),
                times=None,
            )
        )
        await h.send(urls["source"], ["garbage"])
        stats = await h.run_until_idle(urls["settings"], endpoint=proxy.url)
    assert stats.deleted == 0 and stats.abandoned == 1
    # Not deleted and not released: it comes back after its visibility timeout.
    assert await h.depth(urls["source"]) == (0, 1)
    assert await h.drain(urls["dlq"]) == []


async def test_receive_errors_are_retried(harness: Harness, moto_endpoint: str) -> None:
    h = harness
    urls = await setup(h, pollers=1)
    event = simplified("critical")
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(ErrorResponse("ReceiveMessage", status=503, code="ServiceUnavailable", times=3))
        await h.send(urls["source"], [dumps(event)])
        stats = await h.run_until_idle(urls["settings"], endpoint=proxy.url, idle=1.5)
    assert ids_of(await h.drain(urls["critical"])) == [event["id"]]
    assert stats.errors["receive:ServiceUnavailable"] == 3


async def test_failed_delete_entries_are_retried_and_expired_receipts_tolerated(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    urls = await setup(h, linger_ms=100)
    events = [simplified("critical") for _ in range(3)]
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(FailEntries("DeleteMessageBatch", code="InternalError", max_entries=1))
        proxy.add(
            FailEntries(
                "DeleteMessageBatch",
                code="ReceiptHandleIsInvalid",
                sender_fault=True,
                max_entries=1,
            )
        )
        await h.send(urls["source"], [dumps(e) for e in events])
        stats = await h.run_until_idle(urls["settings"], endpoint=proxy.url)
    assert stats.retries["InternalError"] == 1
    assert stats.expired_receipts == 1
    assert stats.deleted == 2
    # The "expired" one was never deleted: SQS will redeliver it (here still invisible).
    assert await h.depth(urls["source"]) == (0, 1)


async def test_visibility_is_extended_while_sends_are_slow(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    urls = await setup(h, visibility_timeout_seconds=2)
    event = simplified("critical", channel="chat")
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(Delay("SendMessageBatch", 3.5))
        await h.send(urls["source"], [dumps(event)])
        stats = await h.run_until_idle(urls["settings"], endpoint=proxy.url)
        extensions = proxy.bodies("ChangeMessageVisibilityBatch")
    assert stats.visibility_extended >= 2
    assert all(e["VisibilityTimeout"] == 2 for b in extensions for e in b["Entries"])
    assert stats.received == 1  # never redelivered while held
    assert ids_of(await h.drain(urls["critical"])) == [event["id"]]


async def test_backpressure_bounds_in_flight(harness: Harness, moto_endpoint: str) -> None:
    h = harness
    urls = await setup(h, max_in_flight=10, pollers=3)
    events = [simplified("critical", channel="chat") for _ in range(40)]
    await h.send(urls["source"], [dumps(e) for e in events])
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(Delay("SendMessageBatch", 0.2, times=None))
        _, stats, peak = await h.run_sampling_in_flight(urls["settings"], endpoint=proxy.url)
    assert 1 <= peak <= 10
    assert stats.deleted >= 40  # at-least-once: a duplicate receive is deleted too
    assert sorted(ids_of(await h.drain(urls["critical"]))) == sorted(e["id"] for e in events)


async def test_graceful_shutdown_leaves_no_message_invisible(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    urls = await setup(h, max_in_flight=50, linger_ms=50, visibility_timeout_seconds=60)
    events = [simplified("critical", channel="chat") for _ in range(120)]
    await h.send(urls["source"], [dumps(e) for e in events])
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(Delay("SendMessageBatch", 0.3, times=None))
        service, cm, _ = await h.start(urls["settings"], endpoint=proxy.url)
        try:
            run = asyncio.create_task(service.run())
            while service.stats.received < 30:
                await asyncio.sleep(0.01)
            service.stop.set()  # what SIGTERM does
            stats = await asyncio.wait_for(run, 15)
        finally:
            await cm.__aexit__(None, None, None)
    visible, invisible = await h.depth(urls["source"])
    assert invisible == 0
    delivered = set(ids_of(await h.drain(urls["critical"])))
    assert stats.deleted == len(delivered)
    assert visible + len(delivered) == len(events)
    assert stats.released > 0 or stats.deleted == stats.received


async def test_rules_file_queue_urls_from_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped rules.yaml takes the original script's CRITICAL/HIGH/STANDARD_QUEUE_URL."""
    h = harness
    env = {
        "CRITICAL_QUEUE_URL": await h.queue("critical"),
        "HIGH_QUEUE_URL": await h.queue("high"),
        "STANDARD_QUEUE_URL": await h.queue("standard"),
        "SUPERVISORS_QUEUE_URL": await h.queue("supervisors"),
        "QUALITY_QUEUE_URL": await h.queue("quality"),
        "TEAM_BILLING_QUEUE_URL": await h.queue("billing"),
        "WRAPUP_LEDGER_QUEUE_URL": await h.queue("ledger", fifo=True),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    source = await h.queue("source")
    settings = h.settings(source, None, SHIPPED_RULES)
    event = simplified("critical")
    await h.send(source, [dumps(event)])
    stats = await h.run_until_idle(settings)
    assert ids_of(await h.drain(env["CRITICAL_QUEUE_URL"])) == [event["id"]]
    assert ids_of(await h.drain(env["STANDARD_QUEUE_URL"])) == [event["id"]]
    assert stats.deleted == 1


async def test_without_dlq_failed_messages_stay_for_redrive(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    urls = await setup(h)
    settings = urls["settings"].model_copy(update={"dlq_url": None})
    good = simplified("critical", channel="chat")
    await h.send(urls["source"], ["not json", dumps(good)])
    with caplog.at_level(logging.WARNING, logger="fanout"):
        stats = await h.run_until_idle(settings)
    assert "no DLQ configured" in caplog.text and "no redrive policy" in caplog.text
    assert stats.abandoned == 1 and stats.deleted == 1
    assert await h.depth(urls["source"]) == (0, 1)  # back after its visibility timeout
    assert ids_of(await h.drain(urls["critical"])) == [good["id"]]


async def test_process_span_per_event_with_an_sdk_tracer(harness: Harness) -> None:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from fanout.observability.telemetry import Instruments, Telemetry

    h = harness
    urls = await setup(h)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter = NoOpMeterProvider().get_meter("test")
    telemetry = Telemetry(provider.get_tracer("test"), meter, Instruments.create(meter), True)
    sent = simplified("critical", channel="chat")
    unmatched = simplified("low", channel="fax", outcome="x")
    await h.send(urls["source"], [dumps(sent), dumps(unmatched), "junk"])
    await h.run_until_idle(urls["settings"], telemetry=telemetry)
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("process ")]
    source_name = queue_name(urls["source"])
    assert {s.name for s in spans} == {f"process {source_name}"}
    assert {s.kind for s in spans} == {SpanKind.CONSUMER}
    outcomes = {s.attributes.get("fanout.event.id"): s.attributes["fanout.outcome"] for s in spans}
    assert outcomes == {sent["id"]: "sent", unmatched["id"]: "unmatched", None: "dlq"}


async def test_shutdown_timeout_bounds_the_stop_and_releases_stuck_messages(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    urls = await setup(h, shutdown_timeout_seconds=3, visibility_timeout_seconds=120)
    events = [simplified("critical", channel="chat") for _ in range(5)]
    await h.send(urls["source"], [dumps(e) for e in events])
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(Delay("SendMessageBatch", 60, times=None))  # a target that hangs
        service, cm, _ = await h.start(urls["settings"], endpoint=proxy.url)
        try:
            run = asyncio.create_task(service.run())
            while service.stats.received < 5:
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            started = loop.time()
            service.stop.set()
            stats = await asyncio.wait_for(run, 10)
            took = loop.time() - started
        finally:
            await cm.__aexit__(None, None, None)
    assert took < 3.5
    assert stats.deleted == 0 and stats.released == 5
    assert await h.depth(urls["source"]) == (5, 0)  # all visible again, none lost


async def test_event_id_attribute_is_dropped_rather_than_failing_a_copy(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    event = simplified("critical", channel="chat")
    event["detail"]["notes"] = "n" * 1400
    body = dumps(event)
    # Room for the body, not for body + the 57-byte fanout.event_id attribute.
    limit = len(body.encode()) + 20
    await h.sqs.set_queue_attributes(
        QueueUrl=urls["critical"], Attributes={"MaximumMessageSize": str(limit)}
    )
    await h.send(urls["source"], [body])
    stats = await h.run_until_idle(urls["settings"])
    [copy] = await h.drain(urls["critical"])
    assert copy["Body"] == body
    assert "fanout.event_id" not in copy.get("MessageAttributes", {})
    assert stats.dlq == {} and stats.deleted == 1


async def test_dlq_record_keeps_binary_message_attributes(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    await h.send(
        urls["source"],
        ["{oops"],
        MessageAttributes={"blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffraw"}},
    )
    stats = await h.run_until_idle(urls["settings"])
    [dead] = await h.drain(urls["dlq"])
    record = orjson.loads(dead["Body"])
    assert record["message_attributes"]["blob"]["BinaryValue"] == "AP9yYXc="  # base64
    assert stats.dlq == {"invalid_json": 1} and stats.deleted == 1


async def test_dlq_record_too_large_for_the_dlq_leaves_the_source_message(
    harness: Harness,
) -> None:
    h = harness
    urls = await setup(h)
    await h.sqs.set_queue_attributes(
        QueueUrl=urls["dlq"], Attributes={"MaximumMessageSize": "1024"}
    )
    bad = "{" + "x" * 1500  # not JSON, and its record cannot fit the DLQ's 1 KiB limit
    await h.send(urls["source"], [bad])
    stats = await h.run_until_idle(urls["settings"])
    assert stats.deleted == 0 and stats.abandoned == 1
    assert stats.errors["dlq_write:MessageTooLarge"] == 1
    assert await h.depth(urls["source"]) == (0, 1)  # kept, never truncated: it comes back


async def test_summary_counts_redeliveries(harness: Harness) -> None:
    """Messages received once before (and let go) count as redeliveries on their next receive."""
    h = harness
    urls = await setup(h)
    await h.send(urls["source"], [dumps(simplified("high")) for _ in range(5)])
    # Receive three of them once without deleting and make them visible again at once.
    seen: dict[str, str] = {}
    while len(seen) < 3:
        response = await h.sqs.receive_message(
            QueueUrl=urls["source"], MaxNumberOfMessages=3 - len(seen), WaitTimeSeconds=0
        )
        for m in response.get("Messages", []):
            seen[m["MessageId"]] = m["ReceiptHandle"]
    for handle in seen.values():
        await h.sqs.change_message_visibility(
            QueueUrl=urls["source"], ReceiptHandle=handle, VisibilityTimeout=0
        )
    stats = await h.run_until_idle(urls["settings"])
    assert stats.received == 5 and stats.deleted == 5
    assert stats.redelivered == 3
    assert stats.summary()["redelivered"] == 3


async def test_in_flight_bytes_never_exceed_the_budget(
    harness: Harness, moto_endpoint: str
) -> None:
    """Large bodies and a slow target: the pollers stop at the byte budget, not at the
    message limit, and everything is still delivered."""
    h = harness
    urls = await setup(h, max_in_flight=1000, max_in_flight_bytes=700 * 1024, pollers=2)
    events = []
    for _ in range(24):
        event = simplified("critical", channel="chat")
        event["detail"]["notes"] = "n" * 200_000  # ~200 KB bodies
        events.append(event)
        await h.sqs.send_message(QueueUrl=urls["source"], MessageBody=dumps(event))
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(Delay("SendMessageBatch", 0.3, times=None))
        service, stats, peak_messages = await h.run_sampling_in_flight(
            urls["settings"], endpoint=proxy.url
        )
    budget = service.inflight.max_bytes
    largest = service.inflight.message_bytes  # the source queue's MaximumMessageSize
    assert budget == 700 * 1024
    assert service.inflight.peak_bytes <= budget
    assert service.inflight.peak_bytes >= min(budget - largest, 200_000)  # reached for
    assert peak_messages <= budget // 200_000  # far below the message limit of 1000
    assert stats.deleted == 24 and service.inflight.bytes == 0
    assert sorted(ids_of(await h.drain(urls["critical"]))) == sorted(e["id"] for e in events)
