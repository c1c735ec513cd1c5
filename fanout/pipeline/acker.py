"""Ack stage: DeleteMessageBatch for settled messages, ChangeMessageVisibilityBatch to extend
messages held long (slow retries) and to release unprocessed ones at shutdown."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from fanout.aws.batch import call_batch, fail_all
from fanout.aws.retry import EXPIRED_RECEIPT_CODES, Backoff, Failure
from fanout.aws.urls import queue_name
from fanout.observability.stats import Stats
from fanout.observability.telemetry import SYSTEM, CallObserver, Telemetry, link_to
from fanout.outcomes import ErrorKind
from fanout.pipeline.batching import Batcher
from fanout.pipeline.concurrency import AimdLimit
from fanout.pipeline.inflight import InFlight, Received

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)

# A message is extended for at most this many visibility timeouts (10 min at the default 60 s).
MAX_HOLD_TIMEOUTS = 10


@dataclass(slots=True, eq=False)
class _Visibility:
    message: Received
    timeout: int


class Acker:
    """The ack stage of the source queue: it ends each message's stay in flight.

    Owns two Batchers: DeleteMessageBatch for settled messages, and ChangeMessageVisibilityBatch
    to extend messages held long (slow retries: the visibility heartbeat) and to release
    unprocessed ones at shutdown (timeout 0). Every path frees the message's in-flight slot.

    Parameters:
        client: the SQS client (injected).
        queue_url: the source queue.
        inflight: the registry whose slots deletes, releases and abandons free.
        stats: counts deletes, releases, extensions, expired receipts and errors.
        backoff, rng: retry delays of failed entries and calls.
        linger: seconds a partial delete batch waits (FANOUT_DELETE_LINGER_MS).
        visibility_timeout: FANOUT_VISIBILITY_TIMEOUT_SECONDS; messages are extended at half
            of it, for at most MAX_HOLD_TIMEOUTS of it (or the retry budget plus two).
        retry_budget: FANOUT_RETRY_MAX_SECONDS: messages are held at least that long.
        telemetry: ``settle <source>`` spans and call metrics.
        concurrency, max_concurrency: DeleteMessageBatch calls in flight at first and at most
            (an AimdLimit, shown as ``delete``; visibility changes keep ``concurrency``).
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        inflight: InFlight,
        stats: Stats,
        backoff: Backoff,
        rng: random.Random,
        linger: float,
        visibility_timeout: int,
        telemetry: Telemetry | None = None,
        retry_budget: float = 0.0,
        concurrency: int = 8,
        max_concurrency: int | None = None,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._inflight = inflight
        self._stats = stats
        self._backoff = backoff
        self._rng = rng
        self._telemetry = telemetry or Telemetry.off()
        self._queue = queue_name(queue_url)
        self._span_name = f"settle {self._queue}"
        self.visibility_timeout = visibility_timeout
        # Never let go of a message whose copies are still within their retry budget.
        self.max_hold = max(
            visibility_timeout * MAX_HOLD_TIMEOUTS, retry_budget + 2 * visibility_timeout
        )
        self.delete_limit = AimdLimit(
            concurrency,
            ceiling=max_concurrency if max_concurrency is not None else concurrency,
            name="delete",
            stats=stats,
        )
        self._deletes: Batcher[Received] = Batcher(
            "delete",
            self._send_deletes,
            lambda batch, exc: fail_all(batch, exc, self._delete_settled),
            size_of=lambda m: len(m.receipt_handle),
            linger=linger,
            concurrency=self.delete_limit,
        )
        self._visibility: Batcher[_Visibility] = Batcher(
            "visibility",
            self._send_visibility,
            lambda batch, exc: fail_all(batch, exc, self._visibility_settled),
            size_of=lambda v: len(v.message.receipt_handle),
            linger=0.0,
            concurrency=concurrency,
        )

    # --- public API --------------------------------------------------------------------

    def delete(self, message: Received) -> None:
        self._deletes.add(message)

    def abandon(self, message: Received, *, returns: bool = False) -> None:
        """Leave the message alone: SQS redelivers it after its visibility timeout (and its
        redrive policy takes it once its receive count is spent). Frees its slot now.
        ``returns``: it failed for a reason that ends by itself, so it will be delivered when
        it comes back: ``--exit-when-idle`` waits until it is visible again."""
        self._stats.abandoned += 1
        if returns:
            # Invisible until its visibility timeout runs out (extend_at is half of it before).
            visible_at = message.extend_at + self.visibility_timeout / 2
            self._inflight.abandoned_until = max(self._inflight.abandoned_until, visible_at)
        self._inflight.remove(message)

    def release(self, message: Received) -> None:
        """Make the message visible again now (it was received but will not be processed)."""
        self._visibility.add(_Visibility(message, 0))

    def extend_due(self, now: float | None = None) -> int:
        """Extend every message held past half its visibility timeout; returns how many."""
        now = time.monotonic() if now is None else now
        due = 0
        for message in self._inflight:
            if now - message.received_at > self.max_hold:
                # Never settled (a bug, or a call that never returns): stop extending so SQS
                # redelivers it, instead of holding it invisible forever.
                message.log(
                    log,
                    logging.ERROR,
                    "held %.0fs without settling; left to be redelivered",
                    now - message.received_at,
                )
                self._stats.error(ErrorKind.HELD_TOO_LONG)
                self._inflight.remove(message)
                continue
            if message.extend_at <= now:
                message.extend_at = now + self.visibility_timeout / 2
                self._visibility.add(_Visibility(message, self.visibility_timeout))
                due += 1
        return due

    async def heartbeat(self) -> None:
        """Runs for the life of the service (also during shutdown, while retries drain)."""
        interval = max(0.5, min(self.visibility_timeout / 4, 10.0))
        while True:
            await asyncio.sleep(interval)
            self.extend_due()

    async def drain(self) -> None:
        await self._deletes.drain()
        await self._visibility.drain()

    @property
    def busy(self) -> bool:
        return self._deletes.busy or self._visibility.busy

    # --- sending -----------------------------------------------------------------------

    def _span(self, operation: str, messages: list[Received]) -> Any:
        """A ``settle <source>`` CLIENT span per batch call, linked to the events' process spans."""
        # Attributes and links are built only when the call is recorded.
        return self._telemetry.call_span(
            self._span_name,
            SpanKind.CLIENT,
            lambda: {
                "messaging.system": SYSTEM,
                "messaging.operation.type": "settle",
                "messaging.operation.name": operation,
                "messaging.destination.name": self._queue,
                "aws.sqs.queue.url": self._queue_url,
                "messaging.batch.message_count": len(messages),
            },
            lambda: link_to(m.trace_context for m in messages),
        )

    async def _send_deletes(self, batch: list[Received]) -> None:
        async def call(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
            return await self._client.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=entries,  # type: ignore[arg-type]
            )

        span = self._span("DeleteMessageBatch", batch)
        with self._telemetry.scope(span, end=True):
            await call_batch(
                "DeleteMessageBatch",
                call,
                batch,
                lambda m: {"ReceiptHandle": m.receipt_handle},
                self._delete_settled,
                backoff=self._backoff,
                rng=self._rng,
                stats=self._stats,
                observer=CallObserver(
                    span, self._telemetry.instruments, "DeleteMessageBatch", self._queue
                ),
                on_attempt=lambda f: self.delete_limit.record(f is not None and f.retryable),
            )

    async def _send_visibility(self, batch: list[_Visibility]) -> None:
        async def call(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
            return await self._client.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=entries,  # type: ignore[arg-type]
            )

        operation = "ChangeMessageVisibilityBatch"
        span = self._span(operation, [v.message for v in batch])
        with self._telemetry.scope(span, end=True):
            await call_batch(
                operation,
                call,
                batch,
                lambda v: {
                    "ReceiptHandle": v.message.receipt_handle,
                    "VisibilityTimeout": v.timeout,
                },
                self._visibility_settled,
                backoff=self._backoff,
                rng=self._rng,
                stats=self._stats,
                observer=CallObserver(span, self._telemetry.instruments, operation, self._queue),
            )

    # --- results -----------------------------------------------------------------------

    def _delete_settled(self, message: Received, failure: Failure | None) -> None:
        if failure is None:
            self._stats.deleted += 1
        elif failure.code in EXPIRED_RECEIPT_CODES:
            # Held past its visibility timeout: SQS made it visible again and will redeliver it;
            # the redelivery is routed again (duplicates in standard targets, deduped in FIFO).
            self._stats.expired_receipts += 1
            message.log(
                log,
                logging.WARNING,
                "receipt handle expired before delete (%s); it will be redelivered",
                failure.code,
            )
        else:
            self._stats.error(ErrorKind.DELETE, failure.code)
            message.log(
                log,
                logging.ERROR,
                "delete failed (%s: %s); it will be redelivered",
                failure.code,
                failure.message,
            )
        self._inflight.remove(message)

    def _visibility_settled(self, change: _Visibility, failure: Failure | None) -> None:
        message = change.message
        if change.timeout == 0:
            if failure is None:
                self._stats.released += 1
            else:
                message.log(
                    log,
                    logging.WARNING,
                    "release failed (%s); visible after its timeout",
                    failure.code,
                )
            self._inflight.remove(message)
            return
        if failure is None:
            self._stats.visibility_extended += 1
        elif failure.code in EXPIRED_RECEIPT_CODES:
            self._stats.expired_receipts += 1
            message.log(
                log,
                logging.WARNING,
                "visibility could not be extended (%s); it may be delivered again",
                failure.code,
            )
        else:
            self._stats.error(ErrorKind.EXTEND, failure.code)
