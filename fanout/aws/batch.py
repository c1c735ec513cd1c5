"""One SQS batch call with per-entry retry: every entry ends accepted or failed, exactly once."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from fanout.aws.retry import QUEUE_WIDE_CODES, Backoff, Failure, classify_entry, classify_exception
from fanout.observability.stats import Stats
from fanout.observability.telemetry import CallObserver

if TYPE_CHECKING:
    from fanout.aws.outage import CredentialOutage

T = TypeVar("T")
log = logging.getLogger(__name__)

OnSettled: TypeAlias = Callable[[T, Failure | None], None]
"""The one callback shape of the pipeline: called exactly once per entry (a copy, a DLQ record,
a delete, a visibility change) when its call is over; ``None`` = accepted, else the classified
failure it ended with."""


def fail_all(batch: Sequence[T], exc: BaseException, on_settled: OnSettled[T]) -> None:
    """Report a whole batch as failed (the send itself crashed): no item is left hanging."""
    failure = Failure(type(exc).__name__, str(exc), retryable=False)
    for item in batch:
        on_settled(item, failure)


def _guarded(on_settled: OnSettled[T], operation: str) -> OnSettled[T]:
    """A failing callback (a bug) must not stop the other entries of the batch settling."""

    def guarded(item: T, failure: Failure | None) -> None:
        try:
            on_settled(item, failure)
        except Exception:
            log.exception("%s: settling an entry failed", operation)

    return guarded


async def call_batch(
    operation: str,
    call: Callable[[list[dict[str, Any]]], Awaitable[Mapping[str, Any]]],
    items: Sequence[T],
    entry_of: Callable[[T], Mapping[str, Any]],
    on_settled: OnSettled[T],
    *,
    backoff: Backoff,
    rng: random.Random,
    stats: Stats,
    observer: CallObserver | None = None,
    on_attempt: Callable[[Failure | None], None] | None = None,
    outage: CredentialOutage | None = None,
) -> None:
    """Run one SQS batch call; retry only retryable failed entries; report every item once.

    Whole-call errors retry the whole batch when retryable and fail it otherwise; a
    non-retryable error that is not queue-wide re-sends the entries one by one, so that only
    the culprit fails. Items still failing once the backoff gives up (``backoff.max_attempts``
    spent and its time budget, ``backoff.max_seconds``, run out) are reported with a
    non-retryable "gave up" failure.

    Credential errors (``Failure.credentials``) hold the whole batch: with ``outage`` its
    calls take turns with every other call of the process and are retried for at least
    ``outage.budget`` seconds; without one they retry on ``backoff`` like a throttle.
    ``observer`` records each attempt's duration and each retry (span event + metric).
    ``on_attempt`` is told after each attempt whether the queue is working: None when some
    entry was accepted or nothing needs a retry, else the failure that is retried.
    """
    await _BatchCall(
        operation,
        call,
        entry_of,
        _guarded(on_settled, operation),
        backoff=backoff,
        rng=rng,
        stats=stats,
        observer=observer,
        on_attempt=on_attempt,
        outage=outage,
    ).run(items)


@dataclass(slots=True)
class _Attempt(Generic[T]):
    """What one call left to do: the entries to retry and the failure they are retried for,
    whether some entry was accepted, and whether to re-send the entries one by one."""

    retry: list[T]
    last: Failure | None = None
    accepted: bool = False
    split: bool = False


class _BatchCall(Generic[T]):
    """The steps of ``call_batch`` (its parameters, see there)."""

    def __init__(
        self,
        operation: str,
        call: Callable[[list[dict[str, Any]]], Awaitable[Mapping[str, Any]]],
        entry_of: Callable[[T], Mapping[str, Any]],
        on_settled: OnSettled[T],
        *,
        backoff: Backoff,
        rng: random.Random,
        stats: Stats,
        observer: CallObserver | None,
        on_attempt: Callable[[Failure | None], None] | None,
        outage: CredentialOutage | None,
    ) -> None:
        self.operation = operation
        self.call = call
        self.entry_of = entry_of
        self.on_settled = on_settled
        self.backoff = backoff
        self.rng = rng
        self.stats = stats
        self.observer = observer
        self.on_attempt = on_attempt
        self.outage = outage

    async def run(self, items: Sequence[T]) -> None:
        """Every item settled: the batch, then (after a split) each entry alone."""
        work: deque[list[T]] = deque([list(items)])
        while work:
            work.extend(await self._settle(work.popleft()))

    async def _settle(self, pending: list[T]) -> list[list[T]]:
        """Attempt ``pending`` until each item is settled; after a split, the batches of one
        item each still to run (each with its own attempts), else none."""
        attempt = 1
        first = time.monotonic()
        while pending:
            result = await self._attempt(pending)
            if result.split:
                return [[item] for item in pending]
            if self.on_attempt is not None:
                self.on_attempt(None if result.accepted or not result.retry else result.last)
            last = result.last
            if not result.retry or last is None:
                break
            if not await self._wait_to_retry(result.retry, last, attempt, time.monotonic() - first):
                break
            pending = result.retry
            attempt += 1
        return []

    async def _attempt(self, pending: list[T]) -> _Attempt[T]:
        entries = [{"Id": str(i), **self.entry_of(x)} for i, x in enumerate(pending)]
        started = time.perf_counter()

        async def send() -> Mapping[str, Any]:
            nonlocal started
            started = time.perf_counter()  # not counting the wait for a turn in an outage
            self.stats.calls[self.operation] += 1
            return await self.call(entries)

        try:
            response = await (send() if self.outage is None else self.outage.call(send))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = classify_exception(exc)
            if self.observer is not None:
                self.observer.attempt(time.perf_counter() - started, failure.code)
            return self._refused(pending, failure)
        if self.observer is not None:
            self.observer.attempt(time.perf_counter() - started)
        return self._answered(pending, response)

    def _refused(self, pending: list[T], failure: Failure) -> _Attempt[T]:
        """The whole call failed."""
        if failure.retryable or failure.credentials:
            return _Attempt(pending, failure)
        if len(pending) > 1 and failure.code not in QUEUE_WIDE_CODES:
            # One bad entry can fail a whole call (moto and SQS validate all entries
            # first): send them one by one so only the culprit fails.
            return _Attempt([], failure, split=True)
        for item in pending:
            self.on_settled(item, failure)
        return _Attempt([], failure)

    def _answered(self, pending: list[T], response: Mapping[str, Any]) -> _Attempt[T]:
        """SQS answered: settle the accepted and the failed-for-good entries."""
        result: _Attempt[T] = _Attempt([], accepted=bool(response.get("Successful")))
        answered: set[int] = set()
        for ok in response.get("Successful", ()):
            index = int(ok["Id"])
            answered.add(index)
            self.on_settled(pending[index], None)
        for failed in response.get("Failed", ()):
            index = int(failed["Id"])
            answered.add(index)
            failure = classify_entry(failed)
            if failure.retryable or failure.credentials:
                result.retry.append(pending[index])
                result.last = failure
            else:
                self.on_settled(pending[index], failure)
        for index, item in enumerate(pending):
            if index not in answered:  # SQS always answers each entry; never lose one
                result.retry.append(item)
                result.last = Failure("MissingResult", "entry not in response", retryable=True)
        return result

    async def _wait_to_retry(
        self, retry: list[T], last: Failure, attempt: int, elapsed: float
    ) -> bool:
        """Count the retry of ``retry`` after ``last`` and wait for it; False (the entries
        settled as given up) once the backoff gives up."""
        self.stats.retries[last.code] += 1
        if self.observer is not None:
            self.observer.retry(attempt, last.code, len(retry))
        held = last.credentials and self.outage is not None
        backoff = self.backoff
        if held and self.outage is not None:
            backoff = backoff.with_budget(max(backoff.max_seconds, self.outage.budget))
        if backoff.gives_up(attempt, elapsed):
            gave_up = Failure(
                last.code,
                f"gave up after {attempt} attempts in {elapsed:.0f}s: {last.message}",
                retryable=False,
                credentials=last.credentials,
            )
            for item in retry:
                self.on_settled(item, gave_up)
            return False
        log.debug(
            "%s: retrying %d entries after %s (attempt %d)",
            self.operation,
            len(retry),
            last.code,
            attempt,
        )
        if not held:  # in an outage, the outage paces the calls (one probe at a time)
            await asyncio.sleep(backoff.delay(attempt - 1, self.rng))
        return True
