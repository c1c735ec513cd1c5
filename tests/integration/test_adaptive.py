"""Adaptive concurrency on moto: pollers follow the queue, a throttled target lowers only its
own concurrency (and its batches fill meanwhile), FIFO order holds while limits change."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fanout.aws.urls import queue_name
from fanout.observability.stats import Stats
from fanout.testing.accounting import (
    Fleet,
    account,
    make_events,
    publish,
    run_service,
    wait_settled,
)
from fanout.testing.faultproxy import (
    During,
    ErrorResponse,
    FaultProxy,
    RandomFaults,
    Reply,
    SqsRequest,
    Tap,
)
from fanout.testing.fifo import order_report, ordered_events, read_fifo
from tests.support.harness import Harness, dumps, ids_of, simplified

pytestmark = pytest.mark.integration

ONE_TARGET = """\
targets:
  all: {{queue_url: "{all}"}}
rules:
  - id: everything
    condition: id != null
    targets: [all]
"""


async def test_pollers_grow_under_a_full_queue_and_shrink_when_it_empties(
    harness: Harness,
) -> None:
    """A 600-event backlog: full receives add pollers (floor 1, ceiling 6); once the queue is
    empty, empty receives retire them back to the floor, whose 1 s polls are all an idle queue
    costs. moto may hand a message to two concurrent receives: ids are compared as sets."""
    h = harness
    source, dlq, target = await h.queue("src"), await h.queue("dlq"), await h.queue("all")
    rules = h.rules(ONE_TARGET.format(all=target))
    events = [simplified() for _ in range(600)]
    await h.send(source, [dumps(e) for e in events])
    settings = h.settings(source, dlq, rules, pollers=1, max_pollers=6)
    service, cm, _ = await h.start(settings)
    runner = asyncio.create_task(service.run())
    try:
        stats = service.stats
        async with asyncio.timeout(60):
            while stats.deleted < len(events):
                await asyncio.sleep(0.05)
        assert stats.peak_pollers > 1, "full receives added no poller"
        async with asyncio.timeout(20):
            while stats.pollers > 1:
                await asyncio.sleep(0.1)
        # Idle: the floor's one poller, 1 s long polls.
        before = stats.calls["ReceiveMessage"]
        await asyncio.sleep(3.0)
        assert stats.calls["ReceiveMessage"] - before <= 4
        assert stats.pollers == 1
    finally:
        service.stop.set()
        await runner
        await cm.__aexit__(None, None, None)
    assert set(ids_of(await h.drain(target))) == {e["id"] for e in events}


async def test_a_throttled_target_lowers_its_own_concurrency_and_its_batches_fill(
    fleet: Fleet,
) -> None:
    """`voice` throttles every call for 5 s: its limit drops (to the floor), the others' never
    drop, and it climbs back once the throttle ends. Meanwhile its copies wait in the buffer
    (no batch is taken without a free slot): the calls after the window are full batches."""
    events = make_events(300, seed=41)
    stats = Stats()
    voice = queue_name(fleet.targets["voice"])
    calls: list[tuple[float, int, bool]] = []  # (time, entries, accepted)

    def on_reply(req: SqsRequest, reply: Reply) -> None:
        payload = reply.parsed() or {}
        accepted = bool(payload.get("Successful"))
        calls.append((time.monotonic(), len(req.body.get("Entries", [])), accepted))

    samples: dict[str, list[int]] = {"voice": [], "agents": [], "all": []}
    async with FaultProxy(fleet.endpoint) as proxy:
        proxy.add(Tap("SendMessageBatch", on_reply=on_reply, queue=voice))
        window = During(
            ErrorResponse(
                "SendMessageBatch", 403, "RequestThrottled", True, times=None, queue=voice
            ),
            start=0.5,
            duration=5.0,
        )

        def open_window() -> None:
            window.restart()
            proxy.add(window)

        publisher = asyncio.create_task(publish(fleet.sqs, fleet.source, events, rate=60))

        async def settled() -> None:
            async def sample() -> None:
                while True:
                    for name, values in samples.items():
                        if name in stats.concurrency:
                            values.append(stats.concurrency[name])
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            try:
                await wait_settled(
                    fleet.sqs, fleet.source, quiet=1.5, timeout=90, ready=publisher.done
                )
            finally:
                sampler.cancel()

        try:
            await run_service(
                fleet,
                proxy,
                until=settled,
                started=open_window,
                timeout=120,
                stats=stats,
                pollers=1,
                retry_max_seconds=30,
                send_concurrency=8,
            )
        finally:
            publisher.cancel()
    result = await account("voice throttled 5 s", fleet, events)
    result.check()
    assert result.dlq_records == []
    assert result.fully_delivered == len(events)
    assert window.over and window.hits > 5
    low = min(samples["voice"])
    assert low < 8, "the throttled target's concurrency did not drop"
    assert samples["voice"][-1] > low, "it did not climb back"
    for other in ("agents", "all"):
        assert min(samples[other]) >= 8, f"{other} lost concurrency to voice's throttle"
    after = [n for _, n, ok in calls if ok]
    # The calls out when the throttle began retry their small batches; the ~130 copies that
    # arrived meanwhile waited in the buffer and went out in full batches.
    assert after.count(10) >= 5, after


async def test_fifo_order_holds_while_concurrency_changes(harness: Harness) -> None:
    """Throttles on both FIFO targets move their limits down and up; every group's steps still
    arrive in order, none lost, none duplicated."""
    source = await harness.queue("src")
    dlq = await harness.queue("dlq")
    urls = {
        "ledger": await harness.queue("ledger", fifo=True),
        "by_conversation": await harness.queue("byconv", fifo=True),
    }
    rules = harness.rules(
        """\
targets:
  ledger: {{queue_url: "{ledger}"}}
  by_conversation:
    queue_url: "{by_conversation}"
    fifo:
      message_group_id: detail.eventBody.conversationId
rules:
  - id: everything
    condition: id != null
    targets: [ledger, by_conversation]
""".format(**urls)
    )
    events = ordered_events(20, 6)
    await harness.send(source, [e.body for e in events])  # in order, one poller
    stats = Stats()
    samples: list[int] = []

    async def sample() -> None:
        while True:
            if "by_conversation" in stats.concurrency:
                samples.append(stats.concurrency["by_conversation"])
            await asyncio.sleep(0.01)

    async with FaultProxy(harness.endpoint) as proxy:
        throttles: list[Any] = [
            ErrorResponse("SendMessageBatch", 403, "RequestThrottled", True, times=None),
            ErrorResponse("SendMessageBatch", 400, "ThrottlingException", True, times=None),
        ]
        proxy.add(RandomFaults(throttles, 0.4, seed=7, queue=".fifo"))
        settings = harness.settings(source, dlq, rules, send_concurrency=8)
        sampler = asyncio.create_task(sample())
        try:
            await harness.run_until_idle(
                settings, endpoint=proxy.url, idle=3.0, timeout=150, stats=stats
            )
        finally:
            sampler.cancel()
    assert stats.retries, "nothing was throttled"
    assert min(samples) < 8 and max(samples) >= 8, "the limit never moved"
    for name in urls:
        report = order_report(await read_fifo(harness.sqs, urls[name]), events)
        print(report.render(name))
        assert report.out_of_order == 0, report.examples
        assert report.lost == [] and report.duplicates == 0
    assert await harness.drain(dlq) == []
