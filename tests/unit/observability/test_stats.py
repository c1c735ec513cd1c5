"""stats.py: the exit summary and its JSON form."""

from __future__ import annotations

from fanout.observability.stats import Stats, render_summary


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
