"""RSS per in-flight MiB: drain N large events through ``python -m fanout run`` at two byte
budgets and record the child's peak RSS (its own VmHWM, bench/procs.py) and peak in-flight bytes.

    .venv/bin/python -m bench.memory --events 120 --size-kb 900 --budgets 16 64
    .venv/bin/python -m bench.memory --baseline-tree ../main     # before/after, interleaved

``--baseline-tree`` runs another checkout's fanout (same venv) before this tree's at each
budget, so both are measured in one run under the same load.

SQS is a moto server in this process (its memory is not the child's); every queue allows
1 MiB messages. The target is slowed (``--send-delay``, through the fault proxy) so that
in-flight bodies pile up to the budget. Results: bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aioboto3
import orjson
from botocore.config import Config
from moto.server import ThreadedMotoServer

from bench.procs import Child, child_env
from fanout.testing.faultproxy import Delay, FaultProxy

MIB = 1024 * 1024
RULES = """
targets:
  all: {{queue_url: "{target}"}}
rules:
  - id: all
    condition: "id != ''"
    targets: [all]
"""


def event(i: int, size: int) -> str:
    body = {
        "version": "0",
        "id": f"mem-{i}-{uuid.uuid4()}",
        "detail-type": "Interaction Completed",
        "source": "genesys.cloud",
        "detail": {"id": str(i), "channel": "voice", "notes": "n" * size},
    }
    return orjson.dumps(body).decode()


async def one_run(
    endpoint: str, args: argparse.Namespace, budget_mib: int, work: Path, tree: Path
) -> Any:
    session = aioboto3.Session()
    async with session.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        config=Config(retries={"total_max_attempts": 1}),
    ) as sqs:
        prefix = f"mem{uuid.uuid4().hex[:8]}-"
        attrs = {"MaximumMessageSize": str(MIB)}
        urls = {
            n: (await sqs.create_queue(QueueName=prefix + n, Attributes=attrs))["QueueUrl"]
            for n in ("source", "dlq", "target")
        }
        for i in range(args.events):
            await sqs.send_message(
                QueueUrl=urls["source"], MessageBody=event(i, args.size_kb * 1000)
            )
        rules = work / f"rules-{budget_mib}.yaml"
        rules.write_text(RULES.format(target=urls["target"]))
        summary = work / f"summary-{budget_mib}.json"
        async with FaultProxy(endpoint) as proxy:
            proxy.add(Delay("SendMessageBatch", args.send_delay, times=None))
            argv = [
                sys.executable, "-m", "fanout", "run", "--rules", str(rules),
                "--source-queue-url", urls["source"], "--dlq-url", urls["dlq"],
                "--endpoint-url", proxy.url, "--region", "us-east-1",
                "--max-in-flight-bytes", str(budget_mib * MIB), "--wait-time-seconds", "1",
                "--exit-when-idle", "3", "--summary-json", str(summary),
            ]  # fmt: skip
            env = {"PYTHONPATH": str(tree)}  # with cwd: `-m fanout` imports that tree's fanout
            if args.mmap_threshold:
                env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
            child = Child(argv, child_env(env), tree)
            result = await asyncio.to_thread(child.wait, 600)
        for url in urls.values():
            await sqs.delete_queue(QueueUrl=url)
    if result.returncode != 0:
        raise SystemExit(f"fanout failed ({result.returncode}): {result.stderr_tail}")
    data = orjson.loads(summary.read_bytes())
    return {
        "tree": str(tree),
        "budget_mib": budget_mib,
        "events": args.events,
        "event_kb": args.size_kb,
        "mmap_threshold": args.mmap_threshold,
        "received": data["received"],
        "deleted": data["deleted"],
        "dlq": data["dlq"],
        "errors": data["errors"],
        "peak_in_flight_mib": round(data["peak_in_flight_bytes"] / MIB, 1),
        "peak_rss_mib": round(result.maxrss_kb / 1024, 1),
        "wall_seconds": round(result.wall, 1),
        "cpu_seconds": round(result.cpu, 2),  # the child's user + system
    }


def fit(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Peak RSS = base + slope * peak in-flight MiB, through the lowest and highest budget."""
    low, high = runs[0], runs[-1]
    slope = (high["peak_rss_mib"] - low["peak_rss_mib"]) / max(
        high["peak_in_flight_mib"] - low["peak_in_flight_mib"], 1e-9
    )
    base = low["peak_rss_mib"] - slope * low["peak_in_flight_mib"]
    return {"rss_mib_per_in_flight_mib": round(slope, 2), "base_rss_mib": round(base, 1)}


async def main_async(args: argparse.Namespace) -> int:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    here = Path.cwd().resolve()
    trees = [here] if args.baseline_tree is None else [args.baseline_tree.resolve(), here]
    endpoint = f"http://{host}:{port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [
                await one_run(endpoint, args, b, Path(tmp), tree)
                for b in args.budgets
                for tree in trees
            ]
    finally:
        server.stop()
    result: dict[str, Any] = {
        "command": "python -m bench.memory " + " ".join(sys.argv[1:]),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        **fit([r for r in runs if r["tree"] == str(here)]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if args.baseline_tree is not None:
        result["baseline"] = fit([r for r in runs if r["tree"] != str(here)])
    print(json.dumps(result, indent=2))
    if args.out:
        await asyncio.to_thread(Path(args.out).write_text, json.dumps(result, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--events", type=int, default=120)
    parser.add_argument("--size-kb", type=int, default=900, help="body size of each event")
    parser.add_argument("--budgets", type=int, nargs="+", default=[16, 64], help="MiB")
    parser.add_argument("--send-delay", type=float, default=0.5, help="seconds per send call")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=0,
        help="MALLOC_MMAP_THRESHOLD_ for the child (glibc; 0: glibc's dynamic default)",
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout whose fanout runs before this one's at each budget",
    )
    parser.add_argument("--out", default="bench/results/memory.json")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
