"""batching.py: packing under the SQS limits, message sizes and the async micro-batcher."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.aws.limits import MAX_MESSAGE_BYTES
from fanout.pipeline.batching import (
    BatchBuffer,
    Batcher,
    BatchLimits,
    GroupBatcher,
    TooLarge,
    message_size,
    pack,
)

HALF = MAX_MESSAGE_BYTES // 2


def sizes_of(batches: list[list[int]], sizes: list[int]) -> list[int]:
    return [sum(sizes[i] for i in batch) for batch in batches]


@pytest.mark.parametrize(
    ("sizes", "batch_lengths"),
    [
        pytest.param([1] * 10, [10], id="10-entries"),
        pytest.param([1] * 11, [10, 1], id="11-entries"),
        pytest.param([1] * 21, [10, 10, 1], id="21-entries"),
        pytest.param([HALF, HALF], [2], id="exactly-1MiB"),
        pytest.param([HALF, HALF + 1], [1, 1], id="1MiB-plus-1"),
        pytest.param([MAX_MESSAGE_BYTES], [1], id="one-entry-of-1MiB"),
        pytest.param([MAX_MESSAGE_BYTES - 9, *[1] * 9, 1], [10, 1], id="bytes-and-count-at-once"),
        pytest.param([HALF, HALF + 1, 1, 1], [1, 3], id="overflow-starts-a-new-batch"),
        pytest.param([], [], id="empty"),
    ],
)
def test_pack(sizes: list[int], batch_lengths: list[int]) -> None:
    batches = pack(list(enumerate(sizes)))
    assert [len(b) for b in batches] == batch_lengths
    assert [i for b in batches for i in b] == list(range(len(sizes)))  # order kept
    assert all(total <= MAX_MESSAGE_BYTES for total in sizes_of(batches, sizes))


def test_entry_larger_than_a_batch_raises() -> None:
    with pytest.raises(TooLarge, match=f"{MAX_MESSAGE_BYTES + 1} bytes > {MAX_MESSAGE_BYTES}"):
        pack([("small", 10), ("huge", MAX_MESSAGE_BYTES + 1)])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=100), max_size=60),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=100, max_value=400),
)
def test_pack_is_greedy_and_within_limits(sizes: list[int], entries: int, max_bytes: int) -> None:
    limits = BatchLimits(max_entries=entries, max_bytes=max_bytes)
    batches = pack(list(enumerate(sizes)), limits)
    assert [i for b in batches for i in b] == list(range(len(sizes)))
    totals = sizes_of(batches, sizes)
    assert all(0 < len(b) <= entries for b in batches)
    assert all(total <= max_bytes for total in totals)
    for batch, total, following in zip(batches, totals, batches[1:], strict=False):
        # A batch is only closed when it is full or the next entry would not fit.
        assert len(batch) == entries or total + sizes[following[0]] > max_bytes


def test_batch_buffer_add_returns_ready_batches() -> None:
    buffer: BatchBuffer[str] = BatchBuffer(BatchLimits(max_entries=3, max_bytes=100))
    assert list(buffer.add("a", 40)) == []
    assert list(buffer.add("b", 40)) == []
    assert len(buffer) == 2
    assert list(buffer.add("c", 30)) == [["a", "b"]]  # would exceed 100: flush first, keep "c"
    assert len(buffer) == 1
    assert list(buffer.add("d", 0)) == []
    assert list(buffer.add("e", 70)) == [["c", "d", "e"]]  # third entry: full at exactly 100 bytes
    assert len(buffer) == 0
    # The byte count restarted with the flush: 100 more bytes fit before the next one.
    assert list(buffer.add("x", 60)) == []
    assert list(buffer.add("y", 40)) == []
    assert buffer.take() == ["x", "y"]
    with pytest.raises(TooLarge):
        buffer.add("f", 101)
    assert len(buffer) == 0  # the rejected entry was not buffered
    assert list(buffer.add("g", 100)) == []
    assert buffer.take() == ["g"]
    assert buffer.take() == []


@pytest.mark.parametrize(
    ("body", "attributes", "size"),
    [
        pytest.param("abc", None, 3, id="ascii"),
        # é is 2 bytes, € 3, 😀 4: UTF-8 bytes, not characters.
        pytest.param("é€😀", None, 9, id="non-ascii-body"),
        pytest.param("", {"ab": {"DataType": "String", "StringValue": "é"}}, 2 + 6 + 2, id="str"),
        pytest.param("", {"n": {"DataType": "Number", "StringValue": "42"}}, 1 + 6 + 2, id="num"),
        pytest.param(
            "x",
            {"bïn": {"DataType": "Binary", "BinaryValue": b"\x00\x01\x02"}},
            1 + 4 + 6 + 3,
            id="binary",
        ),
        pytest.param(
            "x",
            {
                "k": {
                    "DataType": "String",
                    "StringValue": "v",
                    "StringListValues": ["ignored"],
                    "BinaryListValues": [],
                }
            },
            1 + 1 + 6 + 1,
            id="receive-shape",
        ),
        pytest.param(
            "{}",
            {
                "a": {"DataType": "String", "StringValue": "1"},
                "bb": {"DataType": "String.custom", "StringValue": "22"},
            },
            2 + (1 + 6 + 1) + (2 + 13 + 2),
            id="several",
        ),
    ],
)
def test_message_size(body: str, attributes: dict[str, Any] | None, size: int) -> None:
    assert message_size(body, attributes) == size


# --- the async Batcher -------------------------------------------------------------------------


class FakeSend:
    """Records batches; each send waits on ``gate``; counts concurrent sends."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.failed: list[tuple[list[int], BaseException]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent = asyncio.Event()
        self.active = 0
        self.most_active = 0
        self.fail_with = fail_with

    async def __call__(self, batch: list[int]) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
            self.batches.append(batch)
            self.sent.set()
        finally:
            self.active -= 1

    def fail(self, batch: list[int], exc: BaseException) -> None:
        self.failed.append((batch, exc))

    def batcher(self, *, linger: float, concurrency: int = 8, entries: int = 10) -> Batcher[int]:
        return Batcher(
            "t",
            self,
            self.fail,
            size_of=lambda _: 1,
            linger=linger,
            concurrency=concurrency,
            limits=BatchLimits(max_entries=entries),
        )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_full_batch_is_sent_without_waiting_for_linger() -> None:
    send = FakeSend()
    batcher = send.batcher(linger=60)
    for i in range(11):
        batcher.add(i)
    await asyncio.wait_for(send.sent.wait(), 1)
    assert send.batches == [list(range(10))]
    assert batcher.busy  # the 11th entry waits for its linger
    await batcher.drain()
    assert send.batches == [list(range(10)), [10]]
    assert not batcher.busy


async def test_partial_batch_is_sent_after_linger() -> None:
    send = FakeSend()
    batcher = send.batcher(linger=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(3):
        batcher.add(i)
    await settle()
    assert send.batches == []  # not before the linger time
    await asyncio.wait_for(send.sent.wait(), 1)
    assert loop.time() - start >= 0.04
    assert send.batches == [[0, 1, 2]]


async def test_drain_waits_for_sends_in_progress() -> None:
    send = FakeSend()
    send.gate.clear()
    batcher = send.batcher(linger=60)
    for i in range(4):
        batcher.add(i)
    drain = asyncio.create_task(batcher.drain())
    await settle()
    assert send.active == 1  # drain flushed without the linger ...
    assert not drain.done()  # ... and waits for the send
    send.gate.set()
    await asyncio.wait_for(drain, 1)
    assert send.batches == [[0, 1, 2, 3]]
    assert not batcher.busy


async def test_send_raising_fails_the_batch() -> None:
    boom = RuntimeError("send bug")
    send = FakeSend(fail_with=boom)
    batcher = send.batcher(linger=60, entries=2)
    for i in range(3):
        batcher.add(i)
    await batcher.drain()
    assert sorted(send.failed, key=lambda f: f[0]) == [([0, 1], boom), ([2], boom)]
    assert send.batches == []


async def test_concurrency_limit() -> None:
    send = FakeSend()
    send.gate.clear()
    batcher = send.batcher(linger=60, concurrency=2, entries=1)
    for i in range(5):
        batcher.add(i)  # five one-entry batches launched at once
    await settle()
    assert send.active == 2
    send.gate.set()
    await asyncio.wait_for(batcher.drain(), 1)
    assert send.most_active == 2
    assert sorted(b[0] for b in send.batches) == [0, 1, 2, 3, 4]


# --- GroupBatcher: per-group sequencing for FIFO queues -----------------------------------------


class GroupSend:
    """Sends of (group, n) entries; settles each entry when told, records what was in flight."""

    def __init__(self) -> None:
        self.batcher: GroupBatcher[tuple[str, int]] | None = None
        self.batches: list[list[tuple[str, int]]] = []
        self.in_flight: set[tuple[str, int]] = set()
        self.accepted: list[tuple[str, int]] = []
        self.gates: dict[tuple[str, int], asyncio.Event] = {}
        self.auto = False  # settle every entry as soon as it is sent

    async def __call__(self, batch: list[tuple[str, int]]) -> None:
        assert self.batcher is not None
        groups = [g for g, _ in batch]
        assert len(groups) == len(set(groups)), f"two entries of one group in {batch}"
        assert not {g for g, _ in self.in_flight} & set(groups), "a group sent twice at once"
        self.batches.append(batch)
        self.in_flight.update(batch)
        # Like call_batch: accepted entries settle at once, a failing one later (its retries).
        await asyncio.gather(*(self._settle(item) for item in batch))

    async def _settle(self, item: tuple[str, int]) -> None:
        assert self.batcher is not None
        if not self.auto:
            await self.gates.setdefault(item, asyncio.Event()).wait()
        else:
            await asyncio.sleep(0)
        self.in_flight.discard(item)
        self.accepted.append(item)
        self.batcher.settled(item)

    def release(self, item: tuple[str, int]) -> None:
        self.gates.setdefault(item, asyncio.Event()).set()

    def make(self, *, linger: float = 60, concurrency: int = 8) -> GroupBatcher[tuple[str, int]]:
        self.batcher = GroupBatcher(
            "fifo",
            self,
            lambda batch, exc: None,
            size_of=lambda _: 1,
            group_of=lambda item: item[0],
            linger=linger,
            concurrency=concurrency,
        )
        return self.batcher


async def test_group_batcher_sends_one_entry_per_group_and_holds_the_rest() -> None:
    send = GroupSend()
    batcher = send.make()
    for item in [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]:
        batcher.add(item)
    batcher.flush_now()
    await settle()
    assert send.batches == [[("a", 1), ("b", 1)]]
    assert batcher.pending == 5
    # b's head is accepted: b moves on while a's head is still out (a retrying entry holds a).
    send.release(("b", 1))
    await settle()
    assert send.batches[1:] == [[("b", 2)]]
    send.release(("a", 1))
    await settle()
    assert send.batches[2:] == [[("a", 2)]]
    for item in [("a", 2), ("b", 2), ("a", 3)]:
        send.release(item)
    await asyncio.wait_for(batcher.drain(), 1)
    assert [n for g, n in send.accepted if g == "a"] == [1, 2, 3]
    assert [n for g, n in send.accepted if g == "b"] == [1, 2]
    assert not batcher.busy


async def test_group_batcher_one_slow_group_does_not_hold_the_others() -> None:
    send = GroupSend()
    batcher = send.make(concurrency=4)
    batcher.add(("slow", 1))
    batcher.add(("slow", 2))
    batcher.flush_now()
    await settle()
    for n in range(30):
        batcher.add((f"g{n % 3}", n))
        send.release((f"g{n % 3}", n))
    await asyncio.sleep(0.05)
    batcher.flush_now()
    await settle()
    for _ in range(40):
        batcher.flush_now()
        await settle()
    fast = [item for item in send.accepted if item[0] != "slow"]
    assert len(fast) == 30  # all flowed while slow's head was still out
    assert ("slow", 2) not in [i for b in send.batches for i in b]
    send.release(("slow", 1))
    send.release(("slow", 2))
    await asyncio.wait_for(batcher.drain(), 1)
    assert [i for i in send.accepted if i[0] == "slow"] == [("slow", 1), ("slow", 2)]


async def test_group_batcher_full_batch_goes_without_linger_partial_after() -> None:
    send = GroupSend()
    send.auto = True
    batcher = send.make(linger=0.05)
    for n in range(12):
        batcher.add((f"g{n}", n))
    await settle()
    assert [len(b) for b in send.batches] == [10]  # ten groups: a full batch at once
    await asyncio.sleep(0.1)
    assert [len(b) for b in send.batches] == [10, 2]  # the rest after the linger


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=80), st.integers())
def test_group_batcher_keeps_every_group_in_order(groups: list[int], seed: int) -> None:
    rnd = random.Random(seed)

    async def scenario() -> None:
        send = GroupSend()
        batcher = send.make(linger=0.001, concurrency=3)

        async def release_randomly() -> None:
            while len(send.accepted) < len(groups):
                if send.in_flight:
                    send.release(rnd.choice(sorted(send.in_flight)))
                await asyncio.sleep(0)

        releaser = asyncio.create_task(release_randomly())
        for n, g in enumerate(groups):
            batcher.add((f"g{g}", n))
            if rnd.random() < 0.3:
                await asyncio.sleep(0)
        await asyncio.wait_for(batcher.drain(), 5)
        await releaser
        assert sorted(send.accepted) == sorted((f"g{g}", n) for n, g in enumerate(groups))
        for g in set(groups):
            seq = [n for grp, n in send.accepted if grp == f"g{g}"]
            assert seq == sorted(seq)

    asyncio.run(scenario())
