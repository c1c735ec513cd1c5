"""Worker stage: validate each received message, match it, hand copies to target senders.

Workers never wait on SQS: sending, retrying and deleting happen in the senders and the acker,
so a worker is free for the next message as soon as its copies are queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.trace import Link, Span, SpanKind, StatusCode, get_current_span
from opentelemetry.util.types import AttributeValue

from fanout.events import InvalidEvent, parse_event
from fanout.observability.stats import Stats
from fanout.observability.telemetry import (
    SYSTEM,
    TRACEPARENT,
    Telemetry,
    producer_context,
    trace_attributes,
)
from fanout.pipeline.inflight import Received
from fanout.pipeline.sender import QueueSender, make_copies
from fanout.pipeline.settle import Settler
from fanout.rules import RuleError, RuleSet

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """What happened to one event: for the process span and the metrics."""

    name: str  # sent, unmatched or dlq
    rule_ids: tuple[str, ...] = ()
    error_type: str | None = None


class Worker:
    def __init__(
        self,
        rules: RuleSet,
        senders: Mapping[str, QueueSender],
        settler: Settler,
        stats: Stats,
        telemetry: Telemetry,
        source_name: str,
    ) -> None:
        self._rules = rules
        self._senders = senders
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
            name: {**self._metric_attributes, "fanout.outcome": name}
            for name in ("sent", "unmatched", "dlq")
        }

    async def run(self, work: asyncio.Queue[Received]) -> None:
        while True:
            message = await work.get()
            try:
                self.handle(message)
            except Exception as exc:  # a bug must not lose the message: it goes to the DLQ
                log.exception(
                    "event %s (message %s): unexpected error",
                    message.event_id or "-",
                    message.message_id,
                    extra={"event_id": message.event_id, "message_id": message.message_id},
                )
                try:
                    self._settler.dead_letter(
                        message, "internal_error", type(exc).__name__, str(exc)
                    )
                except Exception:  # not even a DLQ record: SQS redelivers it; the worker lives
                    log.exception("message %s: cannot dead-letter it", message.message_id)
                    self._settler.abandon(message)
            finally:
                work.task_done()

    def handle(self, message: Received) -> None:
        started = time.perf_counter()
        if not self._telemetry.tracing:
            outcome = self._handle(message, None)
        else:
            outcome = self._handle_traced(message)
        # Matches, unmatched and DLQ counts are observed from Stats (telemetry.observe_stats).
        self._instruments.process_duration.record(
            time.perf_counter() - started, self._outcome_attributes[outcome.name]
        )

    def _handle_traced(self, message: Received) -> Outcome:
        # Child of the producer's context (the trace continues across the hop) and linked to it,
        # as the messaging conventions ask. Not made current: that costs ~5 us per event and
        # nothing below the worker makes spans synchronously.
        parent = producer_context(message.message_attributes, message.aws_trace_header)
        links = None
        if parent is not None:
            links = [Link(get_current_span(parent).get_span_context())]
        span = self._telemetry.tracer.start_span(
            self._span_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=self._span_attributes,
        )
        try:
            message.trace_context = span.get_span_context()
            outcome = self._handle(message, span)
            if span.is_recording():
                # Ids, topic and routing only: never event field values (PII).
                attributes: dict[str, AttributeValue] = {
                    "messaging.message.id": message.message_id,
                    "fanout.outcome": outcome.name,
                }
                if message.event is not None:
                    attributes["fanout.event.id"] = message.event.id
                    attributes["fanout.event.type"] = message.event.detail_type
                if outcome.rule_ids:
                    attributes["fanout.rule_ids"] = outcome.rule_ids
                if outcome.error_type is not None:
                    attributes["error.type"] = outcome.error_type
                    span.set_status(StatusCode.ERROR)
                span.set_attributes(attributes)
            return outcome
        finally:
            span.end()

    def _handle(self, message: Received, span: Span | None) -> Outcome:
        """Validate and match, hand copies to the senders; returns the outcome."""
        self._stats.processed += 1
        try:
            event = parse_event(message.body)
        except InvalidEvent as exc:
            self._settler.dead_letter(message, exc.reason, exc.reason, exc.detail)
            return Outcome("dlq", error_type=exc.reason)
        message.event = event
        try:
            match = self._rules.match(event.data)
        except RuleError as exc:
            self._settler.dead_letter(message, "rule_error", exc.rule_id, str(exc))
            return Outcome("dlq", error_type="rule_error")
        for rule_id in match.rule_ids:
            self._stats.per_rule[rule_id] += 1
        if not match.rule_ids:
            self._stats.unmatched += 1
            if not match.targets:
                log.debug("event %s matched no rule", event.id, extra={"event_id": event.id})
                self._settler.ack(message)
                return Outcome("unmatched")
            self._stats.defaulted += 1
        trace = trace_attributes(span) if span is not None else None
        self._settler.expect(message, len(match.targets))
        copies = make_copies(message, match.targets, message.body, event.id, trace)
        if trace and copies and TRACEPARENT not in copies[0].entry.get("MessageAttributes", {}):
            # SQS's cap of 10 attributes: the copy goes out without trace context, not at all.
            self._instruments.injection_skipped.add(1, self._metric_attributes)
        for copy in copies:
            self._senders[copy.target.name].submit(copy)
        return Outcome("sent", match.rule_ids)
