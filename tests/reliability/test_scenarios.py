"""Fault scenarios with full accounting: no event lost, duplicates counted, none in FIFO.

Each scenario runs twice: ``fast`` (moto behind the fault proxy, a few hundred events, short
windows; part of ``make test``) and ``long`` (LocalStack, thousands of events, the real 30 s /
20 s windows; ``make test-reliability``). Accounting is printed (``-s`` shows it).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from fanout.aws.urls import queue_name
from fanout.testing.accounting import (
    Fleet,
    accepted_sends,
    account,
    client,
    make_events,
    make_fleet,
    publish,
    run_service,
    wait_settled,
)
from fanout.testing.faultproxy import (
    During,
    ErrorResponse,
    FailEntries,
    FaultProxy,
    RandomFaults,
    Reset,
    Tap,
    sqs_faults,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Profile:
    name: str
    events: int
    rate: float  # events/s published while fanout runs
    throttle: float  # seconds a target throttles
    down: float  # seconds the endpoint is down
    spike: float | None  # latency spike beyond the client read timeout (11 s at 1 s polls)
    timeout: float
    settings: dict[str, Any]


FAST = Profile(
    "fast",
    events=120,
    rate=100,
    throttle=2.0,
    down=2.0,
    spike=None,  # 11+ s each: covered by test_faultproxy and the long runs
    timeout=60,
    settings={"pollers": 1},  # moto's receive has no lock: one poller keeps duplicates real
)
LONG = Profile(
    "long",
    events=3000,
    rate=100,
    throttle=30.0,
    down=20.0,
    spike=12.0,
    timeout=300,
    settings={
        "pollers": 4,
        "visibility_timeout_seconds": 10,
        "retry_base_delay_ms": 100,
        "retry_max_delay_ms": 5000,
        "shutdown_timeout_seconds": 20,
    },
)
PROFILES = [
    pytest.param(FAST, id="fast"),
    pytest.param(LONG, id="long", marks=[pytest.mark.reliability, pytest.mark.timeout(900)]),
]


@pytest.fixture
async def proxy(fleet: Fleet) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(fleet.endpoint) as p:
        yield p


async def _run(
    fleet: Fleet,
    proxy: FaultProxy,
    profile: Profile,
    events: list[Any],
    started: Callable[[], None] | None = None,
    **extra: Any,
) -> Any:
    """Publish at the profile's rate while fanout runs; stop once the source stayed empty."""
    publisher = asyncio.create_task(publish(fleet.sqs, fleet.source, events, rate=profile.rate))

    async def settled() -> None:
        await wait_settled(
            fleet.sqs, fleet.source, quiet=1.5, timeout=profile.timeout, ready=publisher.done
        )
        await publisher

    try:
        return await run_service(
            fleet,
            proxy,
            until=settled,
            started=started,
            timeout=profile.timeout + 30,
            **{**profile.settings, **extra},
        )
    finally:
        publisher.cancel()


@pytest.mark.parametrize("profile", PROFILES)
async def test_random_faults(fleet: Fleet, proxy: FaultProxy, profile: Profile) -> None:
    """10 % of all SQS calls faulted at random, with every fault kind of the proxy."""
    events = make_events(profile.events, seed=10)
    schedule = proxy.add(RandomFaults(sqs_faults(spike_seconds=profile.spike), 0.1, seed=42))

    stats = await _run(fleet, proxy, profile, events)
    proxy.clear()

    result = await account(f"random 10% faults ({profile.name})", fleet, events)
    result.notes["faults injected"] = dict(schedule.injected)
    result.notes["calls seen by the schedule"] = schedule.seen
    result.notes["fanout retries"] = dict(stats.retries)
    result.check()
    assert schedule.hits >= 0.05 * schedule.seen  # the schedule really faulted ~10 %
    assert len(schedule.injected) >= (8 if profile is LONG else 4)  # with many kinds of fault
    # Entries rejected for good (SenderFault true) are the only way into the DLQ here.
    assert set(result.dlq_reasons) <= {
        "target_rejected:InvalidParameterValue",
        "targets_rejected:InvalidParameterValue",
    } | {r for r in result.dlq_reasons if "gave up" in r}


@pytest.mark.parametrize("profile", PROFILES)
async def test_target_throttles(fleet: Fleet, proxy: FaultProxy, profile: Profile) -> None:
    """One target answers RequestThrottled (HTTP 403) to every send for ``profile.throttle``
    s (60 s in the long run): waited out within FANOUT_RETRY_MAX_SECONDS (default 300 s),
    every copy delivered, no DLQ record."""
    events = make_events(profile.events, seed=11)
    seconds = 60.0 if profile is LONG else profile.throttle
    window = proxy.add(
        During(
            ErrorResponse(
                "SendMessageBatch",
                403,
                "RequestThrottled",
                True,
                times=None,
                queue=queue_name(fleet.targets["voice"]),
            ),
            start=1.0,
            duration=seconds,
        )
    )

    stats = await _run(fleet, proxy, profile, events)

    result = await account(f"target throttled {seconds:g}s ({profile.name})", fleet, events)
    result.notes["throttled calls"] = window.hits
    result.notes["fanout retries"] = dict(stats.retries)
    result.check()
    assert window.hits > 0 and stats.retries["RequestThrottled"] > 0
    # Other targets were not held up by the throttled one.
    assert result.delivered["all"] == profile.events
    # The throttle was waited out: nothing dead-lettered.
    assert result.dlq_records == []
    assert result.fully_delivered == profile.events


@pytest.mark.parametrize("profile", PROFILES)
async def test_target_deleted_mid_run(fleet: Fleet, proxy: FaultProxy, profile: Profile) -> None:
    """A target queue is deleted while traffic flows: its copies go to the DLQ with the reason
    (non-retryable), the other targets keep getting theirs."""
    events = make_events(profile.events, seed=12)
    accepted: Counter[str] = Counter()
    doomed = fleet.targets["agents"]
    proxy.add(Tap("SendMessageBatch", on_reply=accepted_sends(accepted), queue=queue_name(doomed)))

    async def delete_later() -> None:
        await asyncio.sleep(profile.events / profile.rate / 3)
        await fleet.sqs.delete_queue(QueueUrl=doomed)

    deleter = asyncio.create_task(delete_later())
    await _run(fleet, proxy, profile, events)
    await deleter

    result = await account(
        f"target deleted mid-run ({profile.name})", fleet, events, unreadable={"agents": accepted}
    )
    result.check()
    assert 0 < result.delivered["agents"] < result.delivered["all"]
    reasons = {r["error_code"] for r in result.dlq_records}
    assert reasons == {"AWS.SimpleQueueService.NonExistentQueue"}, reasons
    assert all(r["failed_targets"] == ["agents"] for r in result.dlq_records)


@pytest.mark.parametrize("profile", PROFILES)
async def test_dlq_failing(fleet: Fleet, proxy: FaultProxy, profile: Profile) -> None:
    """Some events must go to the DLQ, and the DLQ itself fails for a while: their source
    messages are not deleted, come back, and reach the DLQ once it works again."""
    events = make_events(profile.events, seed=13)
    poisoned = {e.event_id for e in events[::10]}

    def is_poisoned(entry: dict[str, Any]) -> bool:
        return str(orjson.loads(entry["MessageBody"])["id"]) in poisoned

    proxy.add(
        FailEntries(
            "SendMessageBatch",
            "InvalidParameterValue",
            True,
            is_poisoned,
            times=None,
            queue=queue_name(fleet.targets["all"]),
        )
    )
    window = proxy.add(
        During(
            ErrorResponse(
                "SendMessageBatch", 500, "InternalError", times=None, queue=queue_name(fleet.dlq)
            ),
            start=0.0,
            duration=max(profile.throttle, 8.0),  # outlasts the retries, even on a slow start
        )
    )

    stats = await _run(fleet, proxy, profile, events)

    result = await account(f"DLQ failing ({profile.name})", fleet, events)
    counts = Counter(r["approximate_receive_count"] for r in result.dlq_records)
    result.notes["DLQ write failures"] = window.hits
    result.notes["source messages left to come back (abandoned)"] = stats.abandoned
    result.notes["DLQ records by receive count"] = dict(sorted(counts.items()))
    result.check()
    assert window.hits > 0 and stats.abandoned > 0
    assert {r["event_id"] for r in result.dlq_records} == poisoned
    # Those whose DLQ write failed were received again: they came back instead of being deleted.
    assert max(counts) >= 2


@pytest.mark.parametrize("profile", PROFILES)
async def test_endpoint_down(fleet: Fleet, proxy: FaultProxy, profile: Profile) -> None:
    """Every connection to SQS is dropped for ``profile.down`` s, then the endpoint is back."""
    events = make_events(profile.events, seed=14)
    outage = During(Reset(None, mid_response=False, times=None), start=1.0, duration=profile.down)

    def open_window() -> None:
        outage.restart()
        proxy.add(outage)

    # The window opens once fanout is running: an outage during the start-up check is a start
    # failure (exit 2 after the retries), not what this scenario is about.
    stats = await _run(fleet, proxy, profile, events, started=open_window)

    result = await account(f"endpoint down {profile.down:g}s ({profile.name})", fleet, events)
    result.notes["dropped connections"] = outage.hits
    result.notes["fanout errors"] = dict(stats.errors)
    result.check()
    assert outage.hits > 0 and outage.over
    assert any(key.startswith("receive:") for key in stats.errors)


async def test_start_retries_transient_errors(moto_endpoint: str, tmp_path: Path) -> None:
    """A throttled or failing GetQueueAttributes at start is retried, not reported as a bad
    configuration (exit 2): found by the random-fault scenario."""
    from fanout.aws.checks import check_queues
    from fanout.aws.client import create_client

    async with client(moto_endpoint) as sqs:
        fleet = await make_fleet(sqs, moto_endpoint, tmp_path, "start")
        try:
            async with FaultProxy(moto_endpoint) as proxy:
                proxy.add(ErrorResponse("GetQueueAttributes", 403, "RequestThrottled", True))
                proxy.add(ErrorResponse("GetQueueAttributes", 503, "ServiceUnavailable"))
                proxy.add(Reset("GetQueueAttributes", mid_response=False))
                settings = fleet.settings(proxy.url)
                async with create_client(settings) as fanout_sqs:
                    limits = await check_queues(fanout_sqs, settings, fleet.rules)
                assert set(limits) == set(fleet.all_queues)
                assert proxy.calls["GetQueueAttributes"] == len(fleet.all_queues) + 3
        finally:
            await fleet.delete()
