"""Batch packing under the SQS limits (pure) and the async micro-batcher built on it.

SQS batch calls take at most 10 entries, and since 2025 at most 1 MiB (1,048,576 bytes) for a
single message and for the whole batch. A batch flushes when it is full, right before an entry
would push it past the byte limit, or ``linger`` seconds after its first entry arrived, so
copies from different receives share calls: that sharing is what cuts SQS calls per event.

FIFO queues use ``GroupBatcher`` instead: per message group, entries go out strictly one after
the other (see its docstring for why that is the only order-safe packing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fanout.aws.limits import MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES
from fanout.pipeline.concurrency import AimdLimit

T = TypeVar("T")
# Bytes of batches one queue's sends may hold at once (see _Sends._slot_free): 8 x 1 MiB, what
# the fixed concurrency of 8 allowed with the biggest messages.
MAX_SEND_BYTES_IN_FLIGHT = 8 * MAX_MESSAGE_BYTES
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_entries: int = MAX_BATCH_ENTRIES
    max_bytes: int = MAX_MESSAGE_BYTES


class TooLarge(ValueError):
    """One entry is larger than a whole batch may be."""


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """Bytes SQS counts against the limit: UTF-8 body plus each attribute's name, type, value."""
    # An ASCII body (CPython knows without scanning) has as many bytes as characters: no
    # encoded copy per event just to count them.
    size = len(body) if body.isascii() else len(body.encode("utf-8"))
    for name, attr in (attributes or {}).items():
        value = attr.get("StringValue")
        if value is None:
            value = attr.get("BinaryValue", b"")
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        size += len(name.encode("utf-8")) + len(str(attr.get("DataType", ""))) + len(raw)
    return size


class BatchBuffer(Generic[T]):
    """Accumulates entries; ``add`` returns the batches that became ready (pure, no I/O)."""

    def __init__(self, limits: BatchLimits = BatchLimits()) -> None:
        self.limits = limits
        self._items: list[T] = []
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, size: int) -> Sequence[list[T]]:
        if size > self.limits.max_bytes:
            raise TooLarge(f"{size} bytes > {self.limits.max_bytes}")
        ready: list[list[T]] | None = None
        if self._items and self._bytes + size > self.limits.max_bytes:
            ready = [self.take()]
        self._items.append(item)
        self._bytes += size
        if len(self._items) >= self.limits.max_entries:
            if ready is None:
                ready = []
            ready.append(self.take())
        return () if ready is None else ready  # usually nothing: no list per entry

    def take(self) -> list[T]:
        items, self._items, self._bytes = self._items, [], 0
        return items


def pack(items: Iterable[tuple[T, int]], limits: BatchLimits = BatchLimits()) -> list[list[T]]:
    """Split ``(item, size)`` pairs, in order, into batches that respect ``limits`` (what the
    buffer does when no linger cuts a batch short; the redrive and the bench's minimum calls)."""
    buffer: BatchBuffer[T] = BatchBuffer(limits)
    batches: list[list[T]] = []
    for item, size in items:
        batches.extend(buffer.add(item, size))
    if len(buffer):
        batches.append(buffer.take())
    return batches


class _Sends(Generic[T]):
    """What both batchers share: a queue's send tasks in flight, their concurrency limit, the
    linger timer, and the guard that reports a batch whose ``send`` raised (so no entry is left
    unreported). A batch is taken only when the limit has a free slot: entries wait in the
    buffer meanwhile, so batches fill while the queue is slow or throttled, and the tasks are
    never more than the limit."""

    def __init__(
        self,
        name: str,
        send: Callable[[list[T]], Awaitable[None]],
        on_send_error: Callable[[list[T], BaseException], None],
        *,
        size_of: Callable[[T], int],
        linger: float,
        concurrency: int | AimdLimit,
    ) -> None:
        self.name = name
        self._send = send
        self._on_send_error = on_send_error
        self._size_of = size_of
        self._linger = linger
        self.limit = (
            concurrency if isinstance(concurrency, AimdLimit) else AimdLimit.fixed(concurrency)
        )
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._bytes_in_flight = 0

    async def abort(self) -> None:
        """Cancel in-progress sends (shutdown past its deadline)."""
        self._cancel_timer()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def _slot_free(self) -> bool:
        # Calls, and bytes: each call in flight holds its encoded request (up to 1 MiB), so
        # big bodies are bounded in memory as a fixed concurrency bounded them, whatever the
        # limit; ~1 KB events never reach it.
        return self.limit.free and self._bytes_in_flight < MAX_SEND_BYTES_IN_FLIGHT

    def _launch(self, batch: list[T]) -> None:
        self.limit.acquire()
        nbytes = sum(self._size_of(item) for item in batch)
        self._bytes_in_flight += nbytes
        task = asyncio.create_task(self._run(batch, nbytes), name=f"send {self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[T], nbytes: int) -> None:
        try:
            await self._send_reporting(batch)
        finally:
            self.limit.release()
            self._bytes_in_flight -= nbytes
            self._slot_freed()

    def _slot_freed(self) -> None:
        """A send ended: what waits for a slot may go."""

    async def _send_reporting(self, batch: list[T]) -> None:
        try:
            await self._send(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("batch send to %s failed unexpectedly", self.name)
            self._on_send_error(batch, exc)


class Batcher(_Sends[T]):
    """Async micro-batcher: ``add`` never blocks; full or lingering batches are sent by tasks.

    Owns the buffer of one queue's pending entries, its linger timer, and the send tasks in
    flight (at most ``concurrency`` at once). Full batches wait in order for a free slot; a
    partial batch goes once its linger has run and a slot is free (it keeps filling until then).

    Parameters:
        name: the queue's name, for task names and logs.
        send: sends one batch; it must report every item (it owns retries and callbacks).
        on_send_error: called with the batch if ``send`` raises anyway, so no item is left
            unreported (``aws.batch.fail_all``).
        size_of: an entry's size in bytes, against ``limits.max_bytes``.
        linger: seconds a partial batch waits for more entries.
        concurrency: sends in flight at once: a number (fixed) or an ``AimdLimit``.
        limits: entries and bytes per batch (SQS's by default).
    """

    def __init__(
        self,
        name: str,
        send: Callable[[list[T]], Awaitable[None]],
        on_send_error: Callable[[list[T], BaseException], None],
        *,
        size_of: Callable[[T], int],
        linger: float,
        concurrency: int | AimdLimit = 8,
        limits: BatchLimits = BatchLimits(),
    ) -> None:
        super().__init__(
            name, send, on_send_error, size_of=size_of, linger=linger, concurrency=concurrency
        )
        self._buffer: BatchBuffer[T] = BatchBuffer(limits)
        self._full: deque[list[T]] = deque()  # sealed batches waiting for a slot, oldest first
        self._due: float | None = None  # when the partial batch's linger runs out

    @property
    def busy(self) -> bool:
        return bool(self._tasks) or bool(self._full) or len(self._buffer) > 0

    @property
    def waiting(self) -> int:
        """Batches (full, plus a partial one) waiting for a slot or their linger."""
        return len(self._full) + (1 if len(self._buffer) else 0)

    def add(self, item: T) -> None:
        sealed = self._buffer.add(item, self._size_of(item))
        if sealed:
            self._full.extend(sealed)
        if len(self._buffer) and self._due is None:
            self._due = time.monotonic() + self._linger
        elif not len(self._buffer):
            self._due = None
        self._pump()

    def flush_now(self) -> None:
        """Send whatever is buffered without waiting for the linger time (as slots free)."""
        if len(self._buffer):
            self._due = time.monotonic()
        self._pump()

    async def drain(self) -> None:
        """Flush and wait until every batch added so far has been settled."""
        while self.busy:
            self.flush_now()
            if not self._tasks:  # nothing in flight to free a slot (cannot happen; never spin)
                log.error("%s: %d batches stuck at drain", self.name, self.waiting)
                return
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _pump(self) -> None:
        """Launch batches while slots are free: full ones first, the partial one when due."""
        while self._slot_free:
            if self._full:
                self._launch(self._full.popleft())
            elif self._due is not None and time.monotonic() >= self._due:
                self._due = None
                self._launch(self._buffer.take())
            else:
                break
        if self._due is None:
            self._cancel_timer()
        elif self._timer is None and self._slot_free:
            delay = max(0.0, self._due - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush_due)

    def _flush_due(self) -> None:
        self._timer = None
        self._pump()

    def _slot_freed(self) -> None:
        if self._full or self._due is not None:
            self._pump()


class GroupBatcher(_Sends[T]):
    """Per-group sequencing for FIFO queues: order within each group, whatever fails.

    SQS FIFO keeps the order of accepted messages per MessageGroupId, and within one
    SendMessageBatch entries of a group are ordered by position. But a batch can be answered
    with entry k of group G ``Failed`` and entry k+1 of G accepted: once that happened, no
    retry can put k back in front. So, by construction:

    * a batch holds **at most one entry per group** (the group's oldest unsettled entry);
    * a group has **at most one entry in flight**: its next entry is only taken once the
      current one is settled (accepted, or failed for good after its retries);
    * other groups keep flowing meanwhile: up to ``concurrency`` (a number or an
      ``AimdLimit``) batches of distinct groups are in flight, and a group held by a retrying
      entry holds only itself.

    A failed-for-good entry releases its group (dead-letter and continue, as SQS's own FIFO
    redrive does): the caller counts that gap. The cost: one group alone moves one entry per
    round trip; ten or more busy groups fill whole batches (bench/fifo.py measures it).

    Same interface as ``Batcher`` (``add``, ``busy``, ``flush_now``, ``drain``, ``abort``), plus
    ``settled``, which the sender must call exactly once for every entry ``send`` was given.

    Parameters:
        group_of: an entry's message group.
        Others as ``Batcher``.
    """

    def __init__(
        self,
        name: str,
        send: Callable[[list[T]], Awaitable[None]],
        on_send_error: Callable[[list[T], BaseException], None],
        *,
        size_of: Callable[[T], int],
        group_of: Callable[[T], str],
        linger: float,
        concurrency: int | AimdLimit = 8,
        limits: BatchLimits = BatchLimits(),
    ) -> None:
        super().__init__(
            name, send, on_send_error, size_of=size_of, linger=linger, concurrency=concurrency
        )
        self._group_of = group_of
        self._limits = limits
        # Unsettled entries per group, oldest first; the head is in flight when the group is
        # not in ``_ready``. Empty groups are dropped (1,000s of conversations come and go).
        self._groups: dict[str, deque[T]] = {}
        self._ready: dict[str, None] = {}  # groups whose head may go now, oldest first
        self._due: float | None = None  # when the oldest ready head's linger runs out
        self._pump_soon = False

    @property
    def busy(self) -> bool:
        return bool(self._tasks) or bool(self._groups)

    @property
    def pending(self) -> int:
        """Entries added and not yet settled (in flight or waiting behind their group)."""
        return sum(len(q) for q in self._groups.values())

    def add(self, item: T) -> None:
        group = self._group_of(item)
        queue = self._groups.get(group)
        if queue is None:
            self._groups[group] = deque((item,))
            self._make_ready(group, time.monotonic() + self._linger)
        else:
            queue.append(item)  # behind the group's head: taken once the head is settled
        self._pump()

    def settled(self, item: T) -> None:
        """``item`` (its group's head) is accepted or failed for good: its group moves on."""
        group = self._group_of(item)
        queue = self._groups.get(group)
        if not queue or queue[0] is not item:
            log.error("%s: settled an entry that is not its group's head", self.name)
            return
        queue.popleft()
        if queue:
            # Its next entry has waited behind the head at least a round trip: no more linger.
            self._make_ready(group, time.monotonic())
        else:
            del self._groups[group]
        # Deferred: a response settles up to 10 entries in a row; pump once after all of them.
        if not self._pump_soon:
            self._pump_soon = True
            asyncio.get_running_loop().call_soon(self._deferred_pump)

    def flush_now(self) -> None:
        self._pump(force=True)

    async def drain(self) -> None:
        """Send everything without lingering and wait until every entry is settled."""
        while self._groups:
            self._pump(force=True)
            if not self._tasks:  # nothing can settle what is left (cannot happen; never spin)
                log.error("%s: %d entries stuck at drain", self.name, self.pending)
                return
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await asyncio.sleep(0)  # let deferred pumps run
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- internals -------------------------------------------------------------------------

    def _make_ready(self, group: str, due: float) -> None:
        self._ready[group] = None
        if self._due is None or due < self._due:
            self._due = due

    def _deferred_pump(self) -> None:
        self._pump_soon = False
        self._pump()

    def _pump(self, *, force: bool = False) -> None:
        """Launch batches while slots are free: full ones at once, partial ones when due."""
        while self._ready and self._slot_free:
            due = force or (self._due is not None and time.monotonic() >= self._due)
            if not due and len(self._ready) < self._limits.max_entries:
                break
            self._launch(self._take())
        if not self._ready:
            self._due = None
            self._cancel_timer()
        elif self._timer is None and self._due is not None and self._slot_free:
            delay = max(0.0, self._due - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush_due)

    def _take(self) -> list[T]:
        """The heads of the oldest ready groups, one per group, within the batch limits."""
        batch: list[T] = []
        nbytes = 0
        for group in list(self._ready):
            if len(batch) >= self._limits.max_entries:
                break
            head = self._groups[group][0]
            size = self._size_of(head)
            if batch and nbytes + size > self._limits.max_bytes:
                continue  # stays ready for the next batch
            batch.append(head)
            nbytes += size
            del self._ready[group]
        if not self._ready:
            self._due = None
        return batch

    def _flush_due(self) -> None:
        self._timer = None
        self._pump()

    def _slot_freed(self) -> None:
        if self._ready:  # a slot is free: waiting heads go (their linger has run)
            self._pump()
