"""What workers route by: the current rule set and a sender for every target it can name.

A rules reload (fanout.reload) swaps the rule set in one assignment. Workers read ``rules``
once per event and hand that event's copies to the senders in the same synchronous step, so an
event is matched and submitted under one rule set: never half under the old and half under the
new. Senders are keyed by the whole target (name, URL, FIFO settings): a target whose URL
changed gets a new sender, and a removed or changed target's sender stays until its pending
copies are delivered (``prune`` drops it once idle).
"""

from __future__ import annotations

from collections.abc import Mapping

from fanout.pipeline.sender import QueueSender
from fanout.rules import RuleSet, Target


class Routing:
    """The rule set workers match against, and the QueueSender of every target.

    Parameters:
        rules: the compiled rule set in force.
        senders: one sender per target of ``rules`` (more may be added by ``swap``).
    """

    def __init__(self, rules: RuleSet, senders: Mapping[Target, QueueSender]) -> None:
        missing = [t.name for t in rules.targets.values() if t not in senders]
        if missing:
            raise ValueError(f"no sender for targets {missing}")
        self.rules = rules
        self._senders = dict(senders)

    def sender(self, target: Target) -> QueueSender:
        return self._senders[target]

    @property
    def senders(self) -> list[QueueSender]:
        """Every live sender, those of retired targets still draining included."""
        return list(self._senders.values())

    def needs_sender(self, rules: RuleSet) -> list[Target]:
        """Targets of ``rules`` that have no sender yet."""
        return [t for t in rules.targets.values() if t not in self._senders]

    def swap(self, rules: RuleSet, new_senders: Mapping[Target, QueueSender]) -> None:
        """Put ``rules`` in force; ``new_senders`` covers ``needs_sender(rules)``. Senders come
        first: a worker reading the new rules finds every sender it needs."""
        self._senders.update(new_senders)
        missing = self.needs_sender(rules)
        if missing:
            raise ValueError(f"no sender for targets {[t.name for t in missing]}")
        self.rules = rules

    def prune(self) -> list[Target]:
        """Drop the senders of targets the rules in force no longer name, once they have
        nothing pending; returns those dropped."""
        current = set(self.rules.targets.values())
        idle = [t for t, s in self._senders.items() if t not in current and not s.batcher.busy]
        for target in idle:
            del self._senders[target]
        return idle
