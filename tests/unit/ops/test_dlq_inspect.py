"""dlq_inspect.py: the summary counts what is there and never shows event values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from fanout.ops.dlq_inspect import NO_RULE, NO_TYPE, render, rules_now, summarize
from fanout.ops.records import DlqRecord
from fanout.rules.loader import load_rules_unresolved
from tests.support.harness import conversation, dumps, simplified

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)

RULES = """
targets:
  critical: {queue_url: "http://q/critical"}
  standard: {queue_url: "http://q/standard"}
rules:
  - id: critical
    condition: detail.tags.priority == 'critical'
    targets: [critical]
  - id: voice
    condition: detail.channel == 'voice'
    targets: [standard]
"""


def record(
    reason: str, body: str, *, failed: tuple[str, ...] = (), minutes: int = 0, code: str = ""
) -> DlqRecord:
    return DlqRecord(
        message_id=f"m{minutes}",
        receipt_handle="rh",
        reason=reason,
        error_code=code,
        failed_targets=failed,
        event_id=None,
        source_message_id=None,
        time=T0 + timedelta(minutes=minutes),
        body=body,
        version=2,
    )


def sample() -> list[DlqRecord]:
    secret = simplified("critical", channel="voice")
    secret["detail"]["ani"] = "+4915112345678"
    return [
        record("target_rejected", dumps(secret), failed=("critical",), minutes=5),
        record(
            "target_rejected",
            dumps(simplified("critical", channel="chat")),
            failed=("critical",),
            minutes=1,
        ),
        record(
            "targets_rejected",
            dumps(simplified("critical", channel="voice")),
            failed=("critical", "standard"),
            minutes=3,
        ),
        record("invalid_json", "{nope", minutes=9),
        record("rule_error", dumps(conversation("user.end")), minutes=7, code="voice"),
    ]


def test_counts_by_reason_target_type_and_times() -> None:
    summary = summarize(sample())
    assert summary["records"] == 5
    assert summary["by_reason"] == {
        "target_rejected": 2,
        "invalid_json": 1,
        "rule_error": 1,
        "targets_rejected": 1,
    }
    assert next(iter(summary["by_reason"])) == "target_rejected"  # largest first
    assert summary["by_failed_target"] == {"critical": 3, "standard": 1}
    assert summary["by_detail_type"] == {
        "Interaction Completed": 3,
        NO_TYPE: 1,
        "v2.detail.events.conversation.{id}.user.end": 1,
    }
    assert summary["by_rule"] == {"voice": 1}  # without rules: the rule_error's rule only
    assert summary["oldest"] == "2026-11-28T03:01:00.000+00:00"
    assert summary["newest"] == "2026-11-28T03:09:00.000+00:00"


def test_by_rule_with_the_rules_matched_now(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    summary = summarize(sample(), rules_now(load_rules_unresolved(path)))
    # critical x3 (one also voice), the rule_error names its rule, the conversation matches none
    assert summary["by_rule"] == {"critical": 3, "voice": 3}
    unmatched = record(
        "target_rejected", dumps(simplified("normal", channel="chat")), failed=("x",)
    )
    assert summarize([unmatched], rules_now(load_rules_unresolved(path)))["by_rule"] == {NO_RULE: 1}


def test_empty_dlq() -> None:
    summary = summarize([])
    assert summary["records"] == 0 and summary["oldest"] is None
    assert "0 records" in render(summary, url="http://q/dlq", rules_path=None)


def test_no_event_values_in_the_output() -> None:
    summary = summarize(sample())
    text = render(summary, url="http://q/dlq", rules_path=None) + orjson.dumps(summary).decode()
    assert "+4915112345678" not in text and "voice" in text  # a rule id, not a value
    assert "nope" not in text
