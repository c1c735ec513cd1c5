"""records.py: every DLQ record version fanout wrote reads back, and foreign messages too."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from fanout.aws.retry import Failure
from fanout.ops.records import UNKNOWN_REASON, parse_record
from fanout.pipeline.dlq import build_record, delivery_failure_record, encode_record
from fanout.pipeline.sender import Copy
from fanout.pipeline.settle import Settler
from tests.support.samples import dumps, received, simplified

EVENT = simplified("critical", event_id="evt-7")
BODY = dumps(EVENT)

# Version 1, byte for byte as fanout 0.1 (before fifo_ids) wrote it.
V1 = (
    '{"reason":"target_rejected","error_code":"AWS.SimpleQueueService.NonExistentQueue",'
    '"error_message":"gone","failed_targets":["critical","high"],"event_id":"evt-7",'
    '"source_message_id":"m-1","approximate_receive_count":1,'
    '"time":"2026-11-28T03:22:35.123+00:00","message_attributes":{"bin":{"DataType":"Binary",'
    '"BinaryValue":"'
    + base64.b64encode(b"\x00\x01").decode()
    + '"}},"body":'
    + orjson.dumps(BODY).decode()
    + "}"
)


def sqs_message(body: str, sent_ms: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"MessageId": "dlq-1", "ReceiptHandle": "rh", "Body": body}
    if sent_ms is not None:
        message["Attributes"] = {"SentTimestamp": str(sent_ms)}
    return message


def test_version_1_record() -> None:
    record = parse_record(sqs_message(V1))
    assert record.version == 1
    assert record.reason == "target_rejected"
    assert record.failed_targets == ("critical", "high")
    assert record.fifo_ids == {}
    assert record.body == BODY
    assert record.time == datetime(2026, 11, 28, 3, 22, 35, 123000, tzinfo=UTC)
    assert record.detail_type == "Interaction Completed"
    # Binary attributes were base64 in JSON: bytes again, ready to send.
    assert record.message_attributes == {"bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}
    assert not record.needs_source and not record.is_bad_input


def test_version_2_record_carries_fifo_ids() -> None:
    message = received(BODY)
    fifo = Copy(
        message,
        target=None,  # type: ignore[arg-type]
        entry={"MessageGroupId": "g1", "MessageDeduplicationId": "d1", "MessageBody": BODY},
        size=1,
    )
    # The Settler keeps the failed copy's FIFO ids on the message, build_record writes them.
    message.failures["orders"] = Failure("X", "x", False)
    message.failed_fifo_ids = {"orders": {"MessageGroupId": "g1", "MessageDeduplicationId": "d1"}}
    assert fifo.entry["MessageGroupId"] == "g1"
    record = parse_record(sqs_message(encode_record(delivery_failure_record(message))))
    assert record.version == 2
    assert record.failed_targets == ("orders",)
    assert record.fifo_ids == {"orders": {"MessageGroupId": "g1", "MessageDeduplicationId": "d1"}}


def test_settler_keeps_the_ids_of_failed_fifo_copies_only() -> None:
    written: list[dict[str, Any]] = []

    class Letters:
        def write(self, message: Any, record: dict[str, Any]) -> None:
            written.append(record)

    from fanout.observability.stats import Stats

    settler = Settler(acker=None, dead_letters=Letters(), stats=Stats())  # type: ignore[arg-type]
    message = received(BODY)
    settler.expect(message, 2)
    ok = Copy(message, _target("a"), {"MessageGroupId": "ga", "MessageDeduplicationId": "da"}, 1)
    bad = Copy(message, _target("b"), {"MessageGroupId": "gb", "MessageDeduplicationId": "db"}, 1)
    settler.copy_settled(ok, None)
    settler.copy_settled(bad, Failure("AccessDenied", "no", False))
    [record] = written
    assert record["failed_targets"] == ["b"]
    assert record["fifo_ids"] == {"b": {"MessageGroupId": "gb", "MessageDeduplicationId": "db"}}


def _target(name: str) -> Any:
    from fanout.rules.model import FifoSettings, Target

    return Target(name, f"http://q/{name}.fifo", FifoSettings(None, "event_id"))


def test_bad_input_record_needs_the_source() -> None:
    message = received("{not json")
    raw = build_record(message, reason="invalid_json", error_code="invalid_json", error_message="x")
    record = parse_record(sqs_message(encode_record(raw)))
    assert record.is_bad_input and record.needs_source
    assert record.event_id is None and record.detail_type is None


def test_a_raw_event_is_a_foreign_record() -> None:
    # e.g. moved to this queue by the source queue's redrive policy: not a fanout record.
    record = parse_record(sqs_message(BODY, sent_ms=1_795_000_000_000))
    assert record.reason == UNKNOWN_REASON and record.version == 0
    assert record.body == BODY and record.event_id == "evt-7"
    assert record.time == datetime.fromtimestamp(1_795_000_000, UTC)
    assert record.needs_source


def test_garbage_never_raises() -> None:
    for body in ("", "null", "[1]", '{"reason": 3}', '{"reason":"x","body":"y"}'):
        record = parse_record(sqs_message(body))
        assert record.reason == UNKNOWN_REASON
