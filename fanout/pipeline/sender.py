"""Batch+send stage: one sender per target queue (and one for the DLQ).

Copies from any number of source messages share SendMessageBatch calls. A call can succeed with
some entries ``Failed``: only those are retried, with async full-jitter backoff; entries that
fail for good are reported to the callback with their classified failure.

Order: a standard target gets none promised (as SQS standard). A FIFO target gets, per
MessageGroupId, its copies accepted in the order they were submitted (the order fanout
received their source messages): its sender sequences each group (``GroupBatcher``), so a
failed entry holds back the later entries of its group until it is accepted or given up.

Backlog: while a target is failing (no copy accepted for FAILING_AFTER_SECONDS while its
calls throttle or fail), a target holding ``max_pending`` unsettled copies fails further copies
at once with ``BACKLOG_CODE`` (DLQ reason ``target_backlog``), so one target's outage cannot
take every in-flight slot. A target that works, however slowly or busily, is never limited.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, StatusCode

from fanout.aws.batch import OnSettled, call_batch, fail_all
from fanout.aws.limits import MAX_MESSAGE_ATTRIBUTES, MAX_MESSAGE_BYTES
from fanout.aws.outage import CredentialOutage
from fanout.aws.retry import Backoff, Failure
from fanout.aws.urls import queue_name
from fanout.observability.stats import Stats
from fanout.observability.telemetry import (
    SYSTEM,
    TRACE_ATTRIBUTES,
    CallObserver,
    Telemetry,
    link_to,
)
from fanout.outcomes import ErrorKind
from fanout.pipeline.batching import Batcher, GroupBatcher, message_size
from fanout.pipeline.concurrency import AimdLimit
from fanout.pipeline.inflight import Received
from fanout.rules import Target

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

EVENT_ID_ATTRIBUTE = "fanout.event_id"
# The failure code of a copy refused because its target's backlog is full (DLQ target_backlog).
BACKLOG_CODE = "TargetBacklog"
# A target is failing once its attempts have failed, with none accepted, for this long: short
# enough to bound an outage's backlog, long enough that scattered throttles and partial batch
# failures of a working target (some attempts succeed every second) never trip the limit.
FAILING_AFTER_SECONDS = 2.0
log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Copy:
    """One entry for one queue: a target's copy of a source message, or a DLQ record."""

    source: Received
    target: Target
    entry: dict[str, Any]
    size: int
    note: str = ""  # why this entry exists, e.g. the DLQ reason


def outgoing_attributes(
    source: Mapping[str, Mapping[str, Any]],
    event_id: str | None,
    trace: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The source's message attributes (send shape), the event id, then ``trace`` (fanout's
    traceparent, replacing the source's), within SQS's cap of 10: what does not fit is left
    out, the event id first in line (downstream dedupes on it)."""
    attrs: dict[str, dict[str, Any]] = {}
    for name, attr in source.items():
        if trace and name in TRACE_ATTRIBUTES:
            continue
        kept = {k: attr[k] for k in ("DataType", "StringValue", "BinaryValue") if k in attr}
        attrs[name] = kept
    if event_id is not None and len(attrs) < MAX_MESSAGE_ATTRIBUTES:
        attrs[EVENT_ID_ATTRIBUTE] = {"DataType": "String", "StringValue": event_id}
    for name, attr in (trace or {}).items():
        if len(attrs) < MAX_MESSAGE_ATTRIBUTES:
            attrs[name] = attr
    return attrs


def make_copy(
    source: Received,
    target: Target,
    body: str,
    event_id: str | None,
    *,
    attributes: dict[str, dict[str, Any]] | None = None,
    note: str = "",
) -> Copy:
    """Build the SendMessageBatch entry (minus Id) for ``target``; the body is never rewritten.

    ``attributes`` replaces the default (the source's attributes plus the event id)."""
    attrs = (
        outgoing_attributes(source.message_attributes, event_id)
        if attributes is None
        else attributes
    )
    return _copy(source, target, body, event_id, attrs, message_size(body, attrs), note)


def make_copies(
    source: Received,
    targets: Sequence[Target],
    body: str,
    event_id: str | None,
    trace: Mapping[str, dict[str, Any]] | None = None,
) -> list[Copy]:
    """One copy per target. Attributes and size are the same for every target: computed once
    per event, not once per copy (the body's UTF-8 encoding is on the hot path)."""
    attrs = outgoing_attributes(source.message_attributes, event_id, trace)
    size = message_size(body, attrs)
    return [_copy(source, target, body, event_id, attrs, size, "") for target in targets]


def _copy(
    source: Received,
    target: Target,
    body: str,
    event_id: str | None,
    attrs: dict[str, dict[str, Any]],
    size: int,
    note: str,
) -> Copy:
    entry: dict[str, Any] = {"MessageBody": body}
    if attrs:
        entry["MessageAttributes"] = attrs  # shared between copies: never mutated
    if target.fifo is not None:
        data = source.event.data if source.event is not None else {}
        entry["MessageGroupId"] = target.message_group_id(data, source.group_id)
        dedup = target.deduplication_id(event_id or source.message_id)
        if dedup is not None:
            entry["MessageDeduplicationId"] = dedup
    return Copy(source, target, entry, size, note)


FIFO_ID_KEYS = ("MessageGroupId", "MessageDeduplicationId")


def fifo_ids_of(entry: Mapping[str, Any]) -> dict[str, str]:
    """The FIFO ids of a send entry (empty for a standard queue's entry)."""
    return {key: str(entry[key]) for key in FIFO_ID_KEYS if key in entry}


def _without_event_id(copy: Copy) -> Copy:
    attrs = copy.entry.get("MessageAttributes") or {}
    if EVENT_ID_ATTRIBUTE not in attrs:
        return copy
    attrs = {k: v for k, v in attrs.items() if k != EVENT_ID_ATTRIBUTE}
    entry = {k: v for k, v in copy.entry.items() if k != "MessageAttributes"}
    if attrs:
        entry["MessageAttributes"] = attrs
    size = message_size(entry["MessageBody"], attrs)
    return Copy(copy.source, copy.target, entry, size, copy.note)


class QueueSender:
    """The batch+send stage of one queue (a target, or the DLQ).

    Owns the queue's Batcher (copies from any number of events share SendMessageBatch calls;
    a GroupBatcher for a FIFO target, which keeps each group's order) and reports every copy
    exactly once to ``on_settled``: accepted, or failed for good after its retries. A copy
    larger than the queue's MaximumMessageSize fails without a call; so does a copy for a
    failing target that already holds ``max_pending`` copies (``BACKLOG_CODE``).

    Parameters:
        client: the SQS client (injected).
        target: the queue and its FIFO settings.
        on_settled: told each copy's end (the Settler for targets, DeadLetters for the DLQ).
        backoff, rng: retry delays of failed entries and calls.
        stats: counts SQS calls and retries.
        linger: seconds a partial batch waits for more copies (FANOUT_LINGER_MS).
        concurrency: SendMessageBatch calls in flight at once: the initial limit
            (FANOUT_SEND_CONCURRENCY), adapted by ``max_concurrency``.
        max_concurrency: the ceiling of this queue's AimdLimit (FANOUT_MAX_POOL_CONNECTIONS);
            None: ``concurrency`` stays fixed.
        max_message_bytes: the queue's MaximumMessageSize (read at start).
        telemetry: ``send <queue>`` spans and call metrics.
        max_pending: FANOUT_TARGET_MAX_PENDING (None: no limit, e.g. the DLQ).
        sequenced: per-group order (default: for FIFO targets).
        outage: the process's credential outage every call goes through (None: no pacing).
    """

    def __init__(
        self,
        client: SQSClient,
        target: Target,
        *,
        on_settled: OnSettled[Copy],
        backoff: Backoff,
        rng: random.Random,
        stats: Stats,
        linger: float,
        concurrency: int,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        telemetry: Telemetry | None = None,
        max_pending: int | None = None,
        sequenced: bool | None = None,
        outage: CredentialOutage | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.target = target
        self._outage = outage
        self.max_message_bytes = max_message_bytes
        self._client = client
        self._on_settled = on_settled
        self._backoff = backoff
        self._rng = rng
        self._stats = stats
        self._telemetry = telemetry or Telemetry.off()
        self._queue = queue_name(target.queue_url)
        self._span_name = f"send {self._queue}"
        self._sent_attributes = {
            "messaging.system": SYSTEM,
            "messaging.destination.name": self._queue,
        }
        self.max_pending = max_pending
        self.pending = 0  # copies submitted to the batcher and not yet settled
        self._failing_since: float | None = None  # first failed attempt since the last success
        self.batcher: Batcher[Copy] | GroupBatcher[Copy]
        self._groups: GroupBatcher[Copy] | None = None
        if sequenced is None:
            sequenced = target.fifo is not None
        # The limit of this queue alone: a throttled target lowers its own, not the others'.
        self.limit = AimdLimit(
            concurrency,
            ceiling=max_concurrency if max_concurrency is not None else concurrency,
            name=target.name,
            stats=stats,
        )
        if sequenced:
            self._groups = self.batcher = GroupBatcher(
                target.name,
                self._send,
                lambda batch, exc: fail_all(batch, exc, self._copy_settled),
                size_of=lambda c: c.size,
                group_of=lambda c: str(c.entry["MessageGroupId"]),
                linger=linger,
                concurrency=self.limit,
            )
        else:
            self.batcher = Batcher(
                target.name,
                self._send,
                lambda batch, exc: fail_all(batch, exc, self._copy_settled),
                size_of=lambda c: c.size,
                linger=linger,
                concurrency=self.limit,
            )

    def _copy_settled(self, copy: Copy, failure: Failure | None) -> None:
        """Every copy that went through the batcher ends here exactly once."""
        self.pending -= 1
        if self._groups is not None:
            self._groups.settled(copy)  # its group's next copy may go now
            if failure is not None:
                # Dead-letter and continue: later copies of the group are no longer held.
                self._stats.error(ErrorKind.FIFO_GAP, self.target.name)
                copy.source.log(
                    log,
                    logging.WARNING,
                    "FIFO target %s, group %s: copy failed for good (%s); later copies of the "
                    "group go on without it (it goes to the DLQ)",
                    self.target.name,
                    copy.entry.get("MessageGroupId"),
                    failure.code,
                )
        self._on_settled(copy, failure)

    def _attempted(self, failure: Failure | None) -> None:
        if failure is not None and failure.credentials:
            return  # fanout's credentials failing say nothing about this target
        # A throttle or a retryable failure (5xx, connection) lowers the limit; a non-retryable
        # one says nothing about load.
        self.limit.record(failure is not None and failure.retryable)
        if failure is None:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = time.monotonic()

    @property
    def failing(self) -> bool:
        """No copy accepted for FAILING_AFTER_SECONDS while calls throttle or fail."""
        since = self._failing_since
        return since is not None and time.monotonic() - since >= FAILING_AFTER_SECONDS

    def submit(self, copy: Copy) -> None:
        if copy.size > self.max_message_bytes:
            # The event-id attribute is a convenience; it must never be why a copy fails.
            copy = _without_event_id(copy)
        if copy.size > self.max_message_bytes:
            failure = Failure(
                "MessageTooLarge",
                f"{copy.size} bytes > {self.max_message_bytes}, the queue's MaximumMessageSize",
                retryable=False,
            )
            self._on_settled(copy, failure)
            return
        if self.max_pending is not None and self.failing and self.pending >= self.max_pending:
            failure = Failure(
                BACKLOG_CODE,
                f"{self.pending} copies already waiting for a failing target "
                f"(FANOUT_TARGET_MAX_PENDING={self.max_pending})",
                retryable=False,
            )
            self._on_settled(copy, failure)
            return
        self.pending += 1
        self.batcher.add(copy)

    async def _send(self, batch: list[Copy]) -> None:
        """One SendMessageBatch (with its retries) under a ``send <queue>`` PRODUCER span that
        links to the process span of every event in the batch (many parents: links)."""
        url = self.target.queue_url
        telemetry = self._telemetry
        instruments = telemetry.instruments
        # Attributes and links are built only when the call is recorded.
        span = telemetry.call_span(
            self._span_name,
            SpanKind.PRODUCER,
            lambda: {
                "messaging.system": SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "SendMessageBatch",
                "messaging.destination.name": self._queue,
                "aws.sqs.queue.url": url,
                "messaging.batch.message_count": len(batch),
            },
            lambda: link_to(c.source.trace_context for c in batch),
        )
        instruments.batch_entries.record(len(batch), self._sent_attributes)
        failures: dict[str, int] = {}

        def count_failures(copy: Copy, failure: Failure | None) -> None:
            if failure is not None:
                failures[failure.code] = failures.get(failure.code, 0) + 1
            self._copy_settled(copy, failure)

        async def call(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
            return await self._client.send_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[arg-type]

        # Current while the call runs, so the aiohttp client spans nest under it.
        with telemetry.scope(span, end=True):
            await call_batch(
                "SendMessageBatch",
                call,
                batch,
                lambda c: c.entry,
                count_failures,
                backoff=self._backoff,
                rng=self._rng,
                stats=self._stats,
                observer=CallObserver(span, instruments, "SendMessageBatch", self._queue),
                on_attempt=self._attempted,
                outage=self._outage,
            )
            if span.is_recording():
                reasons = sorted({c.note for c in batch if c.note})
                if reasons:  # a DLQ batch: why these records exist
                    span.set_attribute("fanout.dlq.reasons", reasons)
                if failures:
                    span.set_attribute("error.type", ",".join(sorted(failures)))
                    span.set_attribute("fanout.failed_count", sum(failures.values()))
                    span.set_status(StatusCode.ERROR)


@dataclass(frozen=True)
class SenderFactory:
    """Builds the QueueSender of one queue with the service's shared client, retry policy and
    tuning: every target's sender and the DLQ's come from here."""

    client: SQSClient
    backoff: Backoff
    rng: random.Random
    stats: Stats
    linger: float
    concurrency: int
    queue_limits: Mapping[str, int] = field(default_factory=dict)  # MaximumMessageSize per URL
    telemetry: Telemetry | None = None
    max_pending: int | None = None  # FANOUT_TARGET_MAX_PENDING, targets only
    outage: CredentialOutage | None = None  # shared by every sender, the DLQ's too
    max_concurrency: int | None = None  # FANOUT_MAX_POOL_CONNECTIONS: each limit's ceiling

    def __call__(
        self, target: Target, on_settled: OnSettled[Copy], *, dlq: bool = False
    ) -> QueueSender:
        """``dlq``: the DLQ's sender: no backlog limit, no per-group order (records of
        different events have no order to keep), and attempts only, no time budget: a record
        the DLQ refuses leaves its message to come back (redelivery is the DLQ's wait); but
        refused credentials hold its records as they hold copies (``outage.budget``)."""
        return QueueSender(
            self.client,
            target,
            on_settled=on_settled,
            backoff=self.backoff.with_budget(0.0) if dlq else self.backoff,
            rng=self.rng,
            stats=self.stats,
            linger=self.linger,
            concurrency=self.concurrency,
            max_message_bytes=self.queue_limits.get(target.queue_url, MAX_MESSAGE_BYTES),
            telemetry=self.telemetry,
            max_pending=None if dlq else self.max_pending,
            sequenced=False if dlq else None,
            outage=self.outage,
            max_concurrency=self.max_concurrency,
        )
