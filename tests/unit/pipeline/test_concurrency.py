"""Adaptive concurrency without a server: AimdLimit, the Pollers' decisions, the Batcher taking
a batch only when a slot is free (batch fill under a throttle), InFlight's adaptive limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from fanout.observability.stats import Stats
from fanout.pipeline.batching import MAX_SEND_BYTES_IN_FLIGHT, Batcher, BatchLimits
from fanout.pipeline.concurrency import DECREASE, AimdLimit
from fanout.pipeline.inflight import MIN_RESERVE_BYTES, InFlight, Received
from fanout.pipeline.poller import Poller, Pollers

KIB = 1024


# --- AimdLimit -------------------------------------------------------------------------------


def test_grows_by_one_per_success_while_half_is_in_use() -> None:
    limit = AimdLimit(8, ceiling=64)
    for _ in range(4):
        limit.acquire()
    limit.record(throttled=False)
    assert limit.limit == 9  # 4 in use >= 8 / 2
    limit.release()
    limit.release()  # 2 in use < 9 / 2: no evidence more is needed
    limit.record(throttled=False)
    assert limit.limit == 9


def test_idle_queue_does_not_grow() -> None:
    limit = AimdLimit(8, ceiling=64)
    for _ in range(100):
        limit.record(throttled=False)
    assert limit.limit == 8


def test_throttle_multiplies_down_to_the_floor_and_recovers_to_the_ceiling() -> None:
    stats = Stats()
    limit = AimdLimit(20, ceiling=24, name="voice", stats=stats)
    limit.record(throttled=True)
    assert limit.limit == int(20 * DECREASE) == 18
    for _ in range(100):
        limit.record(throttled=True)
    assert (limit.limit == 1 and not limit.free) or limit.in_use == 0
    assert stats.concurrency["voice"] == 1
    limit.acquire()
    for _ in range(100):  # one call in flight, each success adds one while half is in use
        limit.record(throttled=False)
        if 2 * limit.in_use < limit.limit:
            limit.acquire()
    assert limit.limit == 24  # the ceiling (the connection pool)
    assert stats.concurrency["voice"] == 24 and stats.peak_concurrency["voice"] == 24


def test_free_counts_calls_in_flight_and_fixed_never_moves() -> None:
    limit = AimdLimit.fixed(2)
    limit.acquire()
    assert limit.free
    limit.acquire()
    assert not limit.free
    limit.record(throttled=True)
    limit.record(throttled=False)
    assert limit.limit == 2


def test_one_limit_per_queue_is_independent() -> None:
    stats = Stats()
    throttled = AimdLimit(8, ceiling=64, name="voice", stats=stats)
    other = AimdLimit(8, ceiling=64, name="agents", stats=stats)
    for _ in range(10):
        throttled.record(throttled=True)
    assert stats.concurrency == {"voice": 2, "agents": 8}
    assert other.limit == 8


# --- Pollers' decisions ------------------------------------------------------------------------


def pollers(floor: int = 4, ceiling: int = 32) -> Pollers:
    def make() -> Poller:
        raise AssertionError("not started in these tests")

    return Pollers(make, InFlight(1000), Stats(), floor=floor, ceiling=ceiling)


@pytest.mark.parametrize(
    ("count", "asked", "got", "room", "step"),
    [
        (4, 10, 10, True, 1),  # full receive, room left: one more poller
        (32, 10, 10, True, 0),  # at the ceiling
        (4, 10, 10, False, 0),  # full, but the in-flight limits hold the pollers
        (4, 6, 6, True, 0),  # asked for what fit and got it: not a sign of a backlog
        (8, 10, 3, True, -1),  # partial receive: the queue keeps up, this poller retires
        (8, 10, 0, True, -1),  # empty receive
        (4, 10, 0, True, 0),  # ... but never below the floor
    ],
)
def test_pollers_decide(count: int, asked: int, got: int, room: bool, step: int) -> None:
    assert pollers().decide(count, asked, got, room=room) == step


def test_ceiling_is_at_least_the_floor() -> None:
    assert pollers(floor=8, ceiling=2).ceiling == 8


# --- Batcher: a batch is taken only when a slot is free ---------------------------------------


class ThrottledSend:
    """A send that holds its slot while ``throttled`` (as call_batch's retries do), recording
    each batch and the most sends at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.batches: list[list[int]] = []
        self.active = 0
        self.most_active = 0

    async def __call__(self, batch: list[int]) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await self.open.wait()
            self.batches.append(batch)
        finally:
            self.active -= 1


async def test_batches_fill_and_tasks_stay_bounded_while_every_slot_is_busy() -> None:
    """The long-throttle shape: entries trickle in (one per linger) while both slots are held.
    Before, each linger sealed a batch of one and started a task for it; now they wait in the
    buffer, batches fill to 10 and the tasks never exceed the limit."""
    send = ThrottledSend()
    batcher: Batcher[int] = Batcher(
        "voice", send, lambda b, e: None, size_of=lambda _: 1, linger=0.001, concurrency=2
    )
    for i in range(2):  # two lone entries take both slots and stay (throttled)
        batcher.add(i)
        await asyncio.sleep(0.003)
    for i in range(2, 52):
        batcher.add(i)
        await asyncio.sleep(0.002)  # past the linger each time
        assert len(batcher._tasks) <= 2
    assert send.active == 2
    send.open.set()
    await asyncio.wait_for(batcher.drain(), 5)
    sizes = [len(b) for b in send.batches]
    assert sorted(x for b in send.batches for x in b) == list(range(52))
    assert sizes[:2] == [1, 1]
    assert sizes[2:] == [10] * 5  # the 50 that waited: full batches
    assert send.most_active == 2


async def test_a_limit_that_drops_stops_new_batches_until_calls_end() -> None:
    send = ThrottledSend()
    limit = AimdLimit(4, ceiling=8)
    batcher: Batcher[int] = Batcher(
        "t",
        send,
        lambda b, e: None,
        size_of=lambda _: 1,
        linger=60,
        concurrency=limit,
        limits=BatchLimits(max_entries=1),
    )
    for i in range(4):
        batcher.add(i)
    assert send.active == 0 and len(batcher._tasks) == 4
    await asyncio.sleep(0)
    for _ in range(20):
        limit.record(throttled=True)
    assert limit.limit == 1
    batcher.add(99)  # waits: 4 in flight > 1
    assert len(batcher._tasks) == 4
    send.open.set()
    await asyncio.wait_for(batcher.drain(), 5)
    assert sorted(x for b in send.batches for x in b) == [0, 1, 2, 3, 99]


# --- InFlight: reservations by the recent largest message; Little's law ----------------------


async def test_reservation_follows_the_recent_largest_message() -> None:
    inflight = InFlight(1000, 1024 * KIB * 1024, message_bytes=1024 * KIB, adaptive=True)
    assert inflight.slot_bytes == 1024 * KIB  # nothing seen yet: the most one can be
    granted = await inflight.reserve(10)
    inflight.admit(Received("m", "rh", "x" * 3000))
    inflight.unreserve(granted - 1)
    assert inflight.slot_bytes == MIN_RESERVE_BYTES  # 2 x 3 KB < 16 KiB
    granted = await inflight.reserve(10)
    inflight.admit(Received("m2", "rh2", "x" * 100 * KIB))
    inflight.unreserve(granted - 1)
    assert 190 * KIB < inflight.slot_bytes <= 200 * KIB  # 2 x the largest, decaying


async def test_small_messages_no_longer_limit_receives_to_the_max_message_size() -> None:
    """128 MiB with 1 MiB MaximumMessageSize: 12 whole receives before; with ~1 KB events,
    every poller up to the ceiling can have one out."""
    inflight = InFlight(1000, 128 * 1024 * KIB, message_bytes=1024 * KIB, adaptive=True)
    granted = await inflight.reserve(10)
    for i in range(granted):
        inflight.admit(Received(f"m{i}", f"rh{i}", "x" * 1000))
    inflight.unreserve(0)
    for _ in range(32):
        assert await asyncio.wait_for(inflight.reserve(10), 0.1) == 10


async def test_message_limit_follows_littles_law_within_the_byte_ceiling() -> None:
    inflight = InFlight(10, 16 * 1024 * KIB, message_bytes=1024 * KIB, adaptive=True)
    assert inflight.ceiling == 16 * 1024 * KIB // MIN_RESERVE_BYTES == 1024
    # A 0.5 s window: 199 messages settled after 0.25 s each, the 200th settles now.
    now = time.monotonic()
    inflight._window_start = now - 0.5
    inflight._settled, inflight._time_in_flight = 199, 199 * 0.25
    last = Received("m", "rh", "x")
    inflight._reserved += 1
    inflight.admit(last)
    last.received_at = now - 0.25
    inflight.remove(last)
    # rate ~400/s x 0.25 s = ~100 needed: twice that allowed.
    assert 180 <= inflight.max_in_flight <= 200
    inflight._window_start = time.monotonic() - 1.0
    inflight._settled, inflight._time_in_flight = 1, 0.001
    inflight._follow_littles_law(time.monotonic())
    assert inflight.max_in_flight == 10  # little needed: back to FANOUT_MAX_IN_FLIGHT
    inflight._window_start = time.monotonic() - 0.5
    inflight._settled, inflight._time_in_flight = 10_000, 10_000 * 1.0
    inflight._follow_littles_law(time.monotonic())
    assert inflight.max_in_flight == 1024  # never past the byte budget's ceiling


def test_not_adaptive_keeps_the_fixed_limits() -> None:
    inflight = InFlight(1000, 128 * 1024 * KIB, message_bytes=1024 * KIB)
    assert inflight.ceiling == 1000 and inflight.slot_bytes == 1024 * KIB


async def test_big_batches_are_bounded_by_bytes_in_flight_not_only_by_the_limit() -> None:
    """1 MiB entries: whatever the limit has grown to, at most 8 MiB of batches are being
    sent at once (each call holds its encoded request); small entries are not held back."""
    send = ThrottledSend()
    big: Batcher[int] = Batcher(
        "big",
        send,
        lambda b, e: None,
        size_of=lambda _: MAX_SEND_BYTES_IN_FLIGHT // 8,
        linger=0,
        concurrency=AimdLimit(64, ceiling=64),
        limits=BatchLimits(max_entries=1),
    )
    for i in range(20):
        big.add(i)
    await asyncio.sleep(0)
    assert len(big._tasks) == 8
    small: Batcher[int] = Batcher(
        "small",
        send,
        lambda b, e: None,
        size_of=lambda _: 1000,
        linger=0,
        concurrency=AimdLimit(64, ceiling=64),
        limits=BatchLimits(max_entries=1),
    )
    for i in range(40):
        small.add(i)
    assert len(small._tasks) == 40
    send.open.set()
    await asyncio.wait_for(asyncio.gather(big.drain(), small.drain()), 5)
    assert len(send.batches) == 60


async def test_pollers_are_not_added_past_a_quarter_of_the_budget_in_whole_receives() -> None:
    """Big messages: a receive parses up to 10 of them at once, so pollers stay few; small ones
    are not held back. 32 MiB budget: a quarter is 8 MiB."""

    async def pool_after(body_bytes: int) -> Pollers:
        inflight = InFlight(1000, 32 * 1024 * KIB, message_bytes=1024 * KIB, adaptive=True)
        granted = await inflight.reserve(10)
        inflight.admit(Received("m", "rh", "x" * body_bytes))
        inflight.unreserve(granted - 1)
        pool = pollers()
        pool._inflight = inflight
        return pool

    assert not (await pool_after(900 * KIB))._room_for_another()  # 10 x 1 MiB slots > 8 MiB
    assert (await pool_after(1000))._room_for_another()  # 10 x 16 KiB slots
