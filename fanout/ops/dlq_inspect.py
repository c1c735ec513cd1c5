"""``fanout dlq inspect``: what is in the DLQ, counted, without consuming it.

The summary (pure) counts records by reason, by failed target, by rule and by event type, with
the oldest and newest record. Only ids, reasons, rule ids, target names and event types are
shown: event bodies hold personal data and are printed only on request (``--show-bodies``).

Records do not name the rules an event matched. The rule of a ``rule_error`` record is its
``error_code``; for the others, when a rules file is given, the rules the event matches *now*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fanout.events import InvalidEvent, parse_event
from fanout.ops.records import DlqRecord
from fanout.outcomes import DlqReason
from fanout.rules.model import RuleError, RuleSet

NO_TYPE = "(not an event)"
NO_RULE = "(no rule matches now)"

RuleLookup = Callable[[DlqRecord], Iterable[str]]


def rules_now(ruleset: RuleSet) -> RuleLookup:
    """The rules a record's event matches under ``ruleset`` (a rule_error: the rule named)."""

    def lookup(record: DlqRecord) -> Iterable[str]:
        if record.reason == DlqReason.RULE_ERROR:
            return (record.error_code,)
        try:
            return ruleset.match(parse_event(record.body).data).rule_ids or (NO_RULE,)
        except RuleError as exc:
            return (exc.rule_id,)
        except InvalidEvent:
            return ()

    return lookup


def rule_errors_only(record: DlqRecord) -> Iterable[str]:
    return (record.error_code,) if record.reason == DlqReason.RULE_ERROR else ()


def summarize(
    records: Iterable[DlqRecord], rules_of: RuleLookup = rule_errors_only
) -> dict[str, Any]:
    """Counts by reason, failed target, rule, detail-type and record version; oldest, newest."""
    reasons: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    types: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    times = []
    total = 0
    for record in records:
        total += 1
        reasons[record.reason] += 1
        targets.update(record.failed_targets)
        rules.update(rules_of(record))
        types[record.detail_type or NO_TYPE] += 1
        versions[str(record.version) if record.version else "not a fanout record"] += 1
        if record.time is not None:
            times.append(record.time)
    return {
        "records": total,
        "by_reason": _ordered(reasons),
        "by_failed_target": _ordered(targets),
        "by_rule": _ordered(rules),
        "by_detail_type": _ordered(types),
        "by_version": _ordered(versions),
        "oldest": min(times).isoformat(timespec="milliseconds") if times else None,
        "newest": max(times).isoformat(timespec="milliseconds") if times else None,
    }


def _ordered(counter: Counter[str]) -> dict[str, int]:
    """Largest first, then by name: the same input always prints the same way."""
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def render(summary: Mapping[str, Any], *, url: str, rules_path: str | None) -> str:
    lines = [f"DLQ {url}: {summary['records']} records (read, then released: none consumed)"]
    if summary["records"]:
        lines.append(f"  oldest: {summary['oldest'] or '-'}   newest: {summary['newest'] or '-'}")
    rule_note = f"rule (matched now by {rules_path})" if rules_path else "rule (rule_error only)"
    for title, key in (
        ("reason", "by_reason"),
        ("failed target", "by_failed_target"),
        (rule_note, "by_rule"),
        ("detail-type", "by_detail_type"),
        ("record version", "by_version"),
    ):
        counts: Mapping[str, int] = summary[key]
        if not counts:
            continue
        lines.append(f"by {title}:")
        width = max(len(name) for name in counts)
        lines.extend(f"  {name:<{width}}  {count}" for name, count in counts.items())
    return "\n".join(lines)


def record_view(record: DlqRecord, *, with_body: bool) -> dict[str, Any]:
    """One record for ``--show-bodies`` (the body only when asked: it holds PII)."""
    view: dict[str, Any] = {
        "message_id": record.message_id,
        "event_id": record.event_id,
        "reason": record.reason,
        "error_code": record.error_code,
        "failed_targets": list(record.failed_targets),
        "time": record.time.isoformat(timespec="milliseconds") if record.time else None,
    }
    if with_body:
        view["body"] = record.body
    return view
