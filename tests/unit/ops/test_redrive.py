"""redrive.py planning (pure): which record goes where, filters, FIFO ids, narrowed records."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fanout.errors import ConfigError
from fanout.ops.reader import RateLimit
from fanout.ops.records import DlqRecord
from fanout.ops.redrive import (
    KEEP_BAD_INPUT,
    KEEP_NO_TARGET,
    Action,
    Filters,
    narrowed_record,
    parse_since,
    plan_record,
    redrive_copies,
)
from fanout.rules.loader import load_rules_unresolved
from tests.support.harness import dumps, simplified

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
KNOWN = {"critical", "standard", "ledger"}


def record(
    reason: str = "target_rejected",
    failed: tuple[str, ...] = ("critical",),
    *,
    minutes: int = 0,
    fifo_ids: dict[str, dict[str, str]] | None = None,
    body: str | None = None,
) -> DlqRecord:
    event = simplified("critical", event_id="evt-1")
    return DlqRecord(
        message_id="m1",
        receipt_handle="rh",
        reason=reason,
        error_code="X",
        failed_targets=failed,
        event_id="evt-1",
        source_message_id="src-1",
        time=T0 + timedelta(minutes=minutes),
        body=body if body is not None else dumps(event),
        fifo_ids=fifo_ids or {},
        version=2 if fifo_ids is not None else 1,
        raw={"reason": reason, "failed_targets": list(failed), "body": "b", "error_code": "X"},
    )


def plan(r: DlqRecord, filters: Filters | None = None, to_source: bool = False) -> tuple[str, ...]:
    p = plan_record(r, filters or Filters(), known_targets=KNOWN, to_source=to_source)
    return (p.action, *p.targets, p.why) if p.why else (p.action, *p.targets)


def test_failed_targets_only() -> None:
    assert plan(record(failed=("critical", "ledger"))) == (Action.DELIVER, "critical", "ledger")


@pytest.mark.parametrize(
    "reason", ["invalid_json", "invalid_envelope", "invalid_detail", "rule_error"]
)
def test_bad_input_stays_without_to_source(reason: str) -> None:
    assert plan(record(reason, failed=())) == (Action.KEEP, KEEP_BAD_INPUT)
    assert plan(record(reason, failed=()), to_source=True) == (Action.TO_SOURCE,)


def test_internal_error_and_foreign_records_need_the_source_too() -> None:
    assert plan(record("internal_error", failed=())) == (Action.KEEP, KEEP_NO_TARGET)
    assert plan(record("unknown", failed=()), to_source=True) == (Action.TO_SOURCE,)


def test_filters() -> None:
    r = record(failed=("critical", "ledger"), minutes=10)
    assert plan(r, Filters(targets=frozenset({"ledger"}))) == (Action.DELIVER, "ledger")
    assert plan(r, Filters(targets=frozenset({"standard"})))[0] is Action.SKIP
    assert plan(r, Filters(reasons=frozenset({"invalid_json"})))[0] is Action.SKIP
    assert plan(r, Filters(reasons=frozenset({"target_rejected"})))[0] is Action.DELIVER
    assert plan(r, Filters(since=T0 + timedelta(minutes=11)))[0] is Action.SKIP
    assert plan(r, Filters(since=T0 + timedelta(minutes=10)))[0] is Action.DELIVER
    # A --target filter never selects a record with no target copy.
    assert plan(record("invalid_json", failed=()), Filters(targets=frozenset({"critical"})),
                to_source=True)[0] is Action.SKIP  # fmt: skip


def test_a_target_no_longer_in_the_rules_keeps_the_record() -> None:
    assert plan(record(failed=("renamed",))) == (Action.KEEP, "not in the rules file: renamed")
    assert plan(record(failed=("renamed", "critical"))) == (Action.DELIVER, "critical")


def test_parse_since() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("1.5d", now) == now - timedelta(days=1.5)
    assert parse_since("2026-11-28T03:00:00") == T0
    assert parse_since("2026-11-28T04:00:00+01:00") == T0
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday")


def test_narrowed_record_names_the_rest_only() -> None:
    ids = {"ledger": {"MessageGroupId": "g"}, "critical": {"MessageGroupId": "c"}}
    raw = narrowed_record(record(failed=("critical", "ledger"), fifo_ids=ids), {"ledger"})
    assert raw["failed_targets"] == ["ledger"]
    assert raw["fifo_ids"] == {"ledger": {"MessageGroupId": "g"}}
    assert raw["version"] == 2 and raw["reason"] == "target_rejected"


RULES = """
targets:
  critical: {queue_url: "http://q/critical"}
  ledger:
    queue_url: "http://q/ledger.fifo"
    fifo: {message_group_id: detail.channel}
rules:
  - id: all
    condition: detail.outcome == 'completed'
    targets: [critical, ledger]
"""


def test_copies_are_the_services_copies(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    targets = load_rules_unresolved(path).targets
    old = record(failed=("critical", "ledger"))  # version 1: ids computed as the service did
    critical, ledger = redrive_copies(old, [targets["critical"], targets["ledger"]])
    assert critical.entry["MessageBody"] == old.body
    assert critical.entry["MessageAttributes"]["fanout.event_id"]["StringValue"] == "evt-1"
    assert "MessageGroupId" not in critical.entry
    assert ledger.entry["MessageGroupId"] == "voice"
    want = hashlib.sha256(b"evt-1\x00ledger").hexdigest()
    assert ledger.entry["MessageDeduplicationId"] == want
    # Version 2: the ids the original send used win, even if the rules changed since.
    ids = {"ledger": {"MessageGroupId": "then", "MessageDeduplicationId": "d-then"}}
    [copy] = redrive_copies(record(failed=("ledger",), fifo_ids=ids), [targets["ledger"]])
    assert (copy.entry["MessageGroupId"], copy.entry["MessageDeduplicationId"]) == (
        "then",
        "d-then",
    )


async def test_rate_limit_spaces_calls() -> None:
    clock = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    rate = RateLimit(4, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        await rate.wait()
    assert slept == [0.25, 0.25, 0.25, 0.25]
    with pytest.raises(ConfigError):
        RateLimit(0)
