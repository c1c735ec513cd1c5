"""TaskSupervisor without a server: restart with backoff, crash loop, a clean return, cancel."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fanout.observability.stats import Stats
from fanout.pipeline.tasks import TaskSupervisor


def supervisor(stats: Stats, stop: asyncio.Event, **options: float) -> TaskSupervisor:
    return TaskSupervisor(stats, stop, first_delay=0.001, max_delay=0.01, **options)  # type: ignore[arg-type]


async def test_crash_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    stats, stop = Stats(), asyncio.Event()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError(f"crash {len(runs)}")

    caplog.set_level(logging.ERROR)
    await asyncio.wait_for(supervisor(stats, stop).spawn("flaky", flaky), 5)
    assert len(runs) == 3  # two crashes, then a clean return ends it
    assert stats.task_crashes == {"flaky": 2}
    assert not stop.is_set()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [str(r.exc_info[1]) for r in errors if r.exc_info] == ["crash 1", "crash 2"]


async def test_crash_loop_sets_stop_and_names_the_task() -> None:
    stats, stop = Stats(), asyncio.Event()
    tasks = supervisor(stats, stop, max_crashes=4, window=60)

    async def broken() -> None:
        raise RuntimeError("always")

    async def steady() -> None:
        await stop.wait()

    steady_task = tasks.spawn("steady", steady)
    await asyncio.wait_for(tasks.spawn("broken", broken), 5)
    assert stop.is_set()
    assert tasks.failed == "broken"
    assert stats.task_crashes == {"broken": 4}
    await asyncio.wait_for(steady_task, 1)  # the others see the stop and end


async def test_crashes_outside_the_window_do_not_add_up() -> None:
    stats, stop = Stats(), asyncio.Event()
    tasks = supervisor(stats, stop, max_crashes=2, window=0.0)
    runs = 0

    async def sometimes() -> None:
        nonlocal runs
        runs += 1
        if runs <= 5:
            raise RuntimeError("spaced out")

    await asyncio.wait_for(tasks.spawn("spaced", sometimes), 5)
    assert stats.task_crashes == {"spaced": 5}
    assert tasks.failed is None and not stop.is_set()


async def test_cancel_stops_a_task_waiting_to_restart() -> None:
    stats, stop = Stats(), asyncio.Event()
    tasks = TaskSupervisor(stats, stop, first_delay=30)

    async def broken() -> None:
        raise RuntimeError("once")

    task = tasks.spawn("broken", broken)
    while not stats.task_crashes:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stats.task_crashes == {"broken": 1}
