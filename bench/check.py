"""Correctness inside every run: every expected copy arrived (or its event is in the DLQ), no
copy went where no rule sent it, and no target holds more copies of an event than the number of
times its source message was delivered (what at-least-once allows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    events: int
    expected_copies: int
    delivered_copies: int
    dlq: int
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    misrouted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.misrouted)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "expected_copies": self.expected_copies,
            "delivered_copies": self.delivered_copies,
            "dlq": self.dlq,
            "lost": len(self.lost),
            "duplicates": len(self.duplicates),
            "misrouted": len(self.misrouted),
            "examples": (self.lost + self.duplicates + self.misrouted)[:5],
        }


def verify(
    expected: Mapping[str, tuple[str, ...]],
    copies: Mapping[str, Counter[str]],
    dlq: Mapping[str, str],
    *,
    allowed_extra: int = 0,
) -> Verdict:
    """``expected``: event id -> targets, for exactly the events the system was given.
    ``allowed_extra``: redeliveries the source saw (each may legitimately repeat copies)."""
    verdict = Verdict(
        events=len(expected),
        expected_copies=sum(len(t) for t in expected.values()),
        delivered_copies=sum(sum(c.values()) for c in copies.values()),
        dlq=len(dlq),
    )
    extra_budget = allowed_extra
    for target, counts in copies.items():
        for eid, n in counts.items():
            wanted = expected.get(eid)
            if wanted is None or target not in wanted:
                verdict.misrouted.append(f"{eid} -> {target} x{n}")
            elif n > 1:
                extra_budget -= n - 1
                if extra_budget < 0:
                    verdict.duplicates.append(f"{eid} -> {target} x{n}")
    for eid, targets in expected.items():
        if eid in dlq:
            continue
        for target in targets:
            if copies.get(target, Counter())[eid] == 0:
                verdict.lost.append(f"{eid} -> {target} missing")
    return verdict
