"""Soak run: steady traffic through fanout on LocalStack, sampling RSS and asyncio task count.

    .venv/bin/python -m bench.soak --minutes 10 --rate 20 --out soak.json
    .venv/bin/python -m bench.soak --minutes 5 --rate 4 --event-kb 1024 --process \
        --out bench/results/soak_1mib.json                      # 1 MiB events (README "Memory")

fanout runs in this process (the same Service the CLI runs), so the task count is
``len(asyncio.all_tasks())`` of its event loop (minus the publisher and sampler tasks). RSS is
this process's (fanout plus the publisher, which holds nothing between batches).
``--process`` runs ``python -m fanout run`` as a child instead, with the same settings: RSS
is then the child's alone (VmRSS, and VmHWM for the peak), with no publisher or accounting in
it; the task count is not seen. ``--backlog N`` publishes N more events before fanout starts,
so that it begins by draining them at its byte budget.
``--event-kb N`` pads every event to N KiB (a top-level ``padding`` field; the rules never read
it), at most what leaves room for the ``fanout.event_id`` attribute of each copy within SQS's
1 MiB (1,048,576 bytes, attributes included); every queue gets MaximumMessageSize 1 MiB.
At the end the source is drained and every event is accounted for
(fanout/testing/accounting.py): lost must be 0.
Uses uniquely named queues on the shared LocalStack and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.procs import PY, Child, child_env
from fanout.aws.checks import check_queues
from fanout.aws.client import create_clients
from fanout.aws.limits import MAX_MESSAGE_BYTES
from fanout.pipeline.sender import EVENT_ID_ATTRIBUTE
from fanout.service import Service
from fanout.testing.accounting import (
    LOCALSTACK_URL,
    Fleet,
    Published,
    account,
    client,
    depth,
    localstack_up,
    make_events,
    make_fleet,
    publish,
    wait_settled,
)

MIB = 1024 * 1024


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def padded(event: Published, size: int) -> str:
    """``event``'s body grown to ``size`` bytes (capped so that a copy with its
    ``fanout.event_id`` attribute still fits SQS's message limit)."""
    room = MAX_MESSAGE_BYTES - len(EVENT_ID_ATTRIBUTE) - len("String") - len(event.event_id)
    size = min(size, room)
    body = event.body[:-1] + ',"padding":""}'  # the generator's bodies are JSON objects
    return body[:-2] + "p" * max(0, size - len(body.encode())) + '"}'


async def publish_large(
    sqs: Any, url: str, events: Sequence[Published], size: int, rate: float
) -> int:
    """One SendMessage per event (ten 1 MiB bodies do not fit one batch), paced at ``rate``;
    bodies are padded as they are sent, so this process never holds them all."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for sent, event in enumerate(events, 1):
        await sqs.send_message(QueueUrl=url, MessageBody=padded(event, size))
        await asyncio.sleep(max(0.0, started + sent / rate - loop.time()))
    return len(events)


def publishing(
    args: argparse.Namespace, fleet: Fleet, events: list[Published], rate: float | None = None
) -> Any:
    """The publisher coroutine: batches of ten, or one call per event when padded."""
    rate = rate or args.rate
    if args.event_kb:
        return publish_large(fleet.sqs, fleet.source, events, args.event_kb * 1024, rate)
    return publish(fleet.sqs, fleet.source, events, rate=rate)


async def allow_large_messages(fleet: Fleet) -> None:
    for url in fleet.all_queues:
        await fleet.sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"MaximumMessageSize": str(MAX_MESSAGE_BYTES)}
        )


async def soak_process(args: argparse.Namespace, fleet: Fleet, events: list[Published]) -> int:
    """fanout as ``python -m fanout run`` (the in-process soak's settings; the byte budget its
    default), RSS sampled from /proc; then the same accounting as the in-process soak."""
    size = args.event_kb * 1024
    backlog, steady = events[: args.backlog], events[args.backlog :]
    await publishing(args, fleet, backlog, rate=1e9)
    summary = Path(tempfile.mkdtemp()) / "summary.json"
    budget = {"max_in_flight_bytes": args.budget_mib * MIB} if args.budget_mib else {}
    env = fleet.env(args.endpoint, pollers=4, visibility_timeout_seconds=30, linger_ms=20, **budget)
    child = Child(
        [PY, "-m", "fanout", "run", "--summary-json", str(summary)],
        child_env({k: v for k, v in env.items() if k.startswith("FANOUT_")}),
        Path.cwd(),
    )
    publisher = asyncio.create_task(publishing(args, fleet, steady), name="publisher")
    series: list[dict[str, Any]] = []
    loads: list[float] = []
    drained: float | None = None  # seconds until the source queue was first empty
    started = time.monotonic()
    try:
        for tick in itertools.count():
            if not child.running():
                break
            rss = child.sample_rss()
            visible, hidden = await depth(fleet.sqs, fleet.source)
            if drained is None and visible + hidden == 0:
                drained = time.monotonic() - started  # the backlog is through
            if publisher.done() and drained is not None:
                break
            if tick % max(1, int(args.sample)) == 0:
                load = os.getloadavg()[0]
                loads.append(load)
                sample = {
                    "t": round(time.monotonic() - started, 1),
                    "rss_mib": round(rss / 1024, 1),
                    "peak_rss_mib": round(child.peak_rss_kb / 1024, 1),
                    "source_depth": visible + hidden,
                    "load": round(load, 2),
                }
                series.append(sample)
                print(orjson.dumps(sample).decode(), flush=True)
            await asyncio.sleep(1)
        await publisher
        await wait_settled(fleet.sqs, fleet.source, quiet=3, timeout=600)
    finally:
        child.terminate()
        result = await asyncio.to_thread(child.wait, 60)
    if result.returncode != 0:
        print(f"fanout exited {result.returncode}: {result.stderr_tail}", file=sys.stderr)
        return 1
    stats = orjson.loads(summary.read_bytes())
    accounting = await account("soak", fleet, events)
    accounting.notes["fanout summary"] = {
        k: stats[k] for k in ("received", "deleted", "errors", "retries")
    }
    print(accounting.render())
    peak_rss = round(result.maxrss_kb / 1024, 1)
    report = {
        "command": "python -m bench.soak " + " ".join(sys.argv[1:]),
        "event_bytes": len(padded(events[0], size).encode()) if size else None,
        "events": len(events),
        "backlog": len(backlog),
        "rate_per_second": args.rate,
        "seconds": round(time.monotonic() - started, 1),
        "max_in_flight_bytes_mib": round(int(env["FANOUT_MAX_IN_FLIGHT_BYTES"]) / MIB, 1),
        "peak_in_flight_mib": round(stats["peak_in_flight_bytes"] / MIB, 1),
        "peak_rss_mib": peak_rss,
        "backlog_drained_seconds": round(drained, 1) if drained is not None else None,
        "load_average": {
            "min": min(loads, default=0.0),
            "max": max(loads, default=0.0),
            "mean": round(sum(loads) / max(len(loads), 1), 2),
        },
        "series": series,
        "accounting": accounting.render().splitlines(),
    }
    if args.out:
        args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(
        f"peak RSS {peak_rss} MiB, peak in-flight {report['peak_in_flight_mib']} MiB of "
        f"{report['max_in_flight_bytes_mib']} MiB, {len(events)} events"
    )
    return 0 if not accounting.lost and not accounting.misrouted else 1


async def soak(args: argparse.Namespace) -> int:
    if not localstack_up(args.endpoint):
        print(f"LocalStack is not reachable at {args.endpoint}", file=sys.stderr)
        return 2
    duration = args.minutes * 60
    events = make_events(int(duration * args.rate) + args.backlog, seed=args.seed)
    async with client(args.endpoint) as sqs:
        fleet = await make_fleet(sqs, args.endpoint, Path(tempfile.mkdtemp()), "soak")
        try:
            if args.event_kb:
                await allow_large_messages(fleet)
            if args.process:
                return await soak_process(args, fleet, events)
            settings = fleet.settings(
                args.endpoint, pollers=4, visibility_timeout_seconds=30, linger_ms=20
            )
            async with create_clients(settings) as (checks_sqs, fanout_sqs):
                limits = await check_queues(checks_sqs, settings, fleet.rules)
                service = Service(settings, fleet.rules, fanout_sqs, queue_limits=limits)
                runner = asyncio.create_task(service.run(), name="fanout")
                publisher = asyncio.create_task(publishing(args, fleet, events), name="publisher")
                series: list[dict[str, Any]] = []
                started = time.monotonic()
                own = 2  # this coroutine's task and the publisher are not fanout's
                for tick in itertools.count():
                    elapsed = time.monotonic() - started
                    if publisher.done() or runner.done():
                        break
                    if tick % max(1, int(args.sample)) == 0:
                        sample = {
                            "t": round(elapsed, 1),
                            "rss_kib": rss_kib(),
                            "tasks": len(asyncio.all_tasks()) - own,
                            "in_flight": len(service.inflight),
                            "received": service.stats.received,
                            "deleted": service.stats.deleted,
                        }
                        series.append(sample)
                        print(orjson.dumps(sample).decode(), flush=True)
                    await asyncio.sleep(1)
                await publisher
                await wait_settled(sqs, fleet.source, quiet=3, timeout=600)
                service.stop.set()
                stats = await runner
            result = await account("soak", fleet, events)
            result.notes["fanout summary"] = {
                k: stats.summary()[k] for k in ("received", "deleted", "errors", "retries")
            }
            print(result.render())
            report = {"series": series, "accounting": result.render().splitlines()}
            if args.out:
                args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
            middle = len(series) // 2
            for label, sample in (
                ("start", series[0]),
                ("middle", series[middle]),
                ("end", series[-1]),
            ):
                print(
                    f"{label}: t={sample['t']}s rss={sample['rss_kib']} KiB tasks={sample['tasks']}"
                )
            return 0 if not result.lost and not result.misrouted else 1
        finally:
            await fleet.delete()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="events/s published")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--endpoint", default=LOCALSTACK_URL)
    parser.add_argument(
        "--event-kb", type=int, default=0, help="pad every event to this many KiB (1024: 1 MiB)"
    )
    parser.add_argument(
        "--backlog", type=int, default=0, help="events published before fanout starts (--process)"
    )
    parser.add_argument(
        "--budget-mib", type=int, default=0, help="FANOUT_MAX_IN_FLIGHT_BYTES in MiB (--process)"
    )
    parser.add_argument(
        "--process", action="store_true", help="run fanout as a child process (its RSS alone)"
    )
    parser.add_argument("--out", type=Path, help="write the series and accounting as JSON")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
