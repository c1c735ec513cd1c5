"""``fanout rules diff OLD NEW EVENTS...`` (pure part): which events a rule change reroutes.

Each event is validated once (validation does not depend on the rules) and matched under both
rule sets, as the service would. Events whose routing differs are grouped by the change, e.g.
``high -> critical: 412 events``, with the rules that matched on each side. Only target names
and rule ids are reported: never event values (they may hold personal data).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fanout.events import InvalidEvent, parse_event
from fanout.rules.model import RuleError, RuleSet

NONE = "(none)"


@dataclass(frozen=True, slots=True)
class Routing:
    """Where one event goes under one rule set: ``label`` is what the change is grouped by."""

    label: str
    rules: tuple[str, ...] = ()


def route(ruleset: RuleSet, data: Mapping[str, Any]) -> Routing:
    try:
        match = ruleset.match(data)
    except RuleError as exc:
        return Routing(f"DLQ (rule_error in '{exc.rule_id}')", (exc.rule_id,))
    names = sorted({t.name for t in match.targets})
    label = " + ".join(names) if names else NONE
    if match.by_default:
        label += " (default_targets)"
    return Routing(label, match.rule_ids)


@dataclass
class Change:
    old: str
    new: str
    events: int = 0
    old_rules: Counter[str] = field(default_factory=Counter)
    new_rules: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.old,
            "to": self.new,
            "events": self.events,
            "old_rules": dict(sorted(self.old_rules.items())),
            "new_rules": dict(sorted(self.new_rules.items())),
        }


def diff_events(old: RuleSet, new: RuleSet, bodies: Iterable[str]) -> dict[str, Any]:
    """Counts of unchanged, invalid and rerouted events; the reroutes grouped by change,
    largest group first."""
    changes: dict[tuple[str, str], Change] = {}
    total = unchanged = 0
    invalid: Counter[str] = Counter()
    for body in bodies:
        total += 1
        try:
            data = parse_event(body).data
        except InvalidEvent as exc:
            invalid[str(exc.reason)] += 1  # to the DLQ under either rule set
            continue
        before, after = route(old, data), route(new, data)
        if before.label == after.label:
            unchanged += 1
            continue
        change = changes.setdefault((before.label, after.label), Change(before.label, after.label))
        change.events += 1
        change.old_rules.update(before.rules)
        change.new_rules.update(after.rules)
    ordered = sorted(changes.values(), key=lambda c: (-c.events, c.old, c.new))
    return {
        "old": old.path,
        "new": new.path,
        "events": total,
        "changed": sum(c.events for c in ordered),
        "unchanged": unchanged,
        "invalid": dict(sorted(invalid.items())),
        "changes": [c.as_dict() for c in ordered],
    }


def render(diff: Mapping[str, Any]) -> str:
    invalid = sum(diff["invalid"].values())
    lines = [
        f"{diff['old']} -> {diff['new']}: {diff['events']} events, "
        f"{diff['changed']} routed differently, {diff['unchanged']} unchanged"
        + (f", {invalid} invalid (DLQ under both)" if invalid else "")
    ]
    for change in diff["changes"]:
        lines.append(f"  {change['from']} -> {change['to']}: {change['events']} events")
        lines.append(f"      old rules: {_rules(change['old_rules'])}")
        lines.append(f"      new rules: {_rules(change['new_rules'])}")
    return "\n".join(lines)


def _rules(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{rule} ({n})" for rule, n in counts.items()) or "no rule matched"
