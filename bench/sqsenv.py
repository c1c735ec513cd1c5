"""Queues for one run on a real SQS endpoint (LocalStack): create, preload, drain and count,
delete. Every queue name carries a random prefix: the LocalStack is shared."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import orjson
from aiobotocore.config import AioConfig

from bench.procs import DUMMY_AWS
from bench.workload import TargetSpec

EVENT_ID_ATTRIBUTE = "fanout.event_id"


@dataclass
class Queues:
    endpoint: str
    source: str
    dlq: str
    targets: dict[str, str]


@dataclass
class Observed:
    """What reached the targets and the DLQ; ``calls``/``window`` when the server counts."""

    copies: dict[str, Counter[str]] = field(default_factory=dict)
    dlq: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] | None = None
    window: tuple[float, float] | None = None
    redelivered: int = 0
    stub_stats: dict[str, Any] | None = None  # the stub's /_bench/stats, as served


@asynccontextmanager
async def client(endpoint: str, pool: int = 64) -> AsyncIterator[Any]:
    session = aioboto3.Session(
        aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    config = AioConfig(max_pool_connections=pool, retries={"max_attempts": 5, "mode": "standard"})
    async with session.client("sqs", endpoint_url=endpoint, config=config) as c:
        yield c


def run_prefix() -> str:
    return f"bench-{secrets.token_hex(3)}"


async def create_queues(
    c: Any, endpoint: str, prefix: str, targets: Sequence[TargetSpec]
) -> Queues:
    async def create(name: str, fifo: bool = False) -> str:
        attrs = {"MaximumMessageSize": "1048576", "VisibilityTimeout": "60"}
        if fifo:
            attrs["FifoQueue"] = "true"
        resp = await c.create_queue(QueueName=name + (".fifo" if fifo else ""), Attributes=attrs)
        return str(resp["QueueUrl"])

    source = await create(f"{prefix}-source")
    dlq = await create(f"{prefix}-dlq")
    urls = {t.name: await create(f"{prefix}-{t.name}", t.fifo) for t in targets}
    return Queues(endpoint, source, dlq, urls)


async def delete_queues(c: Any, queues: Queues) -> None:
    for url in [queues.source, queues.dlq, *queues.targets.values()]:
        with contextlib.suppress(Exception):  # best-effort cleanup of a shared emulator
            await c.delete_queue(QueueUrl=url)


async def preload(c: Any, url: str, bodies: Sequence[str], concurrency: int = 16) -> float:
    """Send ``bodies`` to ``url`` in batches of 10 (or fewer, under 1 MiB); returns seconds."""
    batches: list[list[str]] = [[]]
    size = 0
    for b in bodies:
        n = len(b.encode())
        if batches[-1] and (len(batches[-1]) == 10 or size + n > 1_000_000):
            batches.append([])
            size = 0
        batches[-1].append(b)
        size += n
    slots = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def send(batch: list[str]) -> None:
        async with slots:
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(batch)]
            resp = await c.send_message_batch(QueueUrl=url, Entries=entries)
            if resp.get("Failed"):
                raise RuntimeError(f"preload failed: {resp['Failed'][:2]}")

    await asyncio.gather(*(send(b) for b in batches if b))
    return time.monotonic() - started


def event_id(message: dict[str, Any]) -> str:
    attr = (message.get("MessageAttributes") or {}).get(EVENT_ID_ATTRIBUTE)
    if attr:
        return str(attr["StringValue"])
    return str(orjson.loads(message["Body"])["id"])


async def drain(
    c: Any,
    url: str,
    on_message: Any,
    *,
    loops: int = 4,
    idle_receives: int = 2,
    stop: asyncio.Event | None = None,
) -> None:
    """Receive and delete everything in ``url``; ``on_message(msg, received_at)`` per message.
    Stops after ``idle_receives`` empty 1-second polls per loop (or when ``stop`` is set and
    the queue is empty)."""

    async def loop() -> None:
        empty = 0
        while True:
            resp = await c.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=120,
                MessageAttributeNames=[EVENT_ID_ATTRIBUTE],
                # When the queue accepted the copy: splits latency into before and after it.
                MessageSystemAttributeNames=["SentTimestamp"],
            )
            now = time.time()
            messages = resp.get("Messages", [])
            if not messages:
                empty += 1
                if (stop is None and empty >= idle_receives) or (
                    stop is not None and stop.is_set()
                ):
                    return
                continue
            empty = 0
            for m in messages:
                on_message(m, now)
            await c.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    await asyncio.gather(*(loop() for _ in range(loops)))


async def collect(c: Any, queues: Queues) -> Observed:
    """Drain every target and the DLQ, counting copies per event id."""
    observed = Observed(copies={name: Counter() for name in queues.targets})

    def counter(name: str) -> Any:
        counts = observed.copies[name]

        def on(m: dict[str, Any], _: float) -> None:
            counts[event_id(m)] += 1

        return on

    def on_dlq(m: dict[str, Any], _: float) -> None:
        record = orjson.loads(m["Body"])
        observed.dlq[str(record.get("event_id"))] = str(record.get("reason"))

    await asyncio.gather(
        *(drain(c, url, counter(name)) for name, url in queues.targets.items()),
        drain(c, queues.dlq, on_dlq, loops=1),
    )
    return observed


async def queue_depth(c: Any, url: str) -> int:
    resp = await c.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    a = resp["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


async def round_trip(c: Any, url: str, n: int = 30) -> float:
    """Median seconds of one small SendMessage round trip (the 'SQS round trip' unit)."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await c.send_message(QueueUrl=url, MessageBody="x" * 1000)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]
