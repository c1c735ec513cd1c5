"""One SQS batch call with per-entry retry: every entry ends accepted or failed, exactly once."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from fanout.aws.retry import QUEUE_WIDE_CODES, Backoff, Failure, classify_entry, classify_exception
from fanout.observability.stats import Stats
from fanout.observability.telemetry import CallObserver

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
) -> None:
    """Run one SQS batch call; retry only retryable failed entries; report every item once.

    Whole-call errors retry the whole batch when retryable and fail it otherwise. Items still
    failing once the backoff gives up (``backoff.max_attempts`` spent and its time budget,
    ``backoff.max_seconds``, run out) are reported with a non-retryable "gave up" failure.
    ``observer`` records each attempt's duration and each retry (span event + metric).
    ``on_attempt`` is told after each attempt whether the queue is working: None when some
    entry was accepted or nothing needs a retry, else the failure that is retried.
    """
    on_settled = _guarded(on_settled, operation)
    pending = list(items)
    attempt = 1
    first = time.monotonic()
    while pending:
        retry: list[T] = []
        last: Failure | None = None
        accepted = False
        stats.calls[operation] += 1
        started = time.perf_counter()
        try:
            response = await call([{"Id": str(i), **entry_of(x)} for i, x in enumerate(pending)])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            last = classify_exception(exc)
            if observer is not None:
                observer.attempt(time.perf_counter() - started, last.code)
            if last.retryable:
                retry = pending
            elif len(pending) > 1 and last.code not in QUEUE_WIDE_CODES:
                # One bad entry can fail a whole call (moto and SQS validate all entries
                # first): send them one by one so only the culprit fails.
                for item in pending:
                    await call_batch(
                        operation,
                        call,
                        [item],
                        entry_of,
                        on_settled,
                        backoff=backoff,
                        rng=rng,
                        stats=stats,
                        observer=observer,
                        on_attempt=on_attempt,
                    )
                return
            else:
                for item in pending:
                    on_settled(item, last)
        else:
            if observer is not None:
                observer.attempt(time.perf_counter() - started)
            answered: set[int] = set()
            accepted = bool(response.get("Successful"))
            for ok in response.get("Successful", ()):
                index = int(ok["Id"])
                answered.add(index)
                on_settled(pending[index], None)
            for failed in response.get("Failed", ()):
                index = int(failed["Id"])
                answered.add(index)
                failure = classify_entry(failed)
                if failure.retryable:
                    retry.append(pending[index])
                    last = failure
                else:
                    on_settled(pending[index], failure)
            for index, item in enumerate(pending):
                if index not in answered:  # SQS always answers each entry; never lose one
                    retry.append(item)
                    last = Failure("MissingResult", "entry not in response", retryable=True)
        if on_attempt is not None:
            on_attempt(None if accepted or not retry else last)
        if not retry or last is None:
            return
        stats.retries[last.code] += 1
        if observer is not None:
            observer.retry(attempt, last.code, len(retry))
        elapsed = time.monotonic() - first
        if backoff.gives_up(attempt, elapsed):
            gave_up = Failure(
                last.code,
                f"gave up after {attempt} attempts in {elapsed:.0f}s: {last.message}",
                retryable=False,
            )
            for item in retry:
                on_settled(item, gave_up)
            return
        log.debug(
            "%s: retrying %d entries after %s (attempt %d)",
            operation,
            len(retry),
            last.code,
            attempt,
        )
        await asyncio.sleep(backoff.delay(attempt - 1, rng))
        pending = retry
        attempt += 1
