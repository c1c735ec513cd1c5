"""dlq.py: DLQ records keep the original body and say why and for which targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from fanout.aws.retry import Failure
from fanout.observability.stats import Stats
from fanout.pipeline.dlq import REASON_ATTRIBUTE, DeadLetters, build_record, delivery_failure_record
from fanout.pipeline.inflight import Received
from fanout.pipeline.sender import EVENT_ID_ATTRIBUTE, Copy
from fanout.rules import Target
from tests.support.samples import dumps, received, simplified

# Receive shape, as ReceiveMessage returns it: recorded exactly as received.
ATTRIBUTES = {
    "tenant": {"DataType": "String", "StringValue": "acme", "StringListValues": []},
}
BODY = dumps(simplified("critical", duration_ms=200_000, event_id="evt-42")).replace(",", ", ")
NOW = datetime(2026, 11, 28, 3, 0, 0, 123456, tzinfo=UTC)


def test_build_record() -> None:
    message = received(BODY, attributes=ATTRIBUTES, receive_count=3)
    record = build_record(
        message,
        reason="no_route",
        error_code="RuleError",
        error_message="rule 'x': boom",
        failed_targets=("b", "a"),
        now=NOW,
    )
    assert record == {
        "version": 2,
        "reason": "no_route",
        "error_code": "RuleError",
        "error_message": "rule 'x': boom",
        "failed_targets": ["b", "a"],
        "event_id": "evt-42",
        "source_message_id": "msg-1",
        "approximate_receive_count": 3,
        "time": "2026-11-28T03:00:00.123+00:00",
        "message_attributes": ATTRIBUTES,
        "fifo_ids": {},
        "body": BODY,
    }
    # What the DLQ receives: JSON whose body field is the original string, byte for byte.
    assert orjson.loads(orjson.dumps(record))["body"] == BODY


def test_build_record_for_an_invalid_body() -> None:
    record = build_record(
        received("{not json"), reason="invalid_json", error_code="invalid_json", error_message="x"
    )
    assert (record["event_id"], record["failed_targets"], record["body"]) == (None, [], "{not json")
    written = datetime.fromisoformat(record["time"])
    assert written.tzinfo is not None
    assert abs(datetime.now(UTC) - written) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("failures", "reason", "code", "failed"),
    [
        pytest.param(
            {"high": Failure("KMS.DisabledException", "key disabled", False)},
            "target_rejected",
            "KMS.DisabledException",
            ["high"],
            id="one-of-three",
        ),
        pytest.param(
            {
                "standard": Failure("MessageTooLarge", "too big", False),
                "critical": Failure("MessageTooLarge", "too big", False),
            },
            "target_rejected",
            "MessageTooLarge",
            ["critical", "standard"],
            id="same-code",
        ),
        pytest.param(
            {
                "standard": Failure("InvalidParameterValue", "bad", False),
                "critical": Failure("AccessDenied", "denied", False),
            },
            "targets_rejected",
            "AccessDenied,InvalidParameterValue",
            ["critical", "standard"],
            id="two-codes",
        ),
        pytest.param(
            {"standard": Failure("TargetBacklog", "250 copies already waiting", False)},
            "target_backlog",
            "TargetBacklog",
            ["standard"],
            id="backlog",
        ),
    ],
)
def test_delivery_failure_record_names_only_failed_targets(
    failures: dict[str, Failure], reason: str, code: str, failed: list[str]
) -> None:
    # The event went to critical, high and standard; only ``failures`` did not get a copy.
    message = received(BODY, attributes=ATTRIBUTES)
    message.failures.update(failures)
    record = delivery_failure_record(message)
    assert record["reason"] == reason
    assert record["error_code"] == code
    assert record["error_message"] == next(iter(failures.values())).message
    assert record["failed_targets"] == failed
    assert (record["event_id"], record["body"]) == ("evt-42", BODY)


class FakeSender:
    def __init__(self, target: Target, on_settled: Any) -> None:
        self.target = target
        self.on_settled = on_settled
        self.submitted: list[Copy] = []

    def submit(self, copy: Copy) -> None:
        self.submitted.append(copy)


class RecordingAcker:
    """Stands in for the Acker: records which messages were deleted and which abandoned."""

    def __init__(self, written: list[Received], failed: list[Received]) -> None:
        self.delete = written.append
        self._failed = failed
        self.returns: list[bool] = []  # per abandon: worth waiting for (--exit-when-idle)

    def abandon(self, message: Received, *, returns: bool = False) -> None:
        self._failed.append(message)
        self.returns.append(returns)


class DlqHarness:
    def __init__(self, url: str | None) -> None:
        self.stats = Stats()
        self.written: list[Received] = []
        self.failed: list[Received] = []
        self.senders: list[FakeSender] = []
        self.acker = RecordingAcker(self.written, self.failed)
        self.dlq = DeadLetters(
            url,
            self.make_sender,  # type: ignore[arg-type]
            self.acker,  # type: ignore[arg-type]
            self.stats,
        )

    def make_sender(self, target: Target, on_settled: Any, *, dlq: bool = False) -> Any:
        assert dlq  # the DLQ sender: no backlog limit, no per-group order
        self.senders.append(FakeSender(target, on_settled))
        return self.senders[-1]


@pytest.mark.parametrize("fifo", [False, True])
def test_dead_letters_write_sends_the_record(fifo: bool) -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq" + (".fifo" if fifo else "")
    h = DlqHarness(url)
    message = received(BODY, attributes=ATTRIBUTES)
    record = build_record(message, reason="invalid_detail", error_code="c", error_message="m")
    h.dlq.write(message, record)
    (sender,) = h.senders
    (copy,) = sender.submitted
    assert orjson.loads(copy.entry["MessageBody"]) == record
    assert copy.entry["MessageAttributes"] == {
        REASON_ATTRIBUTE: {"DataType": "String", "StringValue": "invalid_detail"},
        EVENT_ID_ATTRIBUTE: {"DataType": "String", "StringValue": "evt-42"},
    }
    assert ("MessageGroupId" in copy.entry) is fifo
    assert ("MessageDeduplicationId" in copy.entry) is fifo
    assert h.written == [] and h.failed == []  # nothing settles before the DLQ answers
    sender.on_settled(copy, None)
    assert h.written == [message] and h.stats.dlq["invalid_detail"] == 1
    sender.on_settled(copy, Failure("AccessDenied", "denied", False))
    assert h.failed == [message] and h.stats.errors["dlq_write:AccessDenied"] == 1
    assert h.acker.returns == [False]  # a denial does not end by itself: no drain waits


@pytest.mark.parametrize(
    ("failure", "returns"),
    [
        (Failure("ExpiredToken", "gave up", False, credentials=True), True),
        (Failure("RequestThrottled", "gave up", False), True),
        (Failure("EndpointConnectionError", "gave up", False), True),
        (Failure("MessageTooLarge", "too big", False), False),
    ],
)
def test_a_dlq_write_that_failed_for_a_passing_reason_is_worth_waiting_for(
    failure: Failure, returns: bool
) -> None:
    h = DlqHarness("https://sqs.eu-west-1.amazonaws.com/123456789012/dlq")
    message = received(BODY)
    h.dlq.write(
        message, build_record(message, reason="invalid_json", error_code="c", error_message="m")
    )
    (sender,) = h.senders
    sender.on_settled(sender.submitted[0], failure)
    assert h.failed == [message] and h.acker.returns == [returns]


def test_dead_letters_without_dlq_leave_the_message() -> None:
    h = DlqHarness(None)
    message = received("{not json")
    h.dlq.write(
        message, build_record(message, reason="invalid_json", error_code="x", error_message="y")
    )
    assert h.senders == []
    assert h.failed == [message] and h.written == []
    assert h.stats.errors["no_dlq:invalid_json"] == 1
    assert h.acker.returns == [False]  # it would only come back to the same end
