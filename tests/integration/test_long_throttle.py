"""Long throttles are waited out, not dead-lettered (FANOUT_RETRY_MAX_SECONDS), and a failing
target's backlog is bounded (FANOUT_TARGET_MAX_PENDING): moto behind the fault proxy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fanout.aws.urls import queue_name
from fanout.observability.stats import Stats
from fanout.testing.accounting import (
    Fleet,
    account,
    expected_targets,
    make_events,
    publish,
    run_service,
    wait_settled,
)
from fanout.testing.faultproxy import During, ErrorResponse, FaultProxy

pytestmark = pytest.mark.integration


async def _throttled_run(
    fleet: Fleet, *, seconds: float, events: list[Any], rate: float = 40, **overrides: Any
) -> tuple[Stats, During]:
    """Publish while fanout runs; `voice` answers RequestThrottled for ``seconds`` from 0.5 s
    after the start-up check."""
    async with FaultProxy(fleet.endpoint) as proxy:
        window = During(
            ErrorResponse(
                "SendMessageBatch",
                403,
                "RequestThrottled",
                True,
                times=None,
                queue=queue_name(fleet.targets["voice"]),
            ),
            start=0.5,
            duration=seconds,
        )

        def open_window() -> None:
            window.restart()
            proxy.add(window)

        publisher = asyncio.create_task(publish(fleet.sqs, fleet.source, events, rate=rate))

        async def settled() -> None:
            await wait_settled(fleet.sqs, fleet.source, quiet=1.5, timeout=90, ready=publisher.done)

        try:
            stats = await run_service(
                fleet, proxy, until=settled, started=open_window, timeout=120, **overrides
            )
        finally:
            publisher.cancel()
    return stats, window


async def test_a_long_throttle_is_waited_out(fleet: Fleet) -> None:
    """12 s of throttling, far past 6 attempts (~2 s at these delays): every copy delivered,
    no DLQ record, the source messages kept invisible by the heartbeat meanwhile."""
    events = make_events(120, seed=31)
    stats, window = await _throttled_run(
        fleet, seconds=12, events=events, pollers=1, retry_max_seconds=30
    )
    result = await account("throttled 12 s, budget 30 s", fleet, events)
    result.notes["throttled calls"] = window.hits
    result.check()
    assert window.over and window.hits > 20
    assert result.dlq_records == []
    assert result.fully_delivered == len(events)
    assert stats.visibility_extended > 0  # held past half the 3 s visibility timeout


async def test_budget_zero_dead_letters_like_before(fleet: Fleet) -> None:
    """FANOUT_RETRY_MAX_SECONDS=0: the attempts alone decide, the throttled target's copies go
    to the DLQ naming only it (the old behaviour, still available)."""
    events = make_events(60, seed=32)
    _, window = await _throttled_run(
        fleet, seconds=6, events=events, pollers=1, retry_max_seconds=0
    )
    result = await account("throttled 6 s, budget 0", fleet, events)
    result.check()
    assert window.hits > 0
    assert result.dlq_records, "nothing dead-lettered: the attempts were not the limit"
    assert all(r["failed_targets"] == ["voice"] for r in result.dlq_records)
    assert {r["reason"] for r in result.dlq_records} == {"target_rejected"}


async def test_a_failing_targets_backlog_overflows_to_the_dlq_alone(fleet: Fleet) -> None:
    """FANOUT_TARGET_MAX_PENDING=5: once `voice` has failed for 2 s, its copies beyond 5 go to
    the DLQ (target_backlog, naming `voice` only); the other targets get every copy."""
    events = make_events(120, seed=33)
    stats, _ = await _throttled_run(
        fleet,
        seconds=8,
        events=events,
        rate=20,  # traffic keeps coming for 6 s, well into the outage
        pollers=1,
        retry_max_seconds=30,
        target_max_pending=5,
    )
    result = await account("throttled 6 s, backlog 5", fleet, events)
    result.check()
    assert result.dlq_records, "the backlog limit never triggered"
    assert {r["reason"] for r in result.dlq_records} == {"target_backlog"}
    assert all(r["failed_targets"] == ["voice"] for r in result.dlq_records)
    assert result.delivered["voice"] > 0
    for target in ("all", "agents", "ledger"):  # untouched by the outage
        assert result.delivered[target] == sum(
            1 for e in events if target in (expected_targets(fleet.rules, e.body) or set())
        )
    assert stats.dlq["target_backlog"] == len(result.dlq_records)
