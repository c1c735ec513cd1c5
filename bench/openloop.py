"""Open loop (latency): a producer sends on a fixed schedule, the system (fanout, or the naive
consumer as a peer at the same rates) runs, a collector drains the targets. Each body is stamped
with its *scheduled* send time, so a producer that falls behind cannot hide latency (no
coordinated omission): latency = time the copy was received from its target - scheduled send
time. Each latency is split at the target's SentTimestamp (when SQS accepted the copy): before
it (producer, source queue, the system's receive, processing, linger, send) and after it (the
collector's long poll on the target)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from bench import sqsenv
from bench.check import verify
from bench.closed import Knobs, Prepared, system_argv
from bench.procs import Child
from bench.workload import REPO
from fanout.local.synthetic import stamp

STAMP_KEY = "bench_sent_at"
WARMUP_EVENTS = 40
_PREFIX = len('{"' + STAMP_KEY + '":')


def sent_at(body: str) -> float:
    return float(body[_PREFIX : body.index(",", _PREFIX)])


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


@dataclass
class RateResult:
    system: str
    rate: float
    share_of_max: float | None
    events: int
    achieved_rate: float
    copies: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    max_send_lag_ms: float
    correctness: dict[str, Any]
    linger_ms: float
    # Medians of the split at the target's SentTimestamp (ms resolution): scheduled send ->
    # accepted by the target, and accepted -> received by the collector.
    p50_to_target_ms: float = float("nan")
    p50_collector_ms: float = float("nan")
    quantiles_ms: list[float] = field(default_factory=list, repr=False)  # 0, 1, ..., 100

    def row(self) -> dict[str, Any]:
        return asdict(self)


async def _produce(c: Any, url: str, bodies: list[str], rate: float) -> tuple[float, float]:
    """Send on schedule (batches of what is due, never waiting for earlier sends); returns
    (achieved events/s, worst lag of a send behind its schedule in seconds)."""
    t0 = time.time() + 0.2
    tasks: set[asyncio.Task[None]] = set()
    worst = 0.0
    i, n = 0, len(bodies)

    async def send(batch: list[str]) -> None:
        entries = [{"Id": str(k), "MessageBody": b} for k, b in enumerate(batch)]
        resp = await c.send_message_batch(QueueUrl=url, Entries=entries)
        if resp.get("Failed"):
            raise RuntimeError(f"producer send failed: {resp['Failed'][:1]}")

    while i < n:
        now = time.time()
        due = min(n, int((now - t0) * rate) + 1) if now >= t0 else 0
        if due <= i:
            await asyncio.sleep(max(0.0, t0 + i / rate - now))
            continue
        worst = max(worst, now - (t0 + i / rate))
        while i < due:
            j = min(due, i + 10)
            batch = [stamp(bodies[k], STAMP_KEY, round(t0 + k / rate, 6)) for k in range(i, j)]
            task = asyncio.create_task(send(batch))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i = j
    await asyncio.gather(*list(tasks))
    return n / max(time.time() - t0, 1e-9), worst


async def open_loop(
    prep: Prepared,
    rates: list[float],
    seconds: float,
    knobs: Knobs,
    endpoint: str,
    *,
    max_rate: float | None = None,
    progress: Any = None,
    system: str = "fanout",
) -> tuple[list[RateResult], dict[str, Any]]:
    """One ``system`` process (fanout or naive); for each rate, ``rate * seconds`` events on
    schedule."""
    sizes = [max(1, int(r * seconds)) for r in rates]
    if sum(sizes) + WARMUP_EVENTS > len(prep.bodies):
        raise ValueError(f"need {sum(sizes) + WARMUP_EVENTS} events, have {len(prep.bodies)}")
    results: list[RateResult] = []
    async with sqsenv.client(endpoint, pool=128) as c:
        queues = await sqsenv.create_queues(c, endpoint, sqsenv.run_prefix(), prep.targets)
        out = prep.workdir / "summary-open.json"
        argv, env = system_argv(
            system, queues, prep, knobs, out, log_level="INFO", exit_when_idle=False
        )
        if system == "naive":
            argv += ["--idle-receives", str(10**9)]  # runs until terminated, like fanout here
        child = Child(argv, env, REPO)
        latencies: list[list[float]] = [[] for _ in rates]
        # (scheduled -> target accepted, target accepted -> collector) per copy, ms
        splits: list[list[tuple[float, float]]] = [[] for _ in rates]
        copies: list[dict[str, Counter[str]]] = [
            {t: Counter() for t in queues.targets} for _ in rates
        ]
        dlq: dict[str, str] = {}
        which: dict[str, int] = {}
        stop = asyncio.Event()

        def on_copy(target: str) -> Any:
            def on(m: dict[str, Any], now: float) -> None:
                eid = sqsenv.event_id(m)
                k = which.get(eid)
                if k is None:
                    return
                scheduled = sent_at(m["Body"])
                latencies[k].append((now - scheduled) * 1000)
                accepted = int((m.get("Attributes") or {}).get("SentTimestamp", 0)) / 1000
                if accepted:
                    splits[k].append(((accepted - scheduled) * 1000, (now - accepted) * 1000))
                copies[k][target][eid] += 1

            return on

        def on_dlq(m: dict[str, Any], _: float) -> None:
            record = orjson.loads(m["Body"])
            dlq[str(record.get("event_id"))] = str(record.get("reason"))

        try:
            if system == "fanout" and not await asyncio.to_thread(
                child.wait_for, "fanout started", 60
            ):
                raise RuntimeError(f"fanout did not start: {''.join(child.stderr[-10:])}")
            collectors = asyncio.gather(
                *(
                    sqsenv.drain(c, url, on_copy(name), loops=2, stop=stop)
                    for name, url in queues.targets.items()
                ),
                sqsenv.drain(c, queues.dlq, on_dlq, loops=1, stop=stop),
            )
            # Warm-up (not measured): connections opened, lazy imports done, pollers running.
            await _produce(c, queues.source, prep.bodies[-WARMUP_EVENTS:], WARMUP_EVENTS / 2)
            await asyncio.sleep(2.0)
            start = 0
            for k, (rate, n) in enumerate(zip(rates, sizes, strict=True)):
                ids = prep.ids[start : start + n]
                bodies = prep.bodies[start : start + n]
                start += n
                for eid in ids:
                    which[eid] = k
                want = sum(len(prep.expected[e]) for e in ids)
                if progress is not None:
                    progress(f"open loop {rate:.0f} events/s for {seconds:.0f}s")
                achieved, lag = await _produce(c, queues.source, bodies, rate)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    got = sum(sum(x.values()) for x in copies[k].values())
                    if got >= want - sum(len(prep.expected[e]) for e in ids if e in dlq):
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.5)
                expected = {e: prep.expected[e] for e in ids}
                verdict = verify(expected, copies[k], {e: r for e, r in dlq.items() if e in which})
                lat = sorted(latencies[k])
                before = sorted(b for b, _ in splits[k])
                after = sorted(a for _, a in splits[k])
                results.append(
                    RateResult(
                        system=system,
                        rate=round(rate, 1),
                        share_of_max=round(rate / max_rate, 2) if max_rate else None,
                        events=n,
                        achieved_rate=round(achieved, 1),
                        copies=len(lat),
                        p50_ms=round(percentile(lat, 50), 1),
                        p95_ms=round(percentile(lat, 95), 1),
                        p99_ms=round(percentile(lat, 99), 1),
                        max_ms=round(lat[-1], 1) if lat else float("nan"),
                        max_send_lag_ms=round(lag * 1000, 1),
                        correctness=verdict.summary(),
                        linger_ms=knobs.linger_ms,
                        p50_to_target_ms=round(percentile(before, 50), 1),
                        p50_collector_ms=round(percentile(after, 50), 1),
                        quantiles_ms=[round(percentile(lat, q), 2) for q in range(101)],
                    )
                )
                await asyncio.sleep(1.0)
            stop.set()
            await collectors
        finally:
            stop.set()
            child.terminate()
            res = await asyncio.to_thread(child.wait, 60)
            await sqsenv.delete_queues(c, queues)
    summary: dict[str, Any] = {}
    if res.returncode == 0 and out.exists():
        summary = dict(orjson.loads(out.read_bytes()))
    return results, summary
