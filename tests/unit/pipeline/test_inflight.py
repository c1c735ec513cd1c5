"""inflight.py: capacity in messages and in body bytes; a message larger than the budget."""

from __future__ import annotations

import asyncio
import random

from fanout.pipeline.inflight import InFlight, Received

KIB = 1024


def message(i: int, size: int) -> Received:
    return Received(f"m-{i}", f"rh-{i}", "x" * size)


async def not_yet(task: asyncio.Task[int]) -> None:
    await asyncio.sleep(0.02)
    assert not task.done()


def test_size_is_utf8_bytes_of_the_body() -> None:
    assert Received("m", "rh", "abc").size == 3
    assert Received("m", "rh", "é€😀").size == 2 + 3 + 4
    assert Received("m", "rh", "\udc80").size == 3  # a lone surrogate does not crash it


async def test_bytes_are_counted_from_admit_to_remove() -> None:
    inflight = InFlight(100, 100 * KIB, message_bytes=10 * KIB)
    assert await inflight.reserve(3) == 3
    messages = [message(i, 4 * KIB) for i in range(3)]
    for m in messages:
        inflight.admit(m)
    assert inflight.bytes == 12 * KIB and inflight.peak_bytes == 12 * KIB
    inflight.remove(messages[0])
    inflight.remove(messages[0])  # twice: counted once
    assert inflight.bytes == 8 * KIB and inflight.peak_bytes == 12 * KIB


async def test_reservations_hold_the_largest_possible_message() -> None:
    # 35 KiB budget, messages up to 10 KiB: a receive may ask for 3 at most.
    inflight = InFlight(100, 35 * KIB, message_bytes=10 * KIB)
    assert await inflight.reserve(10) == 3
    assert inflight.held
    small = [message(i, 1 * KIB) for i in range(3)]
    for m in small:
        inflight.admit(m)  # real size 1 KiB: 32 KiB free again
    assert not inflight.held
    assert await inflight.reserve(10) == 3
    inflight.unreserve(3)
    assert await inflight.reserve(1) == 1


async def test_pollers_wait_for_bytes_and_resume_when_settled() -> None:
    inflight = InFlight(100, 20 * KIB, message_bytes=10 * KIB)
    assert await inflight.reserve(10) == 2
    big = [message(i, 10 * KIB) for i in range(2)]
    for m in big:
        inflight.admit(m)
    waiting = asyncio.create_task(inflight.reserve(10))
    await not_yet(waiting)
    inflight.remove(big[0])
    assert await asyncio.wait_for(waiting, 1) == 1


async def test_a_message_larger_than_the_budget_is_admitted_alone() -> None:
    # Budget 4 KiB, the queue allows 10 KiB: never deadlock, one at a time.
    inflight = InFlight(100, 4 * KIB, message_bytes=10 * KIB)
    assert await inflight.reserve(10) == 1
    waiting = asyncio.create_task(inflight.reserve(10))
    await not_yet(waiting)  # the reservation alone is over budget
    huge = message(0, 9 * KIB)
    inflight.admit(huge)
    await not_yet(waiting)
    inflight.remove(huge)
    assert await asyncio.wait_for(waiting, 1) == 1


async def test_message_limit_still_applies() -> None:
    inflight = InFlight(10, 1024 * KIB, message_bytes=1 * KIB)
    assert await inflight.reserve(10) == 10
    waiting = asyncio.create_task(inflight.reserve(10))
    await not_yet(waiting)
    inflight.unreserve(4)
    await not_yet(waiting)  # 4 would fit, but the other 6 will free room for a whole receive
    inflight.unreserve(6)
    assert await asyncio.wait_for(waiting, 1) == 10


async def test_receives_wait_for_room_for_a_whole_batch() -> None:
    """1 MiB messages, 32 MiB budget: three whole receives are reserved; a fourth poller
    waits instead of asking for the 2 that fit (a call for 2 messages instead of 10)."""
    inflight = InFlight(1000, 32 * 1024 * KIB, message_bytes=1024 * KIB)
    for _ in range(3):
        assert await inflight.reserve(10) == 10
    fourth = asyncio.create_task(inflight.reserve(10))
    await not_yet(fourth)
    for i in range(10):  # one receive returns 10 small messages: their reservations shrink
        inflight.admit(message(i, 1 * KIB))
    inflight.unreserve(0)  # as the poller does after every receive
    assert not inflight.held
    assert await asyncio.wait_for(fourth, 1) == 10
    # Only messages hold the room (no receive out): take what fits, do not wait for them.
    held = InFlight(15)
    assert await held.reserve(10) == 10
    for i in range(6):
        held.admit(message(i, 1))
    held.unreserve(4)
    assert await asyncio.wait_for(held.reserve(10), 1) == 9
    # Limits too small for a whole receive still grant part of one.
    assert await InFlight(4, None).reserve(10) == 4
    assert await InFlight(100, 35 * KIB, message_bytes=10 * KIB).reserve(10) == 3


async def test_random_schedule_never_exceeds_the_budget() -> None:
    rng = random.Random(13)
    budget, largest = 50 * KIB, 8 * KIB
    inflight = InFlight(40, budget, message_bytes=largest)
    held: list[Received] = []
    n = 0
    for _ in range(2000):
        if held and (rng.random() < 0.5 or inflight.held):
            inflight.remove(held.pop(rng.randrange(len(held))))
            continue
        try:
            granted = await asyncio.wait_for(inflight.reserve(rng.randint(1, 10)), 0.01)
        except TimeoutError:
            assert held  # only messages in flight may hold a receive back: no deadlock
            inflight.remove(held.pop(rng.randrange(len(held))))
            continue
        arrived = rng.randint(0, granted)
        for _ in range(arrived):
            n += 1
            m = message(n, rng.randint(0, largest))
            inflight.admit(m)
            held.append(m)
            assert inflight.bytes <= budget
        inflight.unreserve(granted - arrived)
    assert inflight.peak_bytes <= budget
    assert inflight.peak_bytes > budget // 2  # the budget was actually reached for


async def test_without_a_byte_budget_only_messages_count() -> None:
    inflight = InFlight(20)
    assert await inflight.reserve(10) == 10
    for i in range(10):
        inflight.admit(message(i, 100 * KIB))
    assert await inflight.reserve(10) == 10
