"""Soak run: steady traffic through fanout on LocalStack, sampling RSS and asyncio task count.

    .venv/bin/python -m bench.soak --minutes 10 --rate 20 --out soak.json

fanout runs in this process (the same Service the CLI runs), so the task count is
``len(asyncio.all_tasks())`` of its event loop (minus the publisher and sampler tasks). RSS is
this process's (fanout plus the publisher, which holds nothing between batches). At the end
the source is drained and every event is accounted for (fanout/testing/accounting.py):
lost must be 0.
Uses uniquely named queues on the shared LocalStack and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from fanout.aws.checks import check_queues
from fanout.aws.client import create_clients
from fanout.service import Service
from fanout.testing.accounting import (
    LOCALSTACK_URL,
    account,
    client,
    localstack_up,
    make_events,
    make_fleet,
    publish,
    wait_settled,
)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


async def soak(args: argparse.Namespace) -> int:
    if not localstack_up(args.endpoint):
        print(f"LocalStack is not reachable at {args.endpoint}", file=sys.stderr)
        return 2
    duration = args.minutes * 60
    events = make_events(int(duration * args.rate), seed=args.seed)
    async with client(args.endpoint) as sqs:
        fleet = await make_fleet(sqs, args.endpoint, Path(tempfile.mkdtemp()), "soak")
        try:
            settings = fleet.settings(
                args.endpoint, pollers=4, visibility_timeout_seconds=30, linger_ms=20
            )
            async with create_clients(settings) as (checks_sqs, fanout_sqs):
                limits = await check_queues(checks_sqs, settings, fleet.rules)
                service = Service(settings, fleet.rules, fanout_sqs, queue_limits=limits)
                runner = asyncio.create_task(service.run(), name="fanout")
                publisher = asyncio.create_task(
                    publish(sqs, fleet.source, events, rate=args.rate), name="publisher"
                )
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
    parser.add_argument("--out", type=Path, help="write the series and accounting as JSON")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
