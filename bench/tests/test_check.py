"""The bench's own correctness check and latency stamp (pure; no timing asserted here)."""

from collections import Counter

from bench.check import verify
from bench.openloop import STAMP_KEY, percentile, sent_at
from fanout.local.synthetic import GenesysEventGenerator, stamp

EXPECTED = {"e1": ("a", "b"), "e2": ("a",), "e3": ()}


def test_all_delivered_is_ok() -> None:
    v = verify(EXPECTED, {"a": Counter({"e1": 1, "e2": 1}), "b": Counter({"e1": 1})}, {})
    assert v.ok and v.expected_copies == 3 and v.delivered_copies == 3


def test_missing_copy_is_lost_unless_dead_lettered() -> None:
    copies = {"a": Counter({"e1": 1}), "b": Counter({"e1": 1})}
    lost = verify(EXPECTED, copies, {})
    assert not lost.ok and lost.lost == ["e2 -> a missing"]
    assert verify(EXPECTED, copies, {"e2": "target_rejected"}).ok


def test_duplicates_only_within_redeliveries() -> None:
    copies = {"a": Counter({"e1": 2, "e2": 1}), "b": Counter({"e1": 1})}
    assert not verify(EXPECTED, copies, {}).ok
    assert verify(EXPECTED, copies, {}, allowed_extra=1).ok


def test_copy_where_no_rule_sends_is_misrouted() -> None:
    copies = {"a": Counter({"e1": 1, "e2": 1, "e3": 1}), "b": Counter({"e1": 1})}
    v = verify(EXPECTED, copies, {})
    assert not v.ok and v.misrouted == ["e3 -> a x1"]


def test_stamped_send_time_reads_back() -> None:
    body = GenesysEventGenerator(seed=3).body()
    assert sent_at(stamp(body, STAMP_KEY, 1764300000.123456)) == 1764300000.123456


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) in (50.0, 51.0)
    assert percentile(values, 100) == 100.0 and percentile(values, 0) == 1.0
