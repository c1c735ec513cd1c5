"""FIFO target throughput: events/s into one FIFO target with 1, 10 and 1,000 active message
groups against a standard target, in the same run, on the same endpoint (LocalStack).

    python -m bench.fifo --endpoint-url http://127.0.0.1:4566 --events 2000 --repeat 2

Each case gets fresh queues: a standard source preloaded with the same number of ordered
conversation events (fanout.testing.fifo), one rule sending every event to one target, either
standard or FIFO grouped by conversation (1, 10 or 1,000 conversations). fanout runs in this
process (``Service``, default tuning except a 1 s long poll) from the first receive until
every source message is deleted; the FIFO target is read back and its per-group order
checked against the order fanout received the (standard, so unordered) source's messages in:
out-of-order steps must be 0. Cases are interleaved per repeat so machine load hits them
alike; the median events/s per case is reported. Results: bench/results/fifo.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.procs import DUMMY_AWS
from bench.sqsenv import Queues, client, delete_queues, run_prefix
from fanout.aws.client import create_client
from fanout.config import Settings
from fanout.rules import load_rules
from fanout.service import Service
from fanout.testing.fifo import ReceiveRecorder, order_report, ordered_events, read_fifo

RESULTS = Path(__file__).parent / "results"
RULES = """\
targets:
  out:
    queue_url: "{url}"
{fifo}rules:
  - id: everything
    condition: id != null
    targets: [out]
"""
FIFO_BLOCK = "    fifo:\n      message_group_id: detail.eventBody.conversationId\n"


async def one_case(endpoint: str, events: int, groups: int | None, tmp: Path) -> dict[str, Any]:
    """``groups`` None: a standard target."""
    name = "standard" if groups is None else f"fifo-{groups}"
    prefix = f"{run_prefix()}-{name}"
    traffic = ordered_events(groups or 100, max(1, events // (groups or 100)))
    async with client(endpoint) as sqs:
        source = (await sqs.create_queue(QueueName=f"{prefix}-source"))["QueueUrl"]
        dlq = (await sqs.create_queue(QueueName=f"{prefix}-dlq"))["QueueUrl"]
        fifo = groups is not None
        target = (
            await sqs.create_queue(
                QueueName=f"{prefix}-out" + (".fifo" if fifo else ""),
                Attributes={"FifoQueue": "true"} if fifo else {},
            )
        )["QueueUrl"]
        try:
            for start in range(0, len(traffic), 10):
                chunk = traffic[start : start + 10]
                await sqs.send_message_batch(
                    QueueUrl=source,
                    Entries=[{"Id": str(i), "MessageBody": e.body} for i, e in enumerate(chunk)],
                )
            rules_path = tmp / f"{name}.yaml"
            rules_path.write_text(RULES.format(url=target, fifo=FIFO_BLOCK if fifo else ""))
            settings = Settings(
                source_queue_url=source,
                dlq_url=dlq,
                endpoint_url=endpoint,
                region="us-east-1",
                rules=rules_path,
                wait_time_seconds=1,
            )
            async with create_client(settings) as fanout_sqs:
                recorder = ReceiveRecorder(fanout_sqs)
                service = Service(settings, load_rules(rules_path), recorder)  # type: ignore[arg-type]
                runner = asyncio.create_task(service.run())
                while service.stats.received == 0:
                    await asyncio.sleep(0.005)
                started = time.monotonic()
                while service.stats.deleted < len(traffic) and not runner.done():
                    await asyncio.sleep(0.005)
                took = time.monotonic() - started
                service.stop.set()
                stats = await runner
            result: dict[str, Any] = {
                "case": name,
                "events": len(traffic),
                "seconds": round(took, 3),
                "events_per_second": round(len(traffic) / took, 1),
                "send_calls": stats.calls["SendMessageBatch"],
                "entries_per_call": round(
                    len(traffic) / max(1, stats.calls["SendMessageBatch"]), 2
                ),
                "dlq": sum(stats.dlq.values()),
            }
            if fifo:
                # A standard source has no order: the groups must follow the receive order.
                read = await read_fifo(sqs, target)
                report = order_report(read, traffic, rank=recorder.rank())
                result["out_of_order"] = report.out_of_order
                result["lost"] = len(report.lost)
                result["duplicates"] = report.duplicates
            return result
        finally:
            await delete_queues(sqs, Queues(endpoint, source, dlq, {"out": target}))


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"FIFO target throughput ({meta['endpoint']}, {meta['events']} events per case, "
        f"median of {meta['repeat']}; load average at start {meta['loadavg']})",
        "",
        "| target | events/s (median) | runs | entries per SendMessageBatch "
        "| out-of-order | lost | dup |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in meta["cases"]:
        runs = [r for r in rows if r["case"] == case]
        med = statistics.median(r["events_per_second"] for r in runs)
        epc = statistics.median(r["entries_per_call"] for r in runs)
        ooo = sum(r.get("out_of_order", 0) for r in runs)
        lost = sum(r.get("lost", 0) for r in runs)
        dup = sum(r.get("duplicates", 0) for r in runs)
        spread = ", ".join(f"{r['events_per_second']:.0f}" for r in runs)
        fifo = case != "standard"
        lines.append(
            f"| {case} | {med:.0f} | {spread} | {epc:.1f} | "
            f"{ooo if fifo else '-'} | {lost if fifo else '-'} | {dup if fifo else '-'} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    for key, value in DUMMY_AWS.items():  # fanout runs in this process: emulator credentials
        os.environ.setdefault(key, value)
    cases: list[int | None] = [None, *[int(g) for g in args.groups.split(",")]]
    meta = {
        "endpoint": args.endpoint_url,
        "events": args.events,
        "repeat": args.repeat,
        "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "cases": ["standard" if g is None else f"fifo-{g}" for g in cases],
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for groups in cases:
                row = await one_case(args.endpoint_url, args.events, groups, Path(tmp))
                print(row, flush=True)
                rows.append(row)
    table = render(rows, meta)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fifo.json").write_bytes(
        orjson.dumps({"meta": meta, "runs": rows}, option=orjson.OPT_INDENT_2)
    )
    (RESULTS / "fifo.md").write_text(table + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fifo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--endpoint-url", default=os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--groups", default="1,10,1000", help="comma-separated group counts")
    parser.add_argument("--repeat", type=int, default=2)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
