"""Long-lived tasks are supervised: a heartbeat that raises is logged with its traceback,
counted and restarted; one that keeps raising stops the service with a crash loop (exit 1)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fanout.pipeline.tasks import TaskSupervisor
from tests.support.harness import Harness, dumps, simplified

pytestmark = pytest.mark.integration

HEARTBEAT = "visibility heartbeat"
EVENTS = 20


async def setup(h: Harness) -> tuple[str, str, object]:
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
    # A 2 s visibility timeout: the heartbeat ticks every 0.5 s.
    return source, target, h.settings(source, dlq, rules, visibility_timeout_seconds=2)


async def test_heartbeat_that_raises_is_logged_counted_and_restarted(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    source, target, settings = await setup(h)
    await h.send(source, [dumps(simplified("high")) for _ in range(EVENTS)])
    service, cm, _ = await h.start(settings)
    service.tasks = TaskSupervisor(service.stats, service.stop, first_delay=0.05)
    ticks_after_crash = 0
    original = service.acker.extend_due

    def extend_due() -> None:
        nonlocal ticks_after_crash
        if not service.stats.task_crashes:
            raise RuntimeError("heartbeat boom")
        ticks_after_crash += 1
        original()

    service.acker.extend_due = extend_due  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="fanout")
    try:
        stats = await asyncio.wait_for(service.run(exit_when_idle=2.0), 60)
    finally:
        await cm.__aexit__(None, None, None)
    assert stats.task_crashes == {HEARTBEAT: 1}
    assert stats.crash_loop is None
    # The restarted heartbeat kept ticking (0.5 s interval over a >= 2 s idle window).
    assert ticks_after_crash >= 2, ticks_after_crash
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR and HEARTBEAT in r.message]
    assert len(crashes) == 1
    assert crashes[0].exc_info is not None
    assert "heartbeat boom" in str(crashes[0].exc_info[1])
    # Nothing lost around the crash.
    assert len(await h.drain(target)) == EVENTS
    assert await h.depth(source) == (0, 0)
    assert stats.summary()["task_crashes"] == {HEARTBEAT: 1}


async def test_heartbeat_crash_loop_stops_the_service(harness: Harness) -> None:
    h = harness
    source, target, settings = await setup(h)
    await h.send(source, [dumps(simplified("high")) for _ in range(EVENTS)])
    service, cm, _ = await h.start(settings)
    service.tasks = TaskSupervisor(
        service.stats, service.stop, first_delay=0.01, max_delay=0.01, max_crashes=3
    )

    def extend_due() -> None:
        raise RuntimeError("heartbeat always fails")

    service.acker.extend_due = extend_due  # type: ignore[method-assign]
    try:
        # No exit_when_idle: only the crash loop can end this run.
        stats = await asyncio.wait_for(service.run(), 60)
    finally:
        await cm.__aexit__(None, None, None)
    assert stats.crash_loop == HEARTBEAT
    assert stats.task_crashes == {HEARTBEAT: 3}
    # A graceful stop: what was received was settled or released, nothing is stuck invisible
    # beyond the visibility timeout.
    delivered = len(await h.drain(target))
    await asyncio.sleep(2.5)
    left = len(await h.drain(source))
    assert delivered + left >= EVENTS
