"""Received messages from receive to settlement, and the capacity that bounds them.

A message is in flight from the moment ReceiveMessage returns it until it is deleted,
released (made visible again) or abandoned (left to come back after its visibility timeout).
Pollers reserve capacity before receiving, so ``max_in_flight`` is never exceeded: that is the
backpressure that keeps memory bounded when targets slow down.

Capacity is counted in messages and in body bytes (``max_bytes``, FANOUT_MAX_IN_FLIGHT_BYTES).
The size of what a receive will return is unknown until it returns, so each reserved slot
holds ``slot_bytes`` until its message arrives and is counted at its real size. Fixed
(``adaptive`` off), that is ``message_bytes``, the source queue's MaximumMessageSize: in-flight
bytes plus reservations never exceed the budget, but with 1 MiB queues a 128 MiB budget lets
only 12 receives be out at once, whatever the real sizes. Adaptive (the service), it is twice
the recent largest message (at least MIN_RESERVE_BYTES): only a message more than twice the
recent largest can take the bytes past the budget, by its excess, until it settles. And the
message limit follows Little's law (``_follow_littles_law``) within the byte budget. One
exception keeps a too-small budget from deadlocking: when nothing at all is in flight, one
message may be received whatever its size.

Receives are whole (up to 10 messages) whenever the limits allow one: while another receive
is out (it will soon return its unused reservation), a poller waits for room for a full
receive rather than asking for the 2 or 3 messages that fit now. Each partial receive is one
more ReceiveMessage call for fewer messages: with large messages and a small byte budget,
pollers asking for what fits made many more receive calls than needed (numbers in
docs/performance). When only messages in flight hold the room, a poller
takes what fits: those may stay for minutes (a throttled target's copies).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanContext

from fanout.aws.limits import MAX_MESSAGE_BYTES
from fanout.aws.retry import Failure
from fanout.events import Event

# Adaptive reservations: a slot holds RESERVE_FACTOR x the recent largest body, at least
# MIN_RESERVE_BYTES (and at most MaximumMessageSize). The largest decays by LARGEST_DECAY per
# receive, so one big message does not shrink every later receive's room for long.
RESERVE_FACTOR = 2
MIN_RESERVE_BYTES = 16 * 1024
LARGEST_DECAY = 0.98
# How often the adaptive message limit is recomputed (at a settlement).
LIMIT_WINDOW_SECONDS = 0.5


@dataclass(eq=False, slots=True)
class Received:
    """One source message and what has happened to it so far."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1
    sent_timestamp_ms: int | None = None
    message_attributes: dict[str, Any] = field(default_factory=dict)
    received_at: float = field(default_factory=time.monotonic)
    extend_at: float = 0.0
    event: Event | None = None
    # The envelope's id when the body was an envelope but its detail was invalid.
    envelope_id: str | None = None
    pending: int = 0
    failures: dict[str, Failure] = field(default_factory=dict)
    # FIFO ids of copies that failed for good, by target: the DLQ record keeps them so that a
    # redrive sends with the same group and deduplication ids (None: no FIFO copy failed).
    failed_fifo_ids: dict[str, dict[str, str]] | None = None
    aws_trace_header: str | None = None  # X-Ray context (AWSTraceHeader system attribute)
    group_id: str | None = None  # MessageGroupId, from a FIFO source queue
    sequence_number: str | None = None  # SequenceNumber, from a FIFO source queue
    trace_context: SpanContext | None = None  # the process span's, for links from send spans
    size: int = field(init=False)  # body bytes (UTF-8), counted against max_bytes

    def __post_init__(self) -> None:
        body = self.body
        # isascii() is O(1) on CPython's compact strings: most bodies are not encoded again.
        self.size = len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))

    @classmethod
    def from_sqs(cls, message: dict[str, Any], visibility_timeout: float) -> Received:
        attrs = message.get("Attributes") or {}
        sent = attrs.get("SentTimestamp")
        now = time.monotonic()
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message.get("Body", ""),
            receive_count=int(attrs.get("ApproximateReceiveCount", 1)),
            sent_timestamp_ms=int(sent) if sent else None,
            message_attributes=message.get("MessageAttributes") or {},
            received_at=now,
            extend_at=now + visibility_timeout / 2,
            aws_trace_header=attrs.get("AWSTraceHeader"),
            group_id=attrs.get("MessageGroupId"),
            sequence_number=attrs.get("SequenceNumber"),
        )

    @property
    def event_id(self) -> str | None:
        return self.event.id if self.event is not None else self.envelope_id

    def log(
        self, logger: logging.Logger, level: int, text: str, *args: object, exc_info: bool = False
    ) -> None:
        """One log line about this event, ``event <id> (message <id>): <text>``, with both ids
        also as structured fields (keys of JSON logs). Never event values: they may be PII."""
        logger.log(
            level,
            "event %s (message %s): " + text,
            self.event_id or "-",
            self.message_id,
            *args,
            extra={"event_id": self.event_id, "message_id": self.message_id},
            exc_info=exc_info,
            stacklevel=2,
        )


class InFlight:
    """Registry of in-flight messages plus the capacity pollers reserve from.

    Parameters:
        max_in_flight: messages at most (FANOUT_MAX_IN_FLIGHT); with ``adaptive``, the
            starting and least limit.
        max_bytes: body bytes at most (FANOUT_MAX_IN_FLIGHT_BYTES); None: messages only.
        message_bytes: the most one message can be (the source's MaximumMessageSize).
        adaptive: reserve by the recent largest message, and let the message limit follow
            Little's law up to ``max_bytes // MIN_RESERVE_BYTES`` (see the module docstring).
    """

    def __init__(
        self,
        max_in_flight: int,
        max_bytes: int | None = None,
        *,
        message_bytes: int = MAX_MESSAGE_BYTES,
        adaptive: bool = False,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.min_in_flight = max_in_flight
        self.max_bytes = max_bytes  # None: bounded in messages only
        self.message_bytes = message_bytes
        self.adaptive = adaptive
        # Every message counts as at least MIN_RESERVE_BYTES against the budget here: the
        # budget, not a count tuned for one round trip, bounds memory.
        self.ceiling = (
            max(max_in_flight, max_bytes // MIN_RESERVE_BYTES)
            if adaptive and max_bytes is not None
            else max_in_flight
        )
        self.bytes = 0  # body bytes of the tracked messages
        self.peak_bytes = 0  # the most ``bytes`` has been (tests, bench)
        self._messages: dict[str, Received] = {}
        self._reserved = 0
        self._reserved_bytes = 0.0  # what the reserved slots hold of the budget
        self._largest: float | None = None  # recent largest body (decays); None: none seen
        self._room = asyncio.Event()
        self.last_message_at = time.monotonic()
        # Little's law window: settlements and their time in flight since ``_window_start``.
        self._window_start = time.monotonic()
        self._settled = 0
        self._time_in_flight = 0.0
        # Readiness (observability.health): the last successful ReceiveMessage and settlement.
        self.last_receive_ok_at: float | None = None
        self.last_settled_at = time.monotonic()
        # When the last abandoned message becomes visible again (--exit-when-idle waits).
        self.abandoned_until = 0.0

    @property
    def slot_bytes(self) -> int:
        """What one reserved slot holds of the budget until its message arrives."""
        if not self.adaptive or self._largest is None:
            return self.message_bytes
        least = min(MIN_RESERVE_BYTES, self.message_bytes)
        return int(min(self.message_bytes, max(least, RESERVE_FACTOR * self._largest)))

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Received]:
        return iter(list(self._messages.values()))

    @property
    def free(self) -> int:
        return self.max_in_flight - len(self._messages) - self._reserved

    @property
    def held(self) -> bool:
        """True while pollers wait for room (messages or bytes): backpressure."""
        return self._grantable(1) == 0

    def _grantable(self, most: int) -> int:
        granted = min(most, self.free)
        slot = self.slot_bytes
        if granted > 0 and self.max_bytes is not None:
            room = int(self.max_bytes - self.bytes - self._reserved_bytes)
            by_bytes = room // slot if slot > 0 else granted
            if by_bytes <= 0:
                # A budget smaller than one message must not deadlock: alone, one may come in.
                return 1 if not self._messages and not self._reserved else 0
            granted = min(granted, by_bytes)
        if granted < most and self._reserved and self._fits(most):
            # Another receive is out: when it returns, its unused slots and the difference
            # between its reservation and its messages' real size come back. Messages alone
            # may hold their room for minutes (a throttled target): then take what fits.
            return 0
        return max(granted, 0)

    def _fits(self, count: int) -> bool:
        """Whether the limits can ever hold ``count`` more messages at once."""
        if count > self.max_in_flight:
            return False
        return self.max_bytes is None or count * self.slot_bytes <= self.max_bytes

    async def reserve(self, most: int) -> int:
        """Wait until there is room, then reserve up to ``most`` slots; returns how many."""
        while (granted := self._grantable(most)) <= 0:
            self._room.clear()
            await self._room.wait()
        # No await between the check and the update: reservations cannot overshoot.
        self._reserved += granted
        self._reserved_bytes += granted * self.slot_bytes
        return granted

    def _release_slots(self, count: int) -> None:
        if count <= 0:
            return
        if self._reserved <= count:
            self._reserved_bytes = 0.0
        else:  # slots reserved at different estimates: each gives back the average
            self._reserved_bytes -= self._reserved_bytes * count / self._reserved
        self._reserved -= count

    def admit(self, message: Received) -> None:
        """Turn one reserved slot into a tracked message, counted at its real size."""
        self._release_slots(1)
        self._messages[message.receipt_handle] = message
        size = message.size
        if self._largest is None or size > self._largest:
            self._largest = float(size)
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self.last_message_at = time.monotonic()

    def unreserve(self, count: int) -> None:
        """A receive is over: ``count`` reserved slots went unused. Always wakes the waiting
        pollers: the messages it did return now count at their real size, not the largest."""
        self._release_slots(count)
        if self._largest is not None:
            self._largest *= LARGEST_DECAY
        self._room.set()

    def remove(self, message: Received) -> None:
        """The message is settled (deleted, released or abandoned): free its slot."""
        if self._messages.pop(message.receipt_handle, None) is not None:
            self.bytes -= message.size
            now = self.last_settled_at = time.monotonic()
            if self.adaptive:
                self._settled += 1
                self._time_in_flight += now - message.received_at
                if now - self._window_start >= LIMIT_WINDOW_SECONDS:
                    self._follow_littles_law(now)
            self._room.set()

    def _follow_littles_law(self, now: float) -> None:
        """Messages in flight = rate x time in flight (Little's law): the limit is twice what
        the last window needed, within [FANOUT_MAX_IN_FLIGHT, the byte budget's ceiling]. A
        limit that binds shows as a need close to it: it doubles each window until something
        else (a target, the CPU) is the limit."""
        rate = self._settled / (now - self._window_start)
        needed = rate * (self._time_in_flight / self._settled)
        self.max_in_flight = int(min(self.ceiling, max(self.min_in_flight, 2 * needed)))
        self._window_start = now
        self._settled = 0
        self._time_in_flight = 0.0
