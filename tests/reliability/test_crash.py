"""The fanout *process* killed with SIGKILL at chosen points, and stopped with SIGTERM under load.

Kills are aimed: the fault proxy holds one call of a chosen operation and the process is killed
while it is held, so each kill lands where it is recorded:

* ``receive``: ReceiveMessage was answered upstream (messages now invisible), reply not yet read;
* ``mid-batch``: a SendMessageBatch to a target is in flight, other copies may have been sent;
* ``send-delete``: every copy was accepted, the DeleteMessageBatch is in flight;
* ``anytime``: a random moment.

Then fanout is run again to drain, and every event is accounted for: nothing lost, duplicates
only in standard targets (counted), none in the FIFO target.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fanout.testing.accounting import (
    LOCALSTACK_URL,
    Fleet,
    account,
    depth,
    fleet_on,
    localstack_up,
    make_events,
    publish,
)
from fanout.testing.faultproxy import Delay, FaultProxy, SqsRequest

pytestmark = pytest.mark.integration

KILL_POINTS = ("receive", "mid-batch", "send-delete", "anytime")
HELD_OPERATION = {
    "receive": "ReceiveMessage",
    "mid-batch": "SendMessageBatch",
    "send-delete": "DeleteMessageBatch",
}


@pytest.fixture(
    params=[
        "fast",
        pytest.param("long", marks=[pytest.mark.reliability, pytest.mark.timeout(900)]),
    ]
)
async def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fleet]:
    if request.param == "long":
        if not localstack_up():
            pytest.fail(f"LocalStack is not reachable at {LOCALSTACK_URL} (see README)")
        endpoint = LOCALSTACK_URL
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
    async with fleet_on(endpoint, tmp_path, f"crash-{request.param}") as fleet:
        fleet.profile = request.param
        yield fleet


def _long(fleet: Fleet) -> bool:
    return fleet.profile == "long"


async def _start(
    fleet: Fleet, proxy: FaultProxy, log: Path, *extra: str, **settings: Any
) -> asyncio.subprocess.Process:
    env = fleet.env(proxy.url, log_level="WARNING", **settings)
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanout", "run", *extra, env=env, stdout=out, stderr=out
        )


async def _drain(fleet: Fleet, proxy: FaultProxy, log: Path, visibility: int) -> None:
    """Run fanout until the source stayed idle past the visibility timeout (so messages a
    killed process left invisible came back and were handled)."""
    proc = await _start(
        fleet, proxy, log, "--exit-when-idle", str(2 * visibility + 2),
        visibility_timeout_seconds=visibility, pollers="4" if fleet.profile == "long" else "1",
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 300) == 0, log.read_text()[-3000:]
    visible, hidden = await depth(fleet.sqs, fleet.source)
    assert visible + hidden == 0


async def test_kill_9_at_chosen_points(fleet: Fleet, tmp_path: Path) -> None:
    long = _long(fleet)
    cycles = 20 if long else 5
    visibility = 4 if long else 2
    events = make_events(3000 if long else 150, seed=20)
    rng = random.Random(20)
    log = tmp_path / "fanout.log"
    landed: list[str] = []
    async with FaultProxy(fleet.endpoint) as proxy:
        rate = len(events) / (cycles * (4.0 if long else 3.0))
        publisher = asyncio.create_task(publish(fleet.sqs, fleet.source, events, rate=rate))
        pollers = "4" if long else "1"
        for cycle in range(cycles):
            point = KILL_POINTS[cycle % len(KILL_POINTS)]
            held = asyncio.Event()
            where: list[str] = []

            def on_hold(
                req: SqsRequest, _held: asyncio.Event = held, _w: list[str] = where
            ) -> None:
                entries = len(req.body.get("Entries", []))
                target = (req.queue_url or "").rsplit("-", 1)[-1]
                _w.append(
                    f"{req.operation} {target} ({entries} entries)".replace(" (0 entries)", "")
                )
                _held.set()

            if point in HELD_OPERATION:
                proxy.add(
                    Delay(
                        HELD_OPERATION[point],
                        3.0,
                        after_upstream=point == "receive",
                        on_hold=on_hold,
                    )
                )
            proc = await _start(
                fleet, proxy, log, visibility_timeout_seconds=visibility, pollers=pollers
            )
            started = time.monotonic()
            if point == "anytime":
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                where.append(f"{time.monotonic() - started:.1f}s after start")
            else:
                try:
                    await asyncio.wait_for(held.wait(), 30)
                except TimeoutError:
                    where.append(f"no {HELD_OPERATION[point]} held within 30s")
                await asyncio.sleep(rng.uniform(0, 0.05))
            try:
                proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pytest.fail(f"fanout exited by itself: {log.read_text()[-3000:]}")
            assert await proc.wait() == -signal.SIGKILL
            proxy.clear()
            landed.append(f"cycle {cycle + 1}: {point}: {where[0] if where else '?'}")
        await publisher
        await _drain(fleet, proxy, log, visibility)

    result = await account(f"crash: {cycles} x kill -9 ({fleet.profile})", fleet, events)
    result.notes["kills landed"] = "\n  " + "\n  ".join(landed)
    result.check()
    held_points = [line for line in landed if "no " not in line and "anytime" not in line]
    assert len(held_points) >= cycles // 2  # most kills landed where they were aimed


async def test_sigterm_under_load_releases_everything(fleet: Fleet, tmp_path: Path) -> None:
    long = _long(fleet)
    events = make_events(2000 if long else 200, seed=21)
    shutdown = 8.0 if long else 5.0
    log = tmp_path / "fanout.log"
    async with FaultProxy(fleet.endpoint) as proxy:
        # Slow targets keep copies in flight when the signal arrives.
        proxy.add(Delay("SendMessageBatch", 0.4, times=None))
        await publish(fleet.sqs, fleet.source, events)
        proc = await _start(
            fleet,
            proxy,
            log,
            visibility_timeout_seconds=30,  # a message left invisible would stay so: visible
            shutdown_timeout_seconds=shutdown,
            pollers="4" if long else "2",
        )
        deadline = time.monotonic() + 60
        while proxy.calls["DeleteMessageBatch"] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        in_flight_at_signal = (await depth(fleet.sqs, fleet.source))[1]
        signalled = time.monotonic()
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pytest.fail(f"fanout exited by itself: {log.read_text()[-3000:]}")
        code = await asyncio.wait_for(proc.wait(), shutdown + 10)
        took = time.monotonic() - signalled
        visible, hidden = await depth(fleet.sqs, fleet.source)
        assert code == 0, log.read_text()[-3000:]
        assert in_flight_at_signal > 0  # it really was under load
        assert hidden == 0, f"{hidden} messages left invisible after exit"
        # Interpreter teardown on a loaded 2-core machine: allow 1.5 s beyond the bound.
        assert took <= shutdown + 1.5, f"exit took {took:.1f}s > {shutdown}s"
        proxy.clear()
        await _drain(fleet, proxy, log, visibility=2)

    result = await account(f"SIGTERM under load ({fleet.profile})", fleet, events)
    result.notes["stop"] = (
        f"{in_flight_at_signal} in flight at SIGTERM, exit 0 after {took:.2f}s "
        f"(bound {shutdown:g}s), {visible} visible / {hidden} invisible right after exit"
    )
    result.check()
