"""FIFO order end to end on moto, through the fault proxy: a FIFO source with many message
groups, FIFO targets faulted with partial batch failures, throttles, 5xx and resets; every
group's steps must arrive strictly increasing, none lost, none duplicated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from fanout.aws.urls import queue_name
from fanout.testing.faultproxy import (
    ErrorResponse,
    FailEntries,
    FaultProxy,
    RandomFaults,
    Reset,
)
from fanout.testing.fifo import order_report, ordered_events, publish_fifo, read_fifo
from tests.support.harness import Harness

pytestmark = pytest.mark.integration

RULES = """\
targets:
  ledger:                      # no group expression: the source message's group
    queue_url: "{ledger}"
  by_conversation:
    queue_url: "{by_conversation}"
    fifo:
      message_group_id: detail.eventBody.conversationId
  all:
    queue_url: "{all}"
rules:
  - id: everything
    condition: id != null
    targets: [ledger, by_conversation, all]
"""


def fifo_faults() -> list[Any]:
    faults: list[Any] = [
        # Partial failures: some entries of a call fail, the others are accepted.
        FailEntries("SendMessageBatch", "InternalError", False, max_entries=3, times=None),
        FailEntries("SendMessageBatch", "ServiceUnavailable", False, max_entries=1, times=None),
        ErrorResponse("SendMessageBatch", 403, "RequestThrottled", True, times=None),
        ErrorResponse("SendMessageBatch", 400, "ThrottlingException", True, times=None),
        ErrorResponse("SendMessageBatch", 500, "InternalError", times=None),
        # Applied upstream, answer lost: the retry is deduplicated by SQS.
        Reset("SendMessageBatch", mid_response=True, times=None),
        Reset("SendMessageBatch", mid_response=False, times=None),
    ]
    return faults


async def _scenario(
    harness: Harness,
    *,
    groups: int,
    steps: int,
    rate: float,
    reject: Callable[[str], bool] | None = None,
    fifo_source: bool = True,
) -> tuple[dict[str, Any], Any, list[dict[str, Any]], RandomFaults, list[Any]]:
    source = await harness.queue("src", fifo=fifo_source)
    dlq = await harness.queue("dlq")
    urls = {
        "ledger": await harness.queue("ledger", fifo=True),
        "by_conversation": await harness.queue("byconv", fifo=True),
        "all": await harness.queue("all"),
    }
    rules = harness.rules(RULES.format(**urls))
    events = ordered_events(groups, steps)
    if fifo_source:
        await publish_fifo(harness.sqs, source, events)
    else:  # in order; one poller receives them in (about) that order
        await harness.send(source, [e.body for e in events])
    async with FaultProxy(harness.endpoint) as proxy:
        if reject is not None:  # rejected for good (SenderFault), on `ledger` only
            proxy.add(
                FailEntries(
                    "SendMessageBatch",
                    "InvalidParameterValue",
                    True,
                    lambda e: reject(str(orjson.loads(e["MessageBody"])["id"])),
                    times=None,
                    queue=queue_name(urls["ledger"]),
                )
            )
        schedule = proxy.add(
            RandomFaults(
                fifo_faults(),
                rate,
                seed=14,
                queue=".fifo",  # both FIFO targets (fanout never sends to the source)
            )
        )
        settings = harness.settings(
            source, dlq, rules, workers=4, send_concurrency=8, visibility_timeout_seconds=10
        )
        stats = await harness.run_until_idle(settings, endpoint=proxy.url, idle=4.0, timeout=150)
    reads = {
        name: await read_fifo(harness.sqs, urls[name]) for name in ("ledger", "by_conversation")
    }
    records = [orjson.loads(m["Body"]) for m in await harness.drain(dlq)]
    return reads, stats, records, schedule, events


@pytest.mark.parametrize("fifo_source", [True, False], ids=["fifo-source", "standard-source"])
async def test_fifo_targets_keep_every_group_in_order_under_faults(
    harness: Harness, fifo_source: bool
) -> None:
    """FIFO source: moto hands out one message per group per receive (SQS up to 10), so the
    source's group lock already orders the copies; the standard source (events in order, one
    poller) puts many steps of a group into one batch window: the target sequencing's test."""
    reads, stats, records, schedule, events = await _scenario(
        harness, groups=15, steps=6, rate=0.3, fifo_source=fifo_source
    )
    assert records == []  # only retryable faults: nothing is dead-lettered
    for name, read in reads.items():
        report = order_report(read, events)
        print(report.render(name), dict(schedule.injected))
        assert report.out_of_order == 0, report.examples
        if fifo_source or name == "by_conversation":  # else `ledger` is one group: its name
            assert report.wrong_group == 0
        assert report.lost == []
        assert report.duplicates == 0
    # Really faulted, whatever the batching: the 180 FIFO copies need at least 18 calls, and
    # seed 14 at rate 0.3 faults 6 of any schedule's first 18 eligible calls, of 4 kinds.
    assert schedule.seen >= 18
    assert schedule.hits >= 6 and len(schedule.injected) >= 4
    assert stats.retries  # and fanout really retried
    assert not any(key.startswith("fifo_gap") for key in stats.errors)


async def test_fifo_dead_letter_and_continue_is_counted(harness: Harness) -> None:
    """A copy rejected for good goes to the DLQ; its group goes on without it, in order, and
    the gap is counted (``fifo_gap:<target>``)."""

    def rejected(event_id: str) -> bool:  # step 2 of every other group
        _, group, step = event_id.split("-")
        return step == "00002" and int(group) % 2 == 0

    reads, stats, records, _, events = await _scenario(
        harness, groups=6, steps=6, rate=0.2, reject=rejected
    )
    dead = {str(r["event_id"]) for r in records}
    assert dead == {e.event_id for e in events if rejected(e.event_id)}
    assert all(r["failed_targets"] == ["ledger"] for r in records)
    assert {r["reason"] for r in records} <= {"target_rejected", "targets_rejected"}
    for name, read in reads.items():
        report = order_report(read, events, dead_lettered=dead if name == "ledger" else set())
        print(report.render(name))
        assert report.out_of_order == 0, report.examples
        assert report.lost == [] and report.duplicates == 0
    assert stats.errors["fifo_gap:ledger"] == len(records)  # the target's group went on
    assert stats.errors["fifo_gap:source"] == len(records)  # and so did the source's
