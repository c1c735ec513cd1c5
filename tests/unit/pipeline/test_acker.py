"""Visibility bookkeeping of the acker that needs no server: extension due times, stuck messages."""

from __future__ import annotations

import random

from fanout.aws.retry import Backoff
from fanout.observability.stats import Stats
from fanout.pipeline.acker import MAX_HOLD_TIMEOUTS, Acker
from fanout.pipeline.inflight import InFlight, Received


def acker(inflight: InFlight, stats: Stats) -> Acker:
    return Acker(
        None,  # type: ignore[arg-type]  # these paths make no SQS call
        "http://127.0.0.1/q",
        inflight=inflight,
        stats=stats,
        backoff=Backoff(),
        rng=random.Random(0),
        linger=0.01,
        visibility_timeout=30,
    )


def held(inflight: InFlight, handle: str, received_at: float, extend_at: float) -> Received:
    message = Received(handle, handle, "{}", received_at=received_at, extend_at=extend_at)
    inflight._reserved += 1  # as a poller's reservation would
    inflight.admit(message)
    return message


async def test_due_messages_are_extended_and_rescheduled() -> None:
    inflight, stats = InFlight(100), Stats()
    a = acker(inflight, stats)
    due = held(inflight, "due", received_at=0.0, extend_at=15.0)
    fresh = held(inflight, "fresh", received_at=10.0, extend_at=25.0)
    assert a.extend_due(now=20.0) == 1
    assert due.extend_at == 35.0  # next extension half a timeout later
    assert fresh.extend_at == 25.0
    await a._visibility.abort()  # nothing may reach the (absent) client


async def test_a_message_held_too_long_is_let_go_for_redelivery() -> None:
    inflight, stats = InFlight(100), Stats()
    a = acker(inflight, stats)
    held(inflight, "stuck", received_at=0.0, extend_at=0.0)
    ok = held(inflight, "ok", received_at=250.0, extend_at=1000.0)
    assert a.extend_due(now=30.0 * MAX_HOLD_TIMEOUTS + 1) == 0
    assert list(inflight) == [ok]
    assert stats.errors["held_too_long"] == 1
