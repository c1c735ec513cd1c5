"""Adaptive concurrency at real round trips (issue 18): fanout on default settings and the naive
consumer on the stub at 0/20/50 ms (+-25% jitter per call), interleaved in one run.

    python -m bench.adaptive [--events 10000] [--latencies 0 20 50] [--repeat 3] \\
        [--naive-pollers 16] [--out bench/results/adaptive/adaptive.json]

Per round trip: events/s (median of the repeats), calls per event, peak pollers and calls in
flight; fanout's rate as a ratio of its own 0 ms rate and of the naive consumer's, same run.
Targets (issue 18): 20 ms >= 0.7x own and >= 3x naive; 50 ms >= 0.5x and >= 4x; calls per event
at 20 ms within 10% of 0 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.closed import Knobs, closed_loop, prepare
from bench.workload import REPO, Workload


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    prep = prepare(Workload(args.events, args.seed, None, args.rules), Path(tempfile.mkdtemp()))
    # fanout on its defaults (FANOUT_POLLERS 4 ...), wait 2 s as the suite; naive: its pollers.
    extra = tuple(tuple(kv.split("=", 1)) for kv in args.fanout_env)
    fanout_knobs = Knobs(extra_env=extra)  # type: ignore[arg-type]
    naive_knobs = Knobs(pollers=args.naive_pollers)
    runs: list[dict[str, Any]] = []
    load = [os.getloadavg()[0]]
    for repeat in range(args.repeat):
        for latency in args.latencies:
            systems = ["fanout", "naive"] if latency > 0 or args.naive_at_zero else ["fanout"]
            for system in systems:
                knobs = fanout_knobs if system == "fanout" else naive_knobs
                result = await closed_loop(system, "stub", prep, knobs, latency_ms=latency)
                row = result.row()
                row["latency_ms"] = latency
                row["repeat"] = repeat
                runs.append(row)
                load.append(os.getloadavg()[0])
                print(
                    f"{system:<7} {latency:>4.0f} ms  {result.events_per_s:>8.0f} ev/s  "
                    f"{result.calls_per_event:.3f} calls/ev  ok={result.ok}  "
                    f"pollers<={row['extra'].get('peak_pollers')}  "
                    f"concurrency<={row['extra'].get('peak_concurrency')}",
                    flush=True,
                )
    table = []
    own0 = _median(
        [r for r in runs if r["system"] == "fanout" and r["latency_ms"] == 0], "events_per_s"
    )
    calls0 = _median(
        [r for r in runs if r["system"] == "fanout" and r["latency_ms"] == 0], "calls_per_event"
    )
    for latency in args.latencies:
        mine = [r for r in runs if r["system"] == "fanout" and r["latency_ms"] == latency]
        naive = [r for r in runs if r["system"] == "naive" and r["latency_ms"] == latency]
        rate = _median(mine, "events_per_s")
        naive_rate = _median(naive, "events_per_s") if naive else None
        calls = _median(mine, "calls_per_event")
        table.append(
            {
                "latency_ms": latency,
                "fanout_events_per_s": rate,
                "naive_events_per_s": naive_rate,
                "vs_own_0ms": round(rate / own0, 3),
                "vs_naive": round(rate / naive_rate, 2) if naive_rate else None,
                "fanout_calls_per_event": calls,
                "calls_vs_0ms": round(calls / calls0 - 1, 4),
                "naive_calls_per_event": _median(naive, "calls_per_event") if naive else None,
                "all_correct": all(r["correctness"].get("ok") for r in mine + naive),
            }
        )
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_average_1m": {"start": round(load[0], 2), "max": round(max(load), 2)},
        "table": table,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", default="3", help="'shipped' or a rule count (issue 18: 3)")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 20.0, 50.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-pollers", type=int, default=16)
    parser.add_argument("--naive-at-zero", action="store_true")
    parser.add_argument(
        "--fanout-env",
        nargs="*",
        default=[],
        help="KEY=VALUE for fanout, e.g. FANOUT_MAX_POLLERS=16",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "adaptive" / "adaptive.json"
    )
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for row in results["table"]:
        print(json.dumps(row))
    print("load average (1 min):", results["load_average_1m"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
