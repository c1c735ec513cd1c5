"""DLQ stage: a JSON record with the original body and why it could not be delivered.

The source message is deleted only after the DLQ accepted the record. If the DLQ write fails,
or no DLQ is configured, the source message is left alone: it becomes visible again after its
visibility timeout and the source queue's own redrive policy is the last line of defence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from fanout.aws.retry import Failure
from fanout.aws.urls import is_fifo
from fanout.jsontypes import bytes_as_base64
from fanout.observability.stats import Stats
from fanout.outcomes import DlqReason, ErrorKind
from fanout.pipeline.acker import Acker
from fanout.pipeline.inflight import Received
from fanout.pipeline.sender import (
    BACKLOG_CODE,
    EVENT_ID_ATTRIBUTE,
    Copy,
    SenderFactory,
    make_copy,
)
from fanout.rules import FifoSettings, Target

log = logging.getLogger(__name__)

REASON_ATTRIBUTE = "fanout.reason"
# The record's layout. 1 (no ``version`` key): the fields below up to ``body``. 2: ``fifo_ids``
# (the failed FIFO copies' MessageGroupId / MessageDeduplicationId, by target) added.
# Readers (fanout.ops.records) accept every version.
RECORD_VERSION = 2


def build_record(
    message: Received,
    *,
    reason: DlqReason,
    error_code: str,
    error_message: str,
    failed_targets: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """The DLQ record (pure). ``failed_targets`` names only the targets that did not get a copy;
    ``fifo_ids`` holds, for each failed FIFO target, the ids its copy was sent with."""
    return {
        "version": RECORD_VERSION,
        "reason": str(reason),
        "error_code": error_code,
        "error_message": error_message,
        "failed_targets": list(failed_targets),
        "event_id": message.event_id,
        "source_message_id": message.message_id,
        "approximate_receive_count": message.receive_count,
        "time": (now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "message_attributes": message.message_attributes,
        "fifo_ids": {
            name: ids
            for name, ids in (message.failed_fifo_ids or {}).items()
            if name in failed_targets
        },
        "body": message.body,
    }


def delivery_failure_record(message: Received) -> dict[str, Any]:
    """Record for a message whose copies failed for good on one or more targets."""
    codes = sorted({f.code for f in message.failures.values()})
    first = next(iter(message.failures.values()))
    if codes == [BACKLOG_CODE]:
        reason = DlqReason.TARGET_BACKLOG
    else:
        reason = DlqReason.TARGET_REJECTED if len(codes) == 1 else DlqReason.TARGETS_REJECTED
    return build_record(
        message,
        reason=reason,
        error_code=",".join(codes),
        error_message=first.message,
        failed_targets=sorted(message.failures),
    )


def encode_record(record: dict[str, Any]) -> str:
    """The DLQ message body of a record."""
    # Binary message attributes (BinaryValue) are bytes: kept, base64-encoded.
    return orjson.dumps(record, default=bytes_as_base64).decode()


def record_attributes(reason: str, event_id: str | None) -> dict[str, dict[str, Any]]:
    """Reason and event id as attributes too, so operators can filter without parsing."""
    attrs = {REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}}
    if event_id:
        attrs[EVENT_ID_ATTRIBUTE] = {"DataType": "String", "StringValue": event_id}
    return attrs


def dlq_target(url: str) -> Target:
    fifo = FifoSettings(None, "event_id") if is_fifo(url) else None
    return Target("dlq", url, fifo)


class DeadLetters:
    """The DLQ stage: writes one JSON record per message that cannot be delivered, then settles
    that source message: deleted once the DLQ accepted its record, abandoned (left for SQS to
    redeliver, then for the source queue's redrive policy) when the DLQ refused it or when
    there is no DLQ.

    Owns the DLQ's QueueSender (None without a DLQ) and its target (FIFO when the URL ends in
    ``.fifo``: grouped and deduplicated by event id).

    Parameters:
        dlq_url: FANOUT_DLQ_URL, or None.
        senders: builds the DLQ's sender, as it builds every target's.
        acker: deletes or abandons the source messages.
        stats: counts records by reason (``dlq``) and failed writes (``errors``).
    """

    def __init__(
        self, dlq_url: str | None, senders: SenderFactory, acker: Acker, stats: Stats
    ) -> None:
        self._acker = acker
        self._stats = stats
        self.target = dlq_target(dlq_url) if dlq_url else None
        self.sender = senders(self.target, self._record_settled, dlq=True) if self.target else None

    def write(self, message: Received, record: dict[str, Any]) -> None:
        reason = str(record["reason"])
        message.log(log, logging.WARNING, "to DLQ: %s (%s)", reason, record["error_message"])
        if message.group_id is not None:
            # FIFO source: dead-letter and continue, as SQS's own FIFO redrive does. Once this
            # message is deleted, later messages of its group are received and delivered: the
            # group's order in the targets goes on without it. Counted, never silent.
            self._stats.error(ErrorKind.FIFO_GAP, "source")
            message.log(
                log,
                logging.WARNING,
                "FIFO source group %s (sequence %s) goes on without it",
                message.group_id,
                message.sequence_number,
            )
        if self.sender is None or self.target is None:
            # No DLQ: leave the message for the source queue's redrive policy.
            self._stats.error(ErrorKind.NO_DLQ, reason)
            self._acker.abandon(message)
            return
        body = encode_record(record)
        attrs = record_attributes(reason, message.event_id)
        copy = make_copy(
            message, self.target, body, message.event_id, attributes=attrs, note=reason
        )
        self.sender.submit(copy)

    def _record_settled(self, copy: Copy, failure: Failure | None) -> None:
        """OnSettled of the DLQ's sender: the record is written, or failed for good."""
        if failure is None:
            self._stats.dlq[copy.note] += 1
            self._acker.delete(copy.source)
            return
        copy.source.log(
            log,
            logging.ERROR,
            "DLQ write failed (%s); left in the source queue to come back",
            failure.code,
        )
        self._stats.error(ErrorKind.DLQ_WRITE, failure.code)
        self._acker.abandon(copy.source)
