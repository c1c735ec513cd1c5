"""Batch fill and send tasks under a long throttle (issue 22 item 4), before and after the
Batcher takes a batch only when a send slot is free.

One target (`voice`, behind the fault proxy on moto) answers every SendMessageBatch with
RequestThrottled for ``--seconds`` while events arrive at ``--rate``/s; fanout runs in-process
(``fanout.testing.accounting.run_service``) with FANOUT_RETRY_MAX_SECONDS=60. Measured: entries
per SendMessageBatch to `voice` that SQS accepted (batch fill), calls, and the most
``send voice`` tasks alive at once (sampled every 10 ms). Each tree runs in its own process
(``PYTHONPATH=<tree>``), interleaved ``--repeat`` times:

    python -m bench.throttle_fill --baseline-tree /tmp/main-snapshot [--seconds 10] [--rate 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


async def child(seconds: float, rate: float, events_n: int) -> dict[str, Any]:
    import fanout
    from fanout.aws.urls import queue_name
    from fanout.local.run import moto_server
    from fanout.testing.accounting import (
        account,
        client,
        make_events,
        make_fleet,
        publish,
        run_service,
        wait_settled,
    )
    from fanout.testing.faultproxy import During, ErrorResponse, FaultProxy, Tap

    accepted: list[int] = []
    throttled_calls = 0
    most_tasks = 0
    async with moto_server() as endpoint, client(endpoint) as sqs:
        fleet = await make_fleet(sqs, endpoint, Path(tempfile.mkdtemp()), "fill")
        voice = queue_name(fleet.targets["voice"])
        events = make_events(events_n, seed=5)

        def on_reply(req: Any, reply: Any) -> None:
            nonlocal throttled_calls
            payload = reply.parsed() or {}
            if payload.get("Successful"):
                accepted.append(len(req.body.get("Entries", [])))
            else:
                throttled_calls += 1

        async with FaultProxy(fleet.endpoint) as proxy:
            proxy.add(Tap("SendMessageBatch", on_reply=on_reply, queue=voice))
            window = During(
                ErrorResponse(
                    "SendMessageBatch", 403, "RequestThrottled", True, times=None, queue=voice
                ),
                start=0.5,
                duration=seconds,
            )

            def open_window() -> None:
                window.restart()
                proxy.add(window)

            publisher = asyncio.create_task(publish(sqs, fleet.source, events, rate=rate))

            async def settled() -> None:
                async def sample() -> None:
                    nonlocal most_tasks
                    while True:
                        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "send voice"]
                        most_tasks = max(most_tasks, len(tasks))
                        await asyncio.sleep(0.01)

                sampler = asyncio.create_task(sample())
                try:
                    await wait_settled(
                        sqs, fleet.source, quiet=1.5, timeout=400, ready=publisher.done
                    )
                finally:
                    sampler.cancel()

            started = time.monotonic()
            await run_service(
                fleet,
                proxy,
                until=settled,
                started=open_window,
                timeout=480,
                pollers=1,
                retry_max_seconds=60,
            )
            elapsed = time.monotonic() - started
        result = await account("throttle fill", fleet, events)
        await fleet.delete()
    return {
        "fanout": str(Path(fanout.__file__).parent.parent),
        "events": events_n,
        "throttle_seconds": seconds,
        "voice_accepted_calls": len(accepted),
        "voice_copies": sum(accepted),
        "voice_entries_per_call": round(sum(accepted) / max(len(accepted), 1), 2),
        "voice_full_batches": sum(1 for n in accepted if n == 10),
        "voice_throttled_calls": throttled_calls,
        "most_send_voice_tasks": most_tasks,
        "dlq_records": len(result.dlq_records),
        "fully_delivered": result.fully_delivered,
        "elapsed_s": round(elapsed, 1),
    }


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    from bench.procs import DUMMY_AWS

    env = {**os.environ, **DUMMY_AWS, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [sys.executable, str(HERE), "--child", "--seconds", str(args.seconds)]
    argv += ["--rate", str(args.rate), "--events", str(args.events)]
    out = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-tree", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=HERE.parent / "results" / "adaptive" / "throttle_fill.json"
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(child(args.seconds, args.rate, args.events))))
        return 0
    here = HERE.parent.parent
    trees = {"after": here} if args.baseline_tree is None else {"before": args.baseline_tree}
    trees["after"] = here
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        for label, tree in trees.items():
            row = {"tree": label, "repeat": repeat, **run_tree(tree.resolve(), args)}
            row["load_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(row), flush=True)
            runs.append(row)
    summary = {
        label: {
            key: statistics.median(r[key] for r in runs if r["tree"] == label)
            for key in (
                "voice_entries_per_call",
                "voice_accepted_calls",
                "voice_throttled_calls",
                "most_send_voice_tasks",
            )
        }
        for label in trees
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "config": vars(args)
                | {"out": str(args.out), "baseline_tree": str(args.baseline_tree)},
                "summary": summary,
                "runs": runs,
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
