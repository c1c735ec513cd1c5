"""Reading a DLQ without consuming it: receive with a visibility timeout (the hold), then
delete what was dealt with and release the rest (visibility 0) at the end.

A held record is invisible to everyone else for the hold: if the process dies, SQS makes it
visible again when the hold runs out, so nothing is ever lost by reading. A record seen twice in
one run means the hold ran out mid-run: reading stops there rather than going round again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from fanout.aws.checks import queue_problem
from fanout.aws.limits import MAX_BATCH_ENTRIES, MAX_RECEIVE
from fanout.aws.retry import Backoff, call_with_retry
from fanout.errors import ConfigError
from fanout.ops.records import DlqRecord, parse_record

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

T = TypeVar("T")
log = logging.getLogger(__name__)


class RateLimit:
    """At most ``per_second`` calls a second (None: no bound), spaced evenly."""

    def __init__(
        self,
        per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ConfigError(f"--rate must be > 0 (got {per_second})")
        self._interval = 1.0 / per_second if per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await self._sleep(start - now)


async def call_paced(
    rate: RateLimit, call: Callable[[], Awaitable[T]], backoff: Backoff, rng: random.Random
) -> T:
    """``call`` retried as any call (``call_with_retry``), each attempt paced by ``rate``."""

    async def paced() -> T:
        await rate.wait()
        return await call()

    return await call_with_retry(paced, backoff, rng)


class DlqReader:
    """Receives a DLQ's records once each, holding them invisible; deletes or releases them.

    Parameters:
        client: the SQS client (injected).
        url: the DLQ.
        hold_seconds: VisibilityTimeout of each receive; must outlast the run.
        backoff: retries of transient errors.
        rate: bounds every call this reader makes (shared with the caller's calls).
    """

    def __init__(
        self,
        client: SQSClient,
        url: str,
        *,
        hold_seconds: int,
        backoff: Backoff,
        rate: RateLimit | None = None,
    ) -> None:
        self.url = url
        self._client = client
        self._hold = hold_seconds
        self._backoff = backoff
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        self._rate = rate or RateLimit(None)
        self._seen: set[str] = set()
        self.held: dict[str, DlqRecord] = {}  # message id -> record still held by this reader
        self.hold_ran_out = False

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        return await call_paced(self._rate, call, self._backoff, self._rng)

    async def depth(self) -> int:
        """ApproximateNumberOfMessages (visible records), for a progress total."""
        response = await self._checked(
            functools.partial(
                self._client.get_queue_attributes,
                QueueUrl=self.url,
                AttributeNames=["ApproximateNumberOfMessages"],
            )
        )
        return int(response.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))

    async def _checked(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._call(call)
        except (ClientError, BotoCoreError, OSError) as exc:
            problem = queue_problem(exc)
            if problem is None:
                raise
            raise ConfigError(f"DLQ {self.url} {problem}") from None

    async def records(self, limit: int | None = None) -> AsyncIterator[list[DlqRecord]]:
        """Batches of records never seen before in this run, until the DLQ has no visible
        record left, ``limit`` records were read, or the hold ran out."""
        count = 0
        while limit is None or count < limit:
            want = MAX_RECEIVE if limit is None else min(MAX_RECEIVE, limit - count)
            response = await self._checked(
                functools.partial(
                    self._client.receive_message,
                    QueueUrl=self.url,
                    MaxNumberOfMessages=want,
                    # A long poll asks every SQS server: empty means none visible, not bad luck.
                    WaitTimeSeconds=1,
                    VisibilityTimeout=self._hold,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["SentTimestamp"],
                )
            )
            messages: list[Any] = list(response.get("Messages", []))
            if not messages:
                return
            batch: list[DlqRecord] = []
            for message in messages:
                record = parse_record(message)
                if record.message_id in self._seen:
                    # Our own hold ran out: release the copy we just got, stop going round.
                    self.hold_ran_out = True
                    self.held[record.message_id] = record
                    continue
                self._seen.add(record.message_id)
                self.held[record.message_id] = record
                batch.append(record)
            count += len(batch)
            if batch:
                yield batch
            if self.hold_ran_out:
                log.warning(
                    "DLQ %s: records came back while held (the hold of %d s ran out): stopping",
                    self.url,
                    self._hold,
                )
                return

    async def delete(self, records: Sequence[DlqRecord]) -> list[DlqRecord]:
        """Delete records dealt with; returns those SQS did not delete (they come back)."""
        return await self._batch("delete_message_batch", records, {})

    async def release(self, records: Sequence[DlqRecord] | None = None) -> list[DlqRecord]:
        """Make held records visible again now (default: every record still held)."""
        todo = list(self.held.values()) if records is None else list(records)
        return await self._batch("change_message_visibility_batch", todo, {"VisibilityTimeout": 0})

    async def _batch(
        self, operation: str, records: Sequence[DlqRecord], extra: dict[str, Any]
    ) -> list[DlqRecord]:
        failed: list[DlqRecord] = []
        for start in range(0, len(records), MAX_BATCH_ENTRIES):
            chunk = records[start : start + MAX_BATCH_ENTRIES]
            entries = [
                {"Id": str(i), "ReceiptHandle": r.receipt_handle, **extra}
                for i, r in enumerate(chunk)
            ]
            method = getattr(self._client, operation)
            try:
                response = await self._call(
                    functools.partial(method, QueueUrl=self.url, Entries=entries)
                )
            except (ClientError, BotoCoreError, OSError) as exc:
                log.warning("DLQ %s: %s failed: %s", self.url, operation, exc)
                failed.extend(chunk)
                continue
            for entry in response.get("Failed", ()):
                failed.append(chunk[int(entry["Id"])])
            for r in chunk:
                self.held.pop(r.message_id, None)
        return failed
