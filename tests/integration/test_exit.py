"""Drain mode exits promptly: --exit-when-idle S ends about S after the source ran empty, not
after the 20 s long poll in flight (a behaviour with a generous bound, not a benchmark)."""

from __future__ import annotations

import asyncio
import time

import pytest

from fanout.pipeline.poller import DRAIN_WAIT_SECONDS
from tests.support.harness import Harness, dumps, simplified

pytestmark = pytest.mark.integration

IDLE = 1.0
EVENTS = 30


async def test_exit_when_idle_does_not_wait_out_the_long_poll(harness: Harness) -> None:
    h = harness
    source, dlq, target = [await h.queue(n) for n in ("source", "dlq", "target")]
    rules = h.rules(
        f"""
targets:
  out: {{queue_url: "{target}"}}
rules:
  - id: all
    condition: "detail.tags.priority == 'high'"
    targets: [out]
"""
    )
    # The default 20 s long poll and several pollers: each has a receive out when the queue
    # runs empty.
    settings = h.settings(source, dlq, rules, wait_time_seconds=20, pollers=4)
    await h.send(source, [dumps(simplified("high")) for _ in range(EVENTS)])
    service, cm, _ = await h.start(settings)
    try:
        run = asyncio.create_task(service.run(exit_when_idle=IDLE))
        # The source is empty once every message has been received (moto may hand one out
        # twice to concurrent receives: at least EVENTS).
        while service.stats.received < EVENTS:
            assert not run.done(), "exited before draining the source"
            await asyncio.sleep(0.01)
        empty_at = time.monotonic()
        stats = await asyncio.wait_for(run, 60)
        took = time.monotonic() - empty_at
    finally:
        await cm.__aexit__(None, None, None)
    assert stats.deleted >= EVENTS
    assert (await h.depth(source)) == (0, 0)
    assert len(await h.drain(target)) >= EVENTS
    # Not before the idle window, and at most one drain-mode poll plus shutdown after it
    # (before the fix: the 20 s long poll in flight).
    assert took >= IDLE - 0.05, took
    assert took < IDLE + DRAIN_WAIT_SECONDS + 1.5, took
