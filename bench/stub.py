"""An instant SQS server (JSON protocol) on 127.0.0.1, in its own process, with counters.

It answers ReceiveMessage from a pool of pre-generated bodies (each served once; a release with
VisibilityTimeout 0 puts a message back), and SendMessageBatch / DeleteMessageBatch /
ChangeMessageVisibilityBatch / GetQueueAttributes / GetQueueUrl with success at once. So the
only work in a run is the consumer's own: its CPU per event is measured without an emulator.

``--latency-ms`` delays every answer by a round trip, drawn per call uniformly within
``--jitter`` (a fraction, default 0.25) of it: real SQS answers in 10-50 ms, and a consumer's
throughput there depends on how many calls it keeps in flight, not on its CPU.

``--rate R`` turns the pool into an open-loop producer: message i becomes visible at
t0 + i / R, t0 being ``--start-delay`` seconds after the first ReceiveMessage (the consumer is
up by then), and a long poll returns as soon as one is due. Each copy's and each delete's
latency from that scheduled time is recorded (no coordinated omission: a consumer that falls
behind is charged for it).

    python -m bench.stub --pool bodies.jsonl [--port 0] [--max-wait 0.5] [--latency-ms 20]
        [--rate 500 --start-delay 1]

prints ``PORT <n>`` once listening. ``GET /_bench/stats`` returns the counters: calls and
entries per operation, copies per queue and event id, DLQ records by event id, and the time
window from the first message served to the last delete.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

ACCOUNT = "000000000000"
JSON_TYPE = "application/x-amz-json-1.0"
EVENT_ID_ATTRIBUTE = "fanout.event_id"
FAKE_MD5 = "0" * 32
QUEUE_ATTRIBUTES = {
    "MaximumMessageSize": "1048576",
    "VisibilityTimeout": "60",
    "ApproximateNumberOfMessages": "0",
}


class Stub:
    """The stub's queues and counters.

    Parameters:
        pool: the bodies ReceiveMessage serves, each once.
        max_wait: cap on long-poll waits (seconds).
        latency: round trip added to every answer (seconds); 0: instant.
        jitter: the round trip varies uniformly within this fraction of it.
        rng: draws the jitter (seeded for repeatable runs).
        rate: open loop: message i is due at t0 + i / rate (events/s); None: all at once.
        start_delay: t0 is this many seconds after the first ReceiveMessage.
    """

    def __init__(
        self,
        pool: list[str],
        max_wait: float,
        latency: float = 0.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
        rate: float | None = None,
        start_delay: float = 1.0,
    ) -> None:
        self.pool = pool
        self.rate = rate
        self.start_delay = start_delay
        self.t0: float | None = None
        # event id -> pool index, to charge each copy to its message's scheduled time
        self.index = {str(orjson.loads(b)["id"]): i for i, b in enumerate(pool)} if rate else {}
        self.copy_latency_ms: list[float] = []
        self.ack_latency_ms: list[float] = []
        self.latency = latency
        self.jitter = jitter
        self.rng = rng or random.Random(0)  # noqa: S311 - jitter, not cryptography
        self.md5 = [hashlib.md5(b.encode(), usedforsecurity=False).hexdigest() for b in pool]
        self.max_wait = max_wait
        self.next = 0
        self.requeued: collections.deque[int] = collections.deque()
        self.served = [0] * len(pool)
        self.deleted = 0
        self.calls: collections.Counter[str] = collections.Counter()
        self.entries: collections.Counter[str] = collections.Counter()
        self.copies: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.dlq: dict[str, str] = {}
        self.first_served: float | None = None
        self.last_delete: float | None = None

    # --- operations --------------------------------------------------------------------

    def due(self, i: int) -> float:
        """When message ``i`` is due (open loop; 0 in a closed loop: all are)."""
        if self.rate is None or self.t0 is None:
            return 0.0
        return self.t0 + i / self.rate

    def _take(self, most: int) -> list[int]:
        out: list[int] = []
        while len(out) < most and self.requeued:
            out.append(self.requeued.popleft())
        now = time.time()
        while len(out) < most and self.next < len(self.pool) and self.due(self.next) <= now:
            out.append(self.next)
            self.next += 1
        return out

    async def receive(self, req: dict[str, Any]) -> dict[str, Any]:
        most = int(req.get("MaxNumberOfMessages", 1))
        if self.rate is not None and self.t0 is None:
            self.t0 = time.time() + self.start_delay
        picked = self._take(most)
        if not picked:
            wait = min(float(req.get("WaitTimeSeconds", 0)), self.max_wait)
            deadline = time.time() + wait
            # A long poll: back as soon as a message is due, else at the deadline.
            while not picked and (now := time.time()) < deadline:
                pending = self.next < len(self.pool) and self.rate is not None
                wake = min(deadline, self.due(self.next)) if pending else deadline
                await asyncio.sleep(max(0.0, wake - now))
                picked = self._take(most)
        if not picked:
            return {}
        if self.first_served is None:
            self.first_served = time.time()
        sent = str(int(time.time() * 1000))
        messages = []
        for i in picked:
            self.served[i] += 1
            messages.append(
                {
                    "MessageId": f"m-{i}",
                    "ReceiptHandle": f"{i}.{self.served[i]}",
                    "MD5OfBody": self.md5[i],
                    "Body": self.pool[i],
                    "Attributes": {
                        "SentTimestamp": sent,
                        "ApproximateReceiveCount": str(self.served[i]),
                    },
                }
            )
        return {"Messages": messages}

    def send_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        name = str(req["QueueUrl"]).rsplit("/", 1)[-1]
        counts = self.copies[name]
        ok = []
        for entry in req["Entries"]:
            body = entry["MessageBody"]
            if name.endswith("-dlq"):
                record = orjson.loads(body)
                self.dlq[str(record.get("event_id"))] = str(record.get("reason"))
            else:
                attr = (entry.get("MessageAttributes") or {}).get(EVENT_ID_ATTRIBUTE)
                eid = attr["StringValue"] if attr else orjson.loads(body)["id"]
                counts[eid] += 1
                if eid in self.index:
                    self.copy_latency_ms.append(self._since_due(self.index[eid]))
            ok.append({"Id": entry["Id"], "MessageId": "s", "MD5OfMessageBody": FAKE_MD5})
        return {"Successful": ok, "Failed": []}

    def send_one(self, req: dict[str, Any]) -> dict[str, Any]:
        entry = dict(req, Id="0")
        self.send_batch({"QueueUrl": req["QueueUrl"], "Entries": [entry]})
        return {"MessageId": "s", "MD5OfMessageBody": FAKE_MD5}

    def _since_due(self, i: int) -> float:
        return round((time.time() - self.due(i)) * 1000, 3)

    def _acked(self, handle: str) -> None:
        if self.rate is not None:
            self.ack_latency_ms.append(self._since_due(int(handle.split(".")[0])))

    def delete_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        self.deleted += len(req["Entries"])
        self.last_delete = time.time()
        for e in req["Entries"]:
            self._acked(str(e["ReceiptHandle"]))
        return {"Successful": [{"Id": e["Id"]} for e in req["Entries"]], "Failed": []}

    def delete_one(self, req: dict[str, Any]) -> dict[str, Any]:
        self.deleted += 1
        self.last_delete = time.time()
        self._acked(str(req["ReceiptHandle"]))
        return {}

    def change_visibility_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        for e in req["Entries"]:
            if int(e.get("VisibilityTimeout", 1)) == 0:  # released: SQS would redeliver it
                self.requeued.append(int(str(e["ReceiptHandle"]).split(".")[0]))
        return {"Successful": [{"Id": e["Id"]} for e in req["Entries"]], "Failed": []}

    def stats(self) -> dict[str, Any]:
        return {
            "pool": len(self.pool),
            "served_messages": sum(self.served),
            "redelivered": sum(max(0, s - 1) for s in self.served),
            "deleted": self.deleted,
            "calls": dict(self.calls),
            "entries": dict(self.entries),
            "copies": {q: dict(c) for q, c in self.copies.items()},
            "dlq": self.dlq,
            "first_served": self.first_served,
            "last_delete": self.last_delete,
            "rate": self.rate,
            "t0": self.t0,
            "copy_latency_ms": self.copy_latency_ms,
            "ack_latency_ms": self.ack_latency_ms,
        }

    # --- HTTP --------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/_bench/stats":
            return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")
        target = request.headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1]
        req = orjson.loads(await request.read() or b"{}")
        self.calls[op] += 1
        self.entries[op] += len(req.get("Entries", ())) or 1
        if self.latency:
            await asyncio.sleep(self.latency * self.rng.uniform(1 - self.jitter, 1 + self.jitter))
        if op == "ReceiveMessage":
            result = await self.receive(req)
        elif op == "SendMessageBatch":
            result = self.send_batch(req)
        elif op == "SendMessage":
            result = self.send_one(req)
        elif op == "DeleteMessageBatch":
            result = self.delete_batch(req)
        elif op == "DeleteMessage":
            result = self.delete_one(req)
        elif op == "ChangeMessageVisibilityBatch":
            result = self.change_visibility_batch(req)
        elif op == "GetQueueAttributes":
            result = {"Attributes": QUEUE_ATTRIBUTES}
        elif op == "GetQueueUrl":
            host = request.headers.get("Host", "127.0.0.1")
            result = {"QueueUrl": f"http://{host}/{ACCOUNT}/{req['QueueName']}"}
        else:
            error = {"__type": "com.amazonaws.sqs#UnsupportedOperation", "message": op}
            return web.Response(status=400, body=orjson.dumps(error), content_type=JSON_TYPE)
        return web.Response(body=orjson.dumps(result), content_type=JSON_TYPE)


async def serve(
    pool: list[str],
    port: int,
    max_wait: float,
    latency: float = 0.0,
    jitter: float = 0.25,
    rate: float | None = None,
    start_delay: float = 1.0,
) -> None:
    stub = Stub(pool, max_wait, latency, jitter, rate=rate, start_delay=start_delay)
    server = web.Server(stub.handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", port, backlog=1024)
    print(f"PORT {listener.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()
    await server.shutdown(1.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="instant SQS JSON-protocol stub for the bench")
    parser.add_argument("--pool", type=Path, required=True, help="file of bodies, one JSON a line")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-wait", type=float, default=0.5, help="cap on long-poll waits")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="round trip added to every answer"
    )
    parser.add_argument(
        "--jitter", type=float, default=0.25, help="round-trip jitter, a fraction of it"
    )
    parser.add_argument(
        "--rate", type=float, help="open loop: make the pool's messages due at this events/s"
    )
    parser.add_argument(
        "--start-delay",
        type=float,
        default=1.0,
        help="open loop: the first message is due this long after the first receive",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if (
        args.latency_ms < 0
        or not 0 <= args.jitter < 1
        or (args.rate is not None and args.rate <= 0)
    ):
        raise SystemExit("bench.stub: --latency-ms >= 0, 0 <= --jitter < 1 and --rate > 0")
    pool = args.pool.read_text().splitlines() if args.pool.stat().st_size else []
    try:
        asyncio.run(
            serve(
                pool,
                args.port,
                args.max_wait,
                args.latency_ms / 1000,
                args.jitter,
                args.rate,
                args.start_delay,
            )
        )
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
