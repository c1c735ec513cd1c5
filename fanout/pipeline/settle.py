"""Where each source message ends: deleted, dead-lettered, or left to come back.

The rule fanout never breaks: a source message is deleted only when every matched target
accepted its copy, or when the DLQ accepted a record of what failed.
"""

from __future__ import annotations

import logging
import time

from fanout.aws.retry import Failure
from fanout.observability.stats import Stats
from fanout.observability.telemetry import Telemetry
from fanout.pipeline.acker import Acker
from fanout.pipeline.dlq import DeadLetters, build_record, delivery_failure_record
from fanout.pipeline.inflight import InFlight, Received
from fanout.pipeline.sender import Copy

log = logging.getLogger(__name__)


class Settler:
    def __init__(
        self,
        acker: Acker,
        inflight: InFlight,
        stats: Stats,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._acker = acker
        self._inflight = inflight
        self._stats = stats
        self._instruments = (telemetry or Telemetry.off()).instruments
        self.dead_letters: DeadLetters | None = None  # wired by the service (it needs us first)

    def expect(self, message: Received, copies: int) -> None:
        message.pending = copies

    def copy_done(self, copy: Copy, failure: Failure | None) -> None:
        """Callback of the target senders: one copy accepted, or failed for good."""
        message = copy.source
        if failure is None:
            self._stats.per_target[copy.target.name] += 1
        else:
            message.failures[copy.target.name] = failure
            self._stats.errors[f"send:{failure.code}"] += 1
        message.pending -= 1
        if message.pending > 0:
            return
        if message.failures:
            self._dead_letters().write(message, delivery_failure_record(message))
        else:
            if message.sent_timestamp_ms is not None:  # end to end: every target has its copy
                lag = time.time() - message.sent_timestamp_ms / 1000
                self._instruments.lag.record(max(0.0, lag))
            self._acker.delete(message)

    def dead_letter(self, message: Received, reason: str, code: str, detail: str) -> None:
        """The message cannot be routed at all (bad body, rule error)."""
        record = build_record(message, reason=reason, error_code=code, error_message=detail)
        self._dead_letters().write(message, record)

    def ack(self, message: Received) -> None:
        self._acker.delete(message)

    def abandon(self, message: Received) -> None:
        """Not deleted: SQS redelivers it after its visibility timeout (then its redrive policy)."""
        self._stats.abandoned += 1
        self._inflight.remove(message)

    def _dead_letters(self) -> DeadLetters:
        assert self.dead_letters is not None, "Settler.dead_letters is wired by the service"
        return self.dead_letters
