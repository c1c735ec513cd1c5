"""stats.py: the exit summary, its JSON form, and the merged summary of ``--processes N``."""

from __future__ import annotations

from fanout.observability.stats import Stats, merge_summaries, render_summary


def test_summary_counts_redeliveries() -> None:
    stats = Stats(received=1003, redelivered=3, deleted=1003)
    summary = stats.summary()
    assert summary["received"] == 1003 and summary["redelivered"] == 3
    text = render_summary(summary)
    assert "received     1003" in text
    assert "redelivered  3 of the receives (ApproximateReceiveCount > 1" in text


def test_summary_fields_are_kept() -> None:
    # --summary-json is read by scripts: fields are only ever added.
    expected = {
        "elapsed_seconds", "received", "redelivered", "processed", "deleted",
        "events_per_second", "per_rule", "per_target", "unmatched", "default_targets", "dlq",
        "dlq_total", "errors", "retries", "released", "abandoned", "expired_receipts",
        "visibility_extended", "sqs_calls",
    }  # fmt: skip
    assert expected <= set(Stats().summary())


def child(received: int, target: str, dlq_reason: str | None = None) -> Stats:
    stats = Stats()
    stats.received = stats.processed = stats.deleted = received
    stats.per_target[target] += received
    stats.per_rule["r"] += received
    stats.calls["ReceiveMessage"] += 3
    if dlq_reason:
        stats.dlq[dlq_reason] += 1
    return stats


def test_counters_and_per_key_counts_add_up() -> None:
    a = child(10, "alpha", "invalid_json").summary()
    b = child(32, "beta").summary()
    b["errors"] = {"send:Throttling": 2}
    merged = merge_summaries([a, b], elapsed=2.0, processes=2, restarts=1)
    assert merged["received"] == merged["processed"] == merged["deleted"] == 42
    assert merged["per_target"] == {"alpha": 10, "beta": 32}
    assert merged["per_rule"] == {"r": 42}
    assert merged["dlq"] == {"invalid_json": 1} and merged["dlq_total"] == 1
    assert merged["errors"] == {"send:Throttling": 2}
    assert merged["sqs_calls"] == {"ReceiveMessage": 6}
    assert merged["events_per_second"] == 21.0  # over the supervisor's wall time
    assert (merged["processes"], merged["child_summaries"], merged["restarts"]) == (2, 2, 1)
    assert "restarts 1" in render_summary(merged)
    # Same keys as a single process's summary, plus the supervisor's own.
    assert set(a) | {"processes", "child_summaries", "restarts"} == set(merged)


def test_no_child_summary_is_an_empty_run() -> None:
    merged = merge_summaries([], elapsed=1.0, processes=3, restarts=0)
    assert merged["received"] == 0 and merged["per_target"] == {}


def test_task_crashes_are_in_the_summary_and_add_up() -> None:
    quiet = Stats().summary()
    assert quiet["task_crashes"] == {} and quiet["crash_loop"] is None
    assert "task crashes" not in render_summary(quiet)
    stats = Stats()
    stats.task_crashes["visibility heartbeat"] += 5
    stats.crash_loop = "visibility heartbeat"
    text = render_summary(stats.summary())
    assert "task crashes visibility heartbeat=5 (crash loop: visibility heartbeat, exit 1)" in text
    other = Stats()
    other.task_crashes["worker"] += 1
    merged = merge_summaries([stats.summary(), other.summary()], elapsed=1, processes=2, restarts=1)
    assert merged["task_crashes"] == {"visibility heartbeat": 5, "worker": 1}
