"""Poll stage: long-polling ReceiveMessage loops feeding the bounded work queue."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
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
# Pollers are added only while their whole receives' reservations fit in this fraction of
# FANOUT_MAX_IN_FLIGHT_BYTES (Pollers._room_for_another).
RECEIVE_BUDGET_SHARE = 4


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
        # Told after each receive how many messages it asked for and got; returns False when
        # this poller should retire (``Pollers``). None: poll until stopped.
        self.after_receive: Callable[[Poller, int, int], bool] | None = None
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
            ok = False
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
                ok = True
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
            if (
                ok
                and self.after_receive is not None
                and not self.after_receive(self, reserved, admitted)
            ):
                return
            if pause:
                await asyncio.sleep(pause)


class Pollers:
    """The poll stage's size: between ``floor`` and ``ceiling`` Pollers, following the queue.

    As Lambda's SQS event source mapping scales: a full receive (MAX_RECEIVE messages) while
    in-flight room is left adds a poller, up to ``ceiling`` (a backlog: more receives out at
    once move more per round trip); an empty or partial receive retires the poller that made
    it, down to ``floor`` (the queue is keeping up). An idle queue costs only the floor's long
    polls. ``run`` starts the floor and returns once every poller has stopped (``stop``).

    Parameters:
        make: builds one Poller (the service's client, queue, work queue, InFlight...).
        inflight: whether room is left (no poller is added while the pollers are held).
        stats: the pollers running now and at most (live line, summary, gauge).
        floor: FANOUT_POLLERS. ceiling: FANOUT_MAX_POLLERS (at least ``floor``).
        drain: drain mode (--exit-when-idle), passed to every poller.
    """

    def __init__(
        self,
        make: Callable[[], Poller],
        inflight: InFlight,
        stats: Stats,
        *,
        floor: int,
        ceiling: int,
        drain: bool = False,
    ) -> None:
        self._make = make
        self._inflight = inflight
        self._stats = stats
        self.floor = max(1, floor)
        self.ceiling = max(self.floor, ceiling)
        self.drain = drain
        self.stopping = False
        self._pollers: dict[asyncio.Task[None], Poller] = {}
        # Pollers that decided to retire but whose task has not ended yet: not counted, or two
        # retiring at once could both see the other and leave fewer than the floor.
        self._retiring: set[Poller] = set()

    def __len__(self) -> int:
        return len(self._pollers) - len(self._retiring)

    def decide(self, count: int, asked: int, got: int, *, room: bool) -> int:
        """Pure decision after one receive: +1 add a poller, -1 retire this one, 0 keep."""
        if got >= MAX_RECEIVE and asked >= MAX_RECEIVE and room and count < self.ceiling:
            return 1
        if got < asked and count > self.floor:
            return -1
        return 0

    def _after_receive(self, poller: Poller, asked: int, got: int) -> bool:
        if self.stopping:
            return True
        step = self.decide(len(self), asked, got, room=self._room_for_another())
        if step > 0:
            self._add()
        elif step < 0:
            self._retiring.add(poller)
            self._show()
        return step >= 0

    def _room_for_another(self) -> bool:
        """In-flight room left, and for one more whole receive within a share of the budget:
        a receive holds its response while parsing it (about twice its bodies), so with big
        messages the pollers stay as few as before; ~1 KB messages never reach it."""
        inflight = self._inflight
        if inflight.held:
            return False
        if inflight.max_bytes is None:
            return True
        reserved = (len(self) + 1) * MAX_RECEIVE * inflight.slot_bytes
        return reserved <= inflight.max_bytes // RECEIVE_BUDGET_SHARE

    def _add(self) -> None:
        poller = self._make()
        poller.drain = self.drain
        poller.after_receive = self._after_receive
        task = asyncio.create_task(poller.run(), name="poller")
        self._pollers[task] = poller
        task.add_done_callback(self._retired)
        self._show()

    def _retired(self, task: asyncio.Task[None]) -> None:
        poller = self._pollers.pop(task, None)
        self._retiring.discard(poller)
        self._show()

    def _show(self) -> None:
        self._stats.pollers = len(self)
        self._stats.peak_pollers = max(self._stats.peak_pollers, len(self))

    async def run(self) -> None:
        """Start the floor's pollers; return when all have stopped. A poller that crashes
        raises here (a poller retries every SQS error itself: a crash is a bug)."""
        for _ in range(self.floor):
            self._add()
        try:
            while self._pollers:
                done, _ = await asyncio.wait(
                    list(self._pollers), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            tasks = list(self._pollers)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """No more receives: idle pollers stop now; one with a receive out finishes it (what
        it brings is released by the shutdown) and then stops."""
        self.stopping = True
        for task, poller in list(self._pollers.items()):
            poller.stopping = True
            if not poller.receiving:
                task.cancel()
