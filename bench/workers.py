"""Is FANOUT_WORKERS a throughput knob? fanout with 1, 4 and 16 workers on the stub, in one run.

    python -m bench.workers [--events 10000] [--repeat 3] [--workers 1,4,16]

Each repeat runs every worker count once, interleaved, against a fresh stub (closed loop: the
events are preloaded, fanout drains them with --exit-when-idle). Reported per count: the median
events/s and CPU per event, and both as a ratio to the first count of the same run (absolute
numbers mean little on a loaded machine). Results: bench/results/workers.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from bench.closed import ClosedResult, Knobs, closed_loop, prepare
from bench.workload import REPO, Workload

RESULTS = REPO / "bench" / "results"


async def measure(counts: list[int], events: int, repeat: int, seed: int) -> dict[str, Any]:
    prep = prepare(Workload(events, seed))
    runs: dict[int, list[ClosedResult]] = {c: [] for c in counts}
    for round_ in range(repeat):
        for count in counts:
            result = await closed_loop("fanout", "stub", prep, replace(Knobs(), workers=count))
            if not result.ok:
                raise SystemExit(f"workers={count}: delivery check failed: {result.correctness}")
            runs[count].append(result)
            print(
                f"round {round_ + 1} workers={count}: {result.events_per_s:.0f} ev/s, "
                f"{result.cpu_us_per_event:.0f} us CPU/event",
                flush=True,
            )
    base = counts[0]
    base_eps = statistics.median(r.events_per_s for r in runs[base])
    base_cpu = statistics.median(r.cpu_us_per_event for r in runs[base])
    rows = []
    for count in counts:
        eps = statistics.median(r.events_per_s for r in runs[count])
        cpu = statistics.median(r.cpu_us_per_event for r in runs[count])
        rows.append(
            {
                "workers": count,
                "events_per_s": [r.events_per_s for r in runs[count]],
                "cpu_us_per_event": [r.cpu_us_per_event for r in runs[count]],
                "median_events_per_s": eps,
                "median_cpu_us_per_event": cpu,
                "events_per_s_ratio": round(eps / base_eps, 3),
                "cpu_ratio": round(cpu / base_cpu, 3),
            }
        )
    return {
        "events": events,
        "repeat": repeat,
        "seed": seed,
        "backend": "stub",
        "loadavg": [f"{x:.2f}" for x in os.getloadavg()],
        "cpus": len(os.sched_getaffinity(0)),
        "rows": rows,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"# FANOUT_WORKERS on the stub: {result['events']} events, {result['repeat']} "
        f"interleaved rounds, load average {' '.join(result['loadavg'])}",
        "",
        "| workers | events/s (median) | ratio | CPU us/event (median) | ratio |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['workers']} | {row['median_events_per_s']:.0f} | "
            f"{row['events_per_s_ratio']:.2f} | {row['median_cpu_us_per_event']:.0f} | "
            f"{row['cpu_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default="1,4,16", help="comma-separated worker counts")
    parser.add_argument("--out", type=Path, default=RESULTS / "workers")
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",")]
    result = asyncio.run(measure(counts, args.events, args.repeat, args.seed))
    args.out.with_suffix(".json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    text = render(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
