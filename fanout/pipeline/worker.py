"""Worker stage: validate each received message, match it, hand copies to target senders.

Workers never wait on SQS: sending, retrying and deleting happen in the senders and the acker,
so a worker is free for the next message as soon as its copies are queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Link, SpanKind, StatusCode, get_current_span
from opentelemetry.util.types import AttributeValue

from fanout.events import InvalidEvent, parse_event
from fanout.observability.stats import Stats
from fanout.observability.telemetry import (
    SYSTEM,
    TRACEPARENT,
    Telemetry,
    producer_context,
    trace_attributes,
    unsampled_trace_attributes,
)
from fanout.outcomes import DlqReason, Outcome
from fanout.pipeline.inflight import Received
from fanout.pipeline.routing import Routing
from fanout.pipeline.sender import make_copies
from fanout.pipeline.settle import Settler
from fanout.rules import RuleError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Handled:
    """What happened to one event: for the process span and the metrics."""

    outcome: Outcome
    rule_ids: tuple[str, ...] = ()
    error_type: str | None = None


class Worker:
    """The validate+match stage: takes received messages off the work queue, parses and
    validates each one, matches it against the rules, and hands one copy per matched target to
    that target's sender (or the message to the DLQ). Never waits on SQS: a worker is free for
    the next message as soon as the copies are queued.

    Owns the ``process <source>`` span of each event and its ``messaging.process.duration``.

    Order (FIFO sources and targets rely on it): ``handle`` is synchronous, so between taking
    a message off the work queue and submitting its copies no other worker runs; N workers
    therefore submit copies in work-queue order (= receive order). Keep it free of awaits, or
    sequence messages of one group in the hand-off.

    Parameters:
        routing: the rule set in force (read once per event: a reload swaps it between
            events) and the QueueSender of each target.
        settler: told how many copies to expect, or that the message is unmatched or bad.
        stats: counts processed, matches per rule, unmatched, defaulted.
        telemetry: tracer and instruments (tracing off costs nothing per event).
        source_name: the source queue's name, for span names and attributes.
    """

    def __init__(
        self,
        routing: Routing,
        settler: Settler,
        stats: Stats,
        telemetry: Telemetry,
        source_name: str,
    ) -> None:
        self._routing = routing
        self._settler = settler
        self._stats = stats
        self._telemetry = telemetry
        self._instruments = telemetry.instruments
        self._span_name = f"process {source_name}"
        self._span_attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": source_name,
        }
        self._metric_attributes = {
            "messaging.system": SYSTEM,
            "messaging.destination.name": source_name,
        }
        self._outcome_attributes = {
            outcome: {**self._metric_attributes, "fanout.outcome": str(outcome)}
            for outcome in Outcome
        }

    async def run(self, work: asyncio.Queue[Received]) -> None:
        while True:
            self._process(await work.get(), work)
            # A receive queues up to 10 messages at once: take the ones already there without
            # a task switch (and a future) per message; handling never awaits.
            while not work.empty():
                self._process(work.get_nowait(), work)

    def _process(self, message: Received, work: asyncio.Queue[Received]) -> None:
        try:
            self.handle(message)
        except Exception as exc:  # a bug must not lose the message: it goes to the DLQ
            message.log(log, logging.ERROR, "unexpected error", exc_info=True)
            try:
                self._settler.dead_letter(
                    message, DlqReason.INTERNAL_ERROR, type(exc).__name__, str(exc)
                )
            except Exception:  # not even a DLQ record: SQS redelivers it; the worker lives
                log.exception("message %s: cannot dead-letter it", message.message_id)
                self._settler.abandon(message)
        finally:
            work.task_done()

    def handle(self, message: Received) -> None:
        started = time.perf_counter()
        if not self._telemetry.tracing:
            handled = self._handle(message, None)
        else:
            handled = self._handle_traced(message)
        if message.event is not None:
            # Matched and its copies built: keep the ids, drop the parsed JSON for the time
            # the copies are in flight (memory per in-flight byte, docs/operations/memory.md).
            message.event = message.event.routed()
        # Matches, unmatched and DLQ counts are observed from Stats (telemetry.observe_stats).
        self._instruments.process_duration.record(
            time.perf_counter() - started, self._outcome_attributes[handled.outcome]
        )

    def _handle_traced(self, message: Received) -> Handled:
        # Child of the producer's context (the trace continues across the hop) and linked to it,
        # as the messaging conventions ask. Not made current: that costs ~5 us per event and
        # nothing below the worker makes spans synchronously.
        parent = producer_context(message.message_attributes, message.aws_trace_header)
        sampling = self._telemetry.sampling
        assert sampling is not None  # tracing on
        record, trace_id = sampling.decide(parent, self._span_name, SpanKind.CONSUMER)
        if not record:
            # Sampled out: no span, no attributes, no link from the batch spans; the copies
            # still carry the trace id with sampled flag 0 for the consumers downstream.
            return self._handle(message, lambda: unsampled_trace_attributes(parent, trace_id))
        links = None
        if parent is not None:
            links = [Link(get_current_span(parent).get_span_context())]
        span = sampling.start(
            self._telemetry.tracer,
            trace_id,
            self._span_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=self._span_attributes,
        )
        try:
            message.trace_context = span.get_span_context()
            handled = self._handle(message, lambda: trace_attributes(span))
            if span.is_recording():
                # Ids, topic and routing only: never event field values (PII).
                attributes: dict[str, AttributeValue] = {
                    "messaging.message.id": message.message_id,
                    "fanout.outcome": str(handled.outcome),
                }
                if message.event is not None:
                    attributes["fanout.event.id"] = message.event.id
                    attributes["fanout.event.type"] = message.event.detail_type
                if handled.rule_ids:
                    attributes["fanout.rule_ids"] = handled.rule_ids
                if handled.error_type is not None:
                    attributes["error.type"] = handled.error_type
                    span.set_status(StatusCode.ERROR)
                span.set_attributes(attributes)
            return handled
        finally:
            span.end()

    def _handle(
        self, message: Received, trace_of: Callable[[], dict[str, dict[str, Any]]] | None
    ) -> Handled:
        """Validate and match, hand copies to the senders (carrying ``trace_of()``, the message
        attributes of the event's trace context, built only when there are copies); returns
        the outcome."""
        self._stats.processed += 1
        try:
            event = parse_event(message.body)
        except InvalidEvent as exc:
            message.envelope_id = exc.event_id
            self._settler.dead_letter(message, exc.reason, exc.reason, exc.detail)
            return Handled(Outcome.DLQ, error_type=exc.reason)
        message.event = event
        routing = self._routing
        try:
            match = routing.rules.match(event.data)
        except RuleError as exc:
            self._settler.dead_letter(message, DlqReason.RULE_ERROR, exc.rule_id, str(exc))
            return Handled(Outcome.DLQ, error_type=DlqReason.RULE_ERROR)
        for rule_id in match.rule_ids:
            self._stats.per_rule[rule_id] += 1
        if not match.rule_ids:
            self._stats.unmatched += 1
            if not match.targets:
                log.debug("event %s matched no rule", event.id, extra={"event_id": event.id})
                self._settler.ack(message)
                return Handled(Outcome.UNMATCHED)
            self._stats.defaulted += 1
        trace = trace_of() if trace_of is not None else None
        self._settler.expect(message, len(match.targets))
        copies = make_copies(message, match.targets, message.body, event.id, trace)
        if trace and copies and TRACEPARENT not in copies[0].entry.get("MessageAttributes", {}):
            # SQS's cap of 10 attributes: the copy goes out without trace context, not at all.
            self._instruments.injection_skipped.add(1, self._metric_attributes)
        # Same synchronous step as the match: a reload cannot come in between.
        for copy in copies:
            routing.sender(copy.target).submit(copy)
        return Handled(Outcome.SENT, match.rule_ids)
