"""Worker stage: validate each received message, match it, hand copies to target senders.

Workers never wait on SQS: sending, retrying and deleting happen in the senders and the acker,
so a worker is free for the next message as soon as its copies are queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from fanout.events import InvalidEvent, parse_event
from fanout.inflight import Received
from fanout.rules import RuleError, RuleSet
from fanout.sender import QueueSender, make_copy
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
    ) -> None:
        self._rules = rules
        self._senders = senders
        self._settler = settler
        self._stats = stats

    async def run(self, work: asyncio.Queue[Received]) -> None:
        while True:
            message = await work.get()
            try:
                self.handle(message)
            except Exception as exc:  # a bug must not lose the message: it goes to the DLQ
                log.exception("message %s: unexpected error", message.message_id)
                self._settler.dead_letter(message, "internal_error", type(exc).__name__, str(exc))
            finally:
                work.task_done()

    def handle(self, message: Received) -> None:
        self._stats.processed += 1
        try:
            event = parse_event(message.body)
        except InvalidEvent as exc:
            self._settler.dead_letter(message, exc.reason, exc.reason, exc.detail)
            return
        message.event = event
        try:
            match = self._rules.match(event.data)
        except RuleError as exc:
            self._settler.dead_letter(message, "rule_error", exc.rule_id, str(exc))
            return
        for rule_id in match.rule_ids:
            self._stats.per_rule[rule_id] += 1
        if not match.rule_ids:
            self._stats.unmatched += 1
            if not match.targets:
                log.debug("event %s matched no rule", event.id)
                self._settler.ack(message)
                return
            self._stats.defaulted += 1
        self._settler.expect(message, len(match.targets))
        for target in match.targets:
            self._senders[target.name].submit(make_copy(message, target, message.body, event.id))
