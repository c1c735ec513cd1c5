"""The SQS client (created once, injected everywhere) and the retry loop for batch calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aioboto3
from aiobotocore.config import AioConfig

from fanout.config import Settings
from fanout.errors import ConfigError
from fanout.retry import QUEUE_WIDE_CODES, Backoff, Failure, classify_entry, classify_exception
from fanout.stats import Stats
from fanout.telemetry import CallObserver

T = TypeVar("T")
log = logging.getLogger(__name__)

_REGION_IN_URL = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def region_for(settings: Settings, session: aioboto3.Session) -> str | None:
    """FANOUT_REGION, else the AWS chain's region, else the region in the source queue URL."""
    if settings.region:
        return settings.region
    if session.region_name:
        return str(session.region_name)
    match = _REGION_IN_URL.match(settings.source_queue_url or "")
    if match:
        return match.group(1)
    return "us-east-1" if settings.endpoint_url else None


def client_config(settings: Settings) -> AioConfig:
    # SDK retries off: fanout classifies and backs off itself (fanout.retry), exactly once.
    # The read timeout must outlast a long poll. Client-side parameter validation is off: fanout
    # builds every request itself and SQS validates them anyway (bench: -9% CPU per event).
    return AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.max_pool_connections,
        connect_timeout=5,
        read_timeout=settings.wait_time_seconds + 10,
        parameter_validation=False,
    )


def create_client(
    settings: Settings, session: aioboto3.Session | None = None, **credentials: str
) -> Any:
    """An async context manager yielding the SQS client (credentials: the AWS provider chain,
    unless the embedded local run passes its dummy ones)."""
    session = session or aioboto3.Session()
    region = region_for(settings, session)
    if region is None:
        raise ConfigError(
            "no AWS region: set FANOUT_REGION (or AWS_REGION), or use a queue URL "
            "of the form https://sqs.<region>.amazonaws.com/..."
        )
    return _with_cached_user_agent(
        session.client(
            "sqs",
            endpoint_url=settings.endpoint_url,
            region_name=region,
            config=client_config(settings),
            **credentials,
        )
    )


@contextlib.asynccontextmanager
async def _with_cached_user_agent(client_cm: Any) -> AsyncIterator[Any]:
    """botocore rebuilds the same User-Agent string twice per request (~15% of a call's CPU in
    bench/); build it once. Its creator is private API: if it changes, this does nothing."""
    async with client_cm as client:
        creator = getattr(client, "_user_agent_creator", None)
        if creator is not None and callable(getattr(creator, "to_string", None)):
            user_agent = creator.to_string()
            creator.to_string = lambda: user_agent
        yield client


def settle_all(
    batch: Sequence[T], exc: BaseException, settle: Callable[[T, Failure | None], None]
) -> None:
    """Settle a whole batch as failed (the send itself crashed): no item is left hanging."""
    failure = Failure(type(exc).__name__, str(exc), retryable=False)
    for item in batch:
        settle(item, failure)


def _guarded(
    settle: Callable[[T, Failure | None], None], operation: str
) -> Callable[[T, Failure | None], None]:
    """A failing callback (a bug) must not stop the other entries of the batch settling."""

    def guarded(item: T, failure: Failure | None) -> None:
        try:
            settle(item, failure)
        except Exception:
            log.exception("%s: settling an entry failed", operation)

    return guarded


async def call_batch(
    operation: str,
    call: Callable[[list[dict[str, Any]]], Awaitable[Mapping[str, Any]]],
    items: Sequence[T],
    entry_of: Callable[[T], Mapping[str, Any]],
    settle: Callable[[T, Failure | None], None],
    *,
    backoff: Backoff,
    rng: random.Random,
    stats: Stats,
    observer: CallObserver | None = None,
) -> None:
    """Run one SQS batch call; retry only retryable failed entries; settle every item once.

    Whole-call errors retry the whole batch when retryable and fail it otherwise. Items still
    failing after ``backoff.max_attempts`` are settled with a non-retryable "gave up" failure.
    ``observer`` records each attempt's duration and each retry (span event + metric).
    """
    settle = _guarded(settle, operation)
    pending = list(items)
    attempt = 1
    while pending:
        retry: list[T] = []
        last: Failure | None = None
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
                        settle,
                        backoff=backoff,
                        rng=rng,
                        stats=stats,
                        observer=observer,
                    )
                return
            else:
                for item in pending:
                    settle(item, last)
        else:
            if observer is not None:
                observer.attempt(time.perf_counter() - started)
            settled: set[int] = set()
            for ok in response.get("Successful", ()):
                index = int(ok["Id"])
                settled.add(index)
                settle(pending[index], None)
            for failed in response.get("Failed", ()):
                index = int(failed["Id"])
                settled.add(index)
                failure = classify_entry(failed)
                if failure.retryable:
                    retry.append(pending[index])
                    last = failure
                else:
                    settle(pending[index], failure)
            for index, item in enumerate(pending):
                if index not in settled:  # SQS always answers each entry; never lose one
                    retry.append(item)
                    last = Failure("MissingResult", "entry not in response", retryable=True)
        if not retry or last is None:
            return
        stats.retries[last.code] += 1
        if observer is not None:
            observer.retry(attempt, last.code, len(retry))
        if backoff.gives_up(attempt):
            gave_up = Failure(
                last.code, f"gave up after {attempt} attempts: {last.message}", retryable=False
            )
            for item in retry:
                settle(item, gave_up)
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
