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
from fanout.outcomes import DlqReason, ErrorKind
from fanout.pipeline.acker import Acker
from fanout.pipeline.dlq import DeadLetters, build_record, delivery_failure_record
from fanout.pipeline.inflight import Received
from fanout.pipeline.sender import Copy, fifo_ids_of

log = logging.getLogger(__name__)


class Settler:
    """Decides each source message's fate: it counts the message's copies as the target
    senders settle them and, after the last one, deletes the message (every copy accepted) or
    dead-letters it (a record naming the failed targets only).

    Owns no state of its own: the count of pending copies and the failures live on the
    ``Received`` message.

    Parameters:
        acker: deletes and abandons source messages.
        dead_letters: writes DLQ records (and then deletes or abandons their messages).
        stats: counts copies per target and send errors.
        telemetry: records end-to-end lag when a message's last copy is accepted.
    """

    def __init__(
        self,
        acker: Acker,
        dead_letters: DeadLetters,
        stats: Stats,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._acker = acker
        self._dead_letters = dead_letters
        self._stats = stats
        self._instruments = (telemetry or Telemetry.off()).instruments

    def expect(self, message: Received, copies: int) -> None:
        message.pending = copies

    def copy_settled(self, copy: Copy, failure: Failure | None) -> None:
        """OnSettled of every target sender: one copy accepted, or failed for good."""
        message = copy.source
        if failure is None:
            self._stats.per_target[copy.target.name] += 1
        else:
            message.failures[copy.target.name] = failure
            fifo_ids = fifo_ids_of(copy.entry)
            if fifo_ids:
                if message.failed_fifo_ids is None:
                    message.failed_fifo_ids = {}
                message.failed_fifo_ids[copy.target.name] = fifo_ids
            self._stats.error(ErrorKind.SEND, failure.code)
        message.pending -= 1
        if message.pending > 0:
            return
        if any(f.credentials for f in message.failures.values()):
            # Held through a credential outage longer than FANOUT_RETRY_MAX_SECONDS: fanout's
            # credentials failed, not a target. No DLQ record: left to come back and be retried.
            message.log(
                log,
                logging.ERROR,
                "copies still refused for fanout's credentials (%s); left to be redelivered",
                ",".join(sorted({f.code for f in message.failures.values() if f.credentials})),
            )
            self._acker.abandon(message, returns=True)
        elif message.failures:
            self._dead_letters.write(message, delivery_failure_record(message))
        else:
            if message.sent_timestamp_ms is not None:  # end to end: every target has its copy
                lag = time.time() - message.sent_timestamp_ms / 1000
                self._instruments.lag.record(max(0.0, lag))
            self._acker.delete(message)

    def dead_letter(self, message: Received, reason: DlqReason, code: str, detail: str) -> None:
        """The message cannot be routed at all (bad body, rule error, a bug)."""
        record = build_record(message, reason=reason, error_code=code, error_message=detail)
        self._dead_letters.write(message, record)

    def ack(self, message: Received) -> None:
        """Nothing to deliver (no rule matched, no default targets): delete it."""
        self._acker.delete(message)

    def abandon(self, message: Received) -> None:
        """Not deleted: SQS redelivers it after its visibility timeout (then its redrive policy)."""
        self._acker.abandon(message)
