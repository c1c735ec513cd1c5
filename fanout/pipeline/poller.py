"""Poll stage: long-polling ReceiveMessage loops feeding the bounded work queue."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, StatusCode

from fanout.aws.limits import MAX_RECEIVE
from fanout.aws.outage import ReceiveGate
from fanout.aws.retry import Backoff, classify_exception
from fanout.aws.urls import is_fifo, queue_name
from fanout.observability.stats import Stats
from fanout.observability.telemetry import SYSTEM, Telemetry
from fanout.outcomes import ErrorKind
from fanout.pipeline.inflight import InFlight, Received

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)

# SentTimestamp feeds lag; ApproximateReceiveCount goes into DLQ records and counts redeliveries
# (Stats.redelivered); AWSTraceHeader is the X-Ray trace context EventBridge may set. A FIFO
# source adds its group (the default group of FIFO targets) and sequence number.
SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp", "AWSTraceHeader"]
FIFO_SYSTEM_ATTRIBUTES = [*SYSTEM_ATTRIBUTES, "MessageGroupId", "SequenceNumber"]
# Drain mode (--exit-when-idle): a 1 s poll instead of the long one, so an exit never waits out
# a 20 s poll. From the start, not after a first empty receive: that one would be the 20 s poll.
# A receive returns as soon as messages are there either way; a 1 s poll still asks every SQS
# server (a 0 s short poll samples some) and costs at most one call per poller per second
# while the queue is empty.
DRAIN_WAIT_SECONDS = 1


class Poller:
    """The poll stage: one long-polling ReceiveMessage loop on the source queue.

    Reserves in-flight capacity before each receive (the backpressure that bounds memory),
    admits what comes back to the InFlight registry and puts it on the work queue. Retries
    failed receives forever with capped backoff (a queue recreated, a policy fixed).

    Parameters:
        client: the SQS client (injected).
        queue_url: the source queue.
        work: the bounded queue the workers drain.
        inflight: the registry capacity is reserved from.
        stats: counts receives and receive errors.
        wait_time: FANOUT_WAIT_TIME_SECONDS (long poll).
        drain: drain mode (--exit-when-idle): poll for at most DRAIN_WAIT_SECONDS, so that
            an exit waits at most that long for a receive in flight.
        visibility_timeout: FANOUT_VISIBILITY_TIMEOUT_SECONDS asked on receive.
        backoff, rng: pause after failed receives.
        telemetry: ``receive <source>`` spans and call metrics.
        gate: awaited before each receive (the credential outage pauses receiving).
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        work: asyncio.Queue[Received],
        inflight: InFlight,
        stats: Stats,
        *,
        wait_time: int,
        visibility_timeout: int,
        backoff: Backoff,
        rng: random.Random,
        telemetry: Telemetry | None = None,
        drain: bool = False,
        gate: ReceiveGate | None = None,
    ) -> None:
        self._client = client
        self._gate = gate
        self._queue_url = queue_url
        self._work = work
        self._inflight = inflight
        self._stats = stats
        self._wait_time = wait_time
        self.drain = drain
        self._visibility_timeout = visibility_timeout
        self._backoff = backoff
        self._rng = rng
        self._telemetry = telemetry or Telemetry.off()
        self._system_attributes = (
            FIFO_SYSTEM_ATTRIBUTES if is_fifo(queue_url) else SYSTEM_ATTRIBUTES
        )
        name = queue_name(queue_url)
        self._span_name = f"receive {name}"
        self._span_attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "receive",
            "messaging.operation.name": "ReceiveMessage",
            "messaging.destination.name": name,
            "aws.sqs.queue.url": queue_url,
        }
        self._metric_attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.name": "ReceiveMessage",
            "messaging.destination.name": name,
        }
        self.stopping = False
        # True while a ReceiveMessage call is out: cancelling it could strand messages SQS
        # already handed over (invisible until their timeout), so shutdown lets it finish.
        self.receiving = False

    async def run(self) -> None:
        failures = 0
        wait_time = min(self._wait_time, DRAIN_WAIT_SECONDS) if self.drain else self._wait_time
        while not self.stopping:
            if self._gate is not None:
                await self._gate.wait_open()
            # Backpressure: no receive until there is room for what it may return.
            reserved = await self._inflight.reserve(MAX_RECEIVE)
            admitted = 0
            pause = 0.0
            self.receiving = True
            instruments = self._telemetry.instruments
            span = self._telemetry.call_span(
                self._span_name, SpanKind.CLIENT, self._span_attributes.copy
            )
            started = time.perf_counter()
            try:
                self._stats.calls["ReceiveMessage"] += 1
                # Current during the call: the aiohttp client span nests under it.
                with self._telemetry.scope(span, end=False, record_exception=False):
                    response = await self._client.receive_message(
                        QueueUrl=self._queue_url,
                        MaxNumberOfMessages=reserved,
                        WaitTimeSeconds=wait_time,
                        VisibilityTimeout=self._visibility_timeout,
                        MessageSystemAttributeNames=self._system_attributes,  # type: ignore[arg-type]
                        MessageAttributeNames=["All"],
                    )
                instruments.operation_duration.record(
                    time.perf_counter() - started, self._metric_attributes
                )
                for raw in response.get("Messages", []):
                    message = Received.from_sqs(raw, self._visibility_timeout)  # type: ignore[arg-type]
                    self._inflight.admit(message)
                    admitted += 1
                    if message.receive_count > 1:
                        self._stats.redelivered += 1
                    self._work.put_nowait(message)
                self._stats.received += admitted
                self._inflight.last_receive_ok_at = time.monotonic()
                span.set_attribute("messaging.batch.message_count", admitted)
                if failures:
                    log.info("receive from the source queue recovered after %d failures", failures)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify_exception(exc)
                instruments.operation_duration.record(
                    time.perf_counter() - started,
                    {**self._metric_attributes, "error.type": failure.code},
                )
                span.set_attribute("error.type", failure.code)
                span.set_status(StatusCode.ERROR)
                failures += 1
                self._stats.error(ErrorKind.RECEIVE, failure.code)
                if failure.credentials:
                    self._stats.credential_errors[failure.code] += 1
                level = logging.WARNING if failure.retryable else logging.ERROR
                if failures == 1 or failures % 20 == 0:
                    log.log(
                        level,
                        "receive failed (%s: %s), attempt %d; retrying",
                        failure.code,
                        failure.message,
                        failures,
                    )
                # Keep polling even on non-retryable errors (a queue recreated, a policy fixed)
                # but never faster than the capped backoff.
                pause = self._backoff.delay(min(failures, 30) - 1, self._rng)
            finally:
                span.end()
                self.receiving = False
                self._inflight.unreserve(reserved - admitted)
            if pause:
                await asyncio.sleep(pause)
