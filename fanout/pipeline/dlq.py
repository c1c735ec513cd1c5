"""DLQ stage: a JSON record with the original body and why it could not be delivered.

The source message is deleted only after the DLQ accepted the record. If the DLQ write fails,
or no DLQ is configured, the source message is left alone: it becomes visible again after its
visibility timeout and the source queue's own redrive policy is the last line of defence.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from fanout.aws.retry import Failure
from fanout.observability.stats import Stats
from fanout.pipeline.inflight import Received
from fanout.pipeline.sender import EVENT_ID_ATTRIBUTE, Copy, QueueSender, make_copy
from fanout.rules import FifoSettings, Target

log = logging.getLogger(__name__)

REASON_ATTRIBUTE = "fanout.reason"


def build_record(
    message: Received,
    *,
    reason: str,
    error_code: str,
    error_message: str,
    failed_targets: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """The DLQ record (pure). ``failed_targets`` names only the targets that did not get a copy."""
    return {
        "reason": reason,
        "error_code": error_code,
        "error_message": error_message,
        "failed_targets": list(failed_targets),
        "event_id": message.event_id,
        "source_message_id": message.message_id,
        "approximate_receive_count": message.receive_count,
        "time": (now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "message_attributes": message.message_attributes,
        "body": message.body,
    }


def delivery_failure_record(message: Received) -> dict[str, Any]:
    """Record for a message whose copies failed for good on one or more targets."""
    codes = sorted({f.code for f in message.failures.values()})
    first = next(iter(message.failures.values()))
    return build_record(
        message,
        reason="target_rejected" if len(codes) == 1 else "targets_rejected",
        error_code=",".join(codes),
        error_message=first.message,
        failed_targets=sorted(message.failures),
    )


def _json_default(value: Any) -> str:
    # Binary message attributes (BinaryValue) are bytes: keep them, base64-encoded.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dlq_target(url: str) -> Target:
    fifo = FifoSettings(None, "event_id") if url.endswith(".fifo") else None
    return Target("dlq", url, fifo)


class DeadLetters:
    """Writes DLQ records through a QueueSender; reports each message's fate to callbacks."""

    def __init__(
        self,
        make_sender: Callable[[Target, Callable[[Copy, Failure | None], None]], QueueSender],
        dlq_url: str | None,
        *,
        stats: Stats,
        on_written: Callable[[Received], None],
        on_failed: Callable[[Received], None],
    ) -> None:
        self._stats = stats
        self._on_written = on_written
        self._on_failed = on_failed
        self.target = dlq_target(dlq_url) if dlq_url else None
        self.sender = make_sender(self.target, self._done) if self.target else None

    def write(self, message: Received, record: dict[str, Any]) -> None:
        reason = str(record["reason"])
        log.warning(
            "event %s (message %s) to DLQ: %s (%s)",
            message.event_id or "-",
            message.message_id,
            reason,
            record["error_message"],
            extra={"event_id": message.event_id, "message_id": message.message_id},
        )
        if self.sender is None or self.target is None:
            # No DLQ: leave the message for the source queue's redrive policy.
            self._stats.errors[f"no_dlq:{reason}"] += 1
            self._on_failed(message)
            return
        body = orjson.dumps(record, default=_json_default).decode()
        # Reason and event id as attributes too, so operators can filter without parsing.
        attrs = {REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}}
        if message.event_id:
            attrs[EVENT_ID_ATTRIBUTE] = {"DataType": "String", "StringValue": message.event_id}
        copy = make_copy(
            message, self.target, body, message.event_id, attributes=attrs, note=reason
        )
        self.sender.submit(copy)

    def _done(self, copy: Copy, failure: Failure | None) -> None:
        if failure is None:
            self._stats.dlq[copy.note] += 1
            self._on_written(copy.source)
            return
        log.error(
            "event %s (message %s): DLQ write failed (%s); left in the source queue to come back",
            copy.source.event_id or "-",
            copy.source.message_id,
            failure.code,
            extra={"event_id": copy.source.event_id, "message_id": copy.source.message_id},
        )
        self._stats.errors[f"dlq_write:{failure.code}"] += 1
        self._on_failed(copy.source)
