"""Worker stage: validate each received message, match it, hand copies to target senders.

Workers never wait on SQS: sending, retrying and deleting happen in the senders and the acker,
so a worker is free for the next message as soon as its copies are queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from opentelemetry.trace import SpanKind, Tracer

from fanout.events import InvalidEvent, parse_event
from fanout.inflight import Received
from fanout.rules import RuleError, RuleSet
from fanout.sender import QueueSender, make_copies
from fanout.settle import Settler
from fanout.stats import Stats

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        rules: RuleSet,
        senders: Mapping[str, QueueSender],
        settler: Settler,
        stats: Stats,
        tracer: Tracer,
        source_name: str,
    ) -> None:
        self._rules = rules
        self._senders = senders
        self._settler = settler
        self._stats = stats
        self._tracer = tracer
        self._span_name = f"process {source_name}"

    async def run(self, work: asyncio.Queue[Received]) -> None:
        while True:
            message = await work.get()
            try:
                self.handle(message)
            except Exception as exc:  # a bug must not lose the message: it goes to the DLQ
                log.exception("message %s: unexpected error", message.message_id)
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
        # A span per event (no-op unless an OpenTelemetry SDK is configured); not made current,
        # which keeps the no-op cost under 2 us per event.
        span = self._tracer.start_span(self._span_name, kind=SpanKind.CONSUMER)
        try:
            outcome = self._handle(message)
            if span.is_recording():
                span.set_attribute("messaging.system", "aws_sqs")
                span.set_attribute("messaging.message.id", message.message_id)
                span.set_attribute("fanout.outcome", outcome)
                if message.event is not None:
                    span.set_attribute("fanout.event_id", message.event.id)
        finally:
            span.end()

    def _handle(self, message: Received) -> str:
        """Validate and match; returns the outcome: dlq, unmatched or sent."""
        self._stats.processed += 1
        try:
            event = parse_event(message.body)
        except InvalidEvent as exc:
            self._settler.dead_letter(message, exc.reason, exc.reason, exc.detail)
            return "dlq"
        message.event = event
        try:
            match = self._rules.match(event.data)
        except RuleError as exc:
            self._settler.dead_letter(message, "rule_error", exc.rule_id, str(exc))
            return "dlq"
        for rule_id in match.rule_ids:
            self._stats.per_rule[rule_id] += 1
        if not match.rule_ids:
            self._stats.unmatched += 1
            if not match.targets:
                log.debug("event %s matched no rule", event.id)
                self._settler.ack(message)
                return "unmatched"
            self._stats.defaulted += 1
        self._settler.expect(message, len(match.targets))
        for copy in make_copies(message, match.targets, message.body, event.id):
            self._senders[copy.target.name].submit(copy)
        return "sent"
