"""A credential outage: every SendMessageBatch, to the targets and to the DLQ, answers
``400 ExpiredToken`` for a while (a web-identity or assumed-role credential that expired before
its refresh landed) while events keep arriving.

fanout's own credentials fail, not the targets: nothing may be dead-lettered for it, every copy
arrives after the window, and the refused calls stay bounded (one probe at a time, no per-entry
split). Some events are poisoned on one target so that DLQ writes fall in the window too: they
are held, not abandoned, and land once it is over.

``fast``: moto (``make test``); ``long``: LocalStack, the issue's 15 s window
(``make test-reliability``; ``LOCALSTACK_ENDPOINT``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from fanout.aws.urls import queue_name
from fanout.testing.accounting import (
    Fleet,
    account,
    make_events,
    publish,
    run_service,
    wait_settled,
)
from fanout.testing.faultproxy import During, FailEntries, FaultProxy, expired_token

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Profile:
    name: str
    events: int
    rate: float  # events/s published while fanout runs
    window: float  # seconds of ExpiredToken
    max_refused: int  # refused calls the window may cost
    timeout: float
    settings: dict[str, Any]


FAST = Profile(
    "fast",
    events=200,
    rate=40,
    window=4.0,
    # The calls out when the window opens (one per batch of each target and the DLQ), then
    # probes ~every 150 ms (full jitter up to FANOUT_RETRY_MAX_DELAY_MS=300).
    max_refused=120,
    timeout=90,
    settings={"pollers": 1, "credential_grace_seconds": 1.0},
)
LONG = Profile(
    "long",
    events=2000,
    rate=100,
    window=15.0,
    max_refused=300,  # the target (4,393 before)
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


@pytest.mark.parametrize("profile", PROFILES)
async def test_expired_credentials_are_held_not_dead_lettered(
    fleet: Fleet, profile: Profile
) -> None:
    events = make_events(profile.events, seed=41)
    poisoned = {e.event_id for e in events[::10]}

    def is_poisoned(entry: dict[str, Any]) -> bool:
        return str(orjson.loads(entry["MessageBody"])["id"]) in poisoned

    async with FaultProxy(fleet.endpoint) as proxy:
        # First in the chain: nothing reaches SQS while the window is open.
        window = proxy.add(During(expired_token(), start=0.5, duration=profile.window))
        # A poisoned event's copy to `all` fails for good: its DLQ record is written in the
        # window too (and must wait for it).
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
        publisher = asyncio.create_task(publish(fleet.sqs, fleet.source, events, rate=profile.rate))

        async def settled() -> None:
            await wait_settled(
                fleet.sqs, fleet.source, quiet=1.5, timeout=profile.timeout, ready=publisher.done
            )
            await publisher

        try:
            stats = await run_service(
                fleet,
                proxy,
                until=settled,
                started=window.restart,
                timeout=profile.timeout + 30,
                **{**profile.settings},
            )
        finally:
            publisher.cancel()

    result = await account(f"credential outage {profile.window:.0f} s", fleet, events)
    result.notes["refused calls in the window"] = window.hits
    result.notes["credential errors counted"] = dict(stats.credential_errors)
    result.notes["SQS calls"] = dict(stats.calls)
    result.notes["abandoned"] = stats.abandoned
    result.check()
    assert window.over and window.hits > 0
    assert window.hits <= profile.max_refused, f"{window.hits} refused calls: a call storm"
    assert stats.credential_errors["ExpiredToken"] == window.hits  # each one counted
    # Every copy arrived after the window; the DLQ holds the poisoned events only, for the
    # target that refused them, and no record blames a target for fanout's credentials.
    assert {r["event_id"] for r in result.dlq_records} == poisoned
    assert {r["error_code"] for r in result.dlq_records} == {"InvalidParameterValue"}
    assert result.fully_delivered == len(events) - len(poisoned)
    assert stats.abandoned == 0  # DLQ writes refused in the window were held, not abandoned
