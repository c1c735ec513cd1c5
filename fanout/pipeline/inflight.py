"""Received messages from receive to settlement, and the capacity that bounds them.

A message is in flight from the moment ReceiveMessage returns it until it is deleted,
released (made visible again) or abandoned (left to come back after its visibility timeout).
Pollers reserve capacity before receiving, so ``max_in_flight`` is never exceeded: that is the
backpressure that keeps memory bounded when targets slow down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanContext

from fanout.aws.retry import Failure
from fanout.events import Event


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
    pending: int = 0
    failures: dict[str, Failure] = field(default_factory=dict)
    aws_trace_header: str | None = None  # X-Ray context (AWSTraceHeader system attribute)
    group_id: str | None = None  # MessageGroupId, from a FIFO source queue
    sequence_number: str | None = None  # SequenceNumber, from a FIFO source queue
    trace_context: SpanContext | None = None  # the process span's, for links from send spans

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
        return self.event.id if self.event is not None else None

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
    """Registry of in-flight messages plus the capacity pollers reserve from."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._messages: dict[str, Received] = {}
        self._reserved = 0
        self._room = asyncio.Event()
        self.last_message_at = time.monotonic()
        # Readiness (observability.health): the last successful ReceiveMessage and settlement.
        self.last_receive_ok_at: float | None = None
        self.last_settled_at = time.monotonic()

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Received]:
        return iter(list(self._messages.values()))

    @property
    def free(self) -> int:
        return self.max_in_flight - len(self._messages) - self._reserved

    async def reserve(self, most: int) -> int:
        """Wait until there is room, then reserve up to ``most`` slots; returns how many."""
        while self.free <= 0:
            self._room.clear()
            await self._room.wait()
        # No await between the check and the update: reservations cannot overshoot.
        granted = min(most, self.free)
        self._reserved += granted
        return granted

    def admit(self, message: Received) -> None:
        """Turn one reserved slot into a tracked message."""
        self._reserved -= 1
        self._messages[message.receipt_handle] = message
        self.last_message_at = time.monotonic()

    def unreserve(self, count: int) -> None:
        if count:
            self._reserved -= count
            self._room.set()

    def remove(self, message: Received) -> None:
        """The message is settled (deleted, released or abandoned): free its slot."""
        if self._messages.pop(message.receipt_handle, None) is not None:
            self.last_settled_at = time.monotonic()
            self._room.set()
