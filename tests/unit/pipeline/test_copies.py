"""sender.py: the SendMessageBatch entry built for each target's copy (pure, no SQS)."""

from __future__ import annotations

import copy as copying
from typing import Any

import jmespath
import pytest

from fanout.aws.limits import MAX_MESSAGE_ATTRIBUTES
from fanout.pipeline.sender import (
    EVENT_ID_ATTRIBUTE,
    make_copies,
    make_copy,
    outgoing_attributes,
)
from fanout.rules import FifoSettings, Target
from tests.support.samples import dumps, received, sample

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/"
GROUP = "detail.eventBody.conversationId"
STANDARD = Target("standard", URL + "standard")
LEDGER = Target(
    "ledger", URL + "ledger.fifo", FifoSettings(GROUP, "event_id", jmespath.compile(GROUP))
)
BY_CONTENT = Target("content", URL + "content.fifo", FifoSettings(None, "content"))

EVENT = sample("conversation_user_end")
EVENT_ID = EVENT["id"]
CONVERSATION_ID = EVENT["detail"]["eventBody"]["conversationId"]
# Pretty-printed with non-ASCII: a re-serialised body would differ.
BODY = dumps(EVENT).replace('"VOICE"', '"VOICE", "note": "Grüße 😀"').replace(",", ",\n  ")


def receive_shape(value: str) -> dict[str, Any]:
    return {
        "DataType": "String",
        "StringValue": value,
        "StringListValues": [],
        "BinaryListValues": [],
    }


def sent(value: str) -> dict[str, Any]:
    return {"DataType": "String", "StringValue": value}


def many(n: int) -> dict[str, Any]:
    return {f"a{i}": receive_shape(str(i)) for i in range(n)}


def test_copy_keeps_the_body_and_adds_the_event_id() -> None:
    message = received(BODY, attributes={"tenant": receive_shape("acme")})
    before = copying.deepcopy(message.message_attributes)
    copy = make_copy(message, STANDARD, message.body, message.event_id)
    assert copy.entry == {
        "MessageBody": BODY,
        "MessageAttributes": {"tenant": sent("acme"), EVENT_ID_ATTRIBUTE: sent(EVENT_ID)},
    }
    assert copy.entry["MessageBody"] is message.body
    assert (copy.source, copy.target, copy.note) == (message, STANDARD, "")
    assert message.message_attributes == before  # the DLQ record still sees the receive shape


@pytest.mark.parametrize(
    ("source", "event_id", "expected"),
    [
        pytest.param({}, "e1", {EVENT_ID_ATTRIBUTE: sent("e1")}, id="event-id-only"),
        pytest.param({}, None, {}, id="nothing"),
        pytest.param({"k": receive_shape("v")}, None, {"k": sent("v")}, id="no-event-id"),
        pytest.param(
            {
                "bin": {"DataType": "Binary", "BinaryValue": b"\x00\xff", "BinaryListValues": []},
                "num": {"DataType": "Number", "StringValue": "7", "StringListValues": []},
            },
            "e1",
            {
                "bin": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
                "num": {"DataType": "Number", "StringValue": "7"},
                EVENT_ID_ATTRIBUTE: sent("e1"),
            },
            id="send-shape",
        ),
        pytest.param(
            many(9),
            "e1",
            {**{f"a{i}": sent(str(i)) for i in range(9)}, EVENT_ID_ATTRIBUTE: sent("e1")},
            id="9-plus-event-id",
        ),
        pytest.param(many(10), "e1", {f"a{i}": sent(str(i)) for i in range(10)}, id="10-no-room"),
        pytest.param(
            {EVENT_ID_ATTRIBUTE: receive_shape("upstream")},
            "e1",
            {EVENT_ID_ATTRIBUTE: sent("e1")},
            id="own-event-id-wins",
        ),
    ],
)
def test_outgoing_attributes(
    source: dict[str, Any], event_id: str | None, expected: dict[str, Any]
) -> None:
    attrs = outgoing_attributes(source, event_id)
    assert attrs == expected
    assert len(attrs) <= MAX_MESSAGE_ATTRIBUTES


def test_copy_without_attributes_has_no_attribute_key() -> None:
    message = received("{not json")
    assert make_copy(message, STANDARD, message.body, None).entry == {"MessageBody": "{not json"}


@pytest.mark.parametrize(
    ("target", "group", "dedup"),
    [
        pytest.param(STANDARD, None, None, id="standard"),
        pytest.param(LEDGER, CONVERSATION_ID, LEDGER.deduplication_id(EVENT_ID), id="fifo"),
        pytest.param(BY_CONTENT, "content", None, id="content-dedup"),
    ],
)
def test_fifo_fields(target: Target, group: str | None, dedup: str | None) -> None:
    message = received(BODY)
    entry = make_copy(message, target, message.body, message.event_id).entry
    assert entry.get("MessageGroupId") == group
    assert entry.get("MessageDeduplicationId") == dedup


def test_fifo_copy_without_event_falls_back_to_target_and_message_id() -> None:
    message = received("{not json")
    entry = make_copy(message, LEDGER, message.body, None).entry
    assert entry["MessageGroupId"] == "ledger"
    assert entry["MessageDeduplicationId"] == LEDGER.deduplication_id("msg-1")


def test_size_counts_body_bytes_and_attributes() -> None:
    message = received(BODY, attributes={"tenant": receive_shape("acmé")})
    body = "héllo"  # 6 bytes
    copy = make_copy(message, STANDARD, body, "evt-1")
    tenant = 6 + 6 + 5  # "tenant", "String", "acmé" (é is 2 bytes)
    event_id = 15 + 6 + 5  # "fanout.event_id", "String", "evt-1"
    assert copy.size == 6 + tenant + event_id


def test_explicit_attributes_replace_the_defaults() -> None:
    message = received(BODY, attributes={"tenant": receive_shape("acme")})
    attrs = {"fanout.reason": sent("invalid_detail")}
    copy = make_copy(message, STANDARD, "{}", "evt-1", attributes=attrs, note="invalid_detail")
    assert copy.entry == {"MessageBody": "{}", "MessageAttributes": attrs}
    assert copy.size == 2 + len("fanout.reason") + len("String") + len("invalid_detail")
    assert copy.note == "invalid_detail"


def test_make_copies_matches_make_copy_for_every_target() -> None:
    message = received(BODY, attributes={"tenant": receive_shape("acme")})
    targets = [STANDARD, LEDGER, BY_CONTENT]
    copies = make_copies(message, targets, message.body, message.event_id)
    assert [c.target for c in copies] == targets
    for copy, target in zip(copies, targets, strict=True):
        single = make_copy(message, target, message.body, message.event_id)
        assert (copy.entry, copy.size) == (single.entry, single.size)
    assert copies[1].entry["MessageGroupId"] == CONVERSATION_ID
    assert "MessageDeduplicationId" not in copies[2].entry  # content-based


def test_fifo_copy_keeps_the_source_group_when_the_rule_sets_none() -> None:
    from fanout.pipeline.inflight import Received

    message = Received.from_sqs(
        {
            "MessageId": "m-1",
            "ReceiptHandle": "rh-1",
            "Body": dumps(sample("conversation_user_end")),
            "Attributes": {"MessageGroupId": "conv-7", "SequenceNumber": "1800"},
        },
        30,
    )
    assert (message.group_id, message.sequence_number) == ("conv-7", "1800")
    no_expression = Target("ledger", "https://q/ledger.fifo", FifoSettings(None, "event_id"))
    [copy] = make_copies(message, [no_expression], message.body, "evt-1")
    assert copy.entry["MessageGroupId"] == "conv-7"
    # A standard source has no group: the target's name, one sequence.
    message.group_id = None
    [copy] = make_copies(message, [no_expression], message.body, "evt-1")
    assert copy.entry["MessageGroupId"] == "ledger"
