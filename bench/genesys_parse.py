"""CPU per ``parse_event``: this tree's validation (catalog-driven numeric checks) against a
baseline ``fanout/events.py`` from git (default ``main``), in one process, on the same bodies,
in interleaved repeats so machine load hits both alike.

    python -m bench.genesys_parse [--ref main] [--events 5000] [--repeats 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from fanout import events as current
from fanout.local.synthetic import GenesysEventGenerator


def _baseline(ref: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:fanout/events.py"], check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("bench_events_baseline", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves annotations through sys.modules
    exec(compile(source, f"{ref}:fanout/events.py", "exec"), module.__dict__)  # noqa: S102
    return module


def _time(parse: Callable[[str], Any], bodies: list[str]) -> float:
    start = time.perf_counter()
    for body in bodies:
        parse(body)
    return (time.perf_counter() - start) / len(bodies) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.genesys_parse")
    parser.add_argument("--ref", default="main")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    bodies = GenesysEventGenerator(seed=args.seed).bodies(args.events)  # the bench mix
    base = _baseline(args.ref)
    for body in bodies:  # both accept every body of the mix
        current.parse_event(body)
        base.parse_event(body)
    runs: dict[str, list[float]] = {"baseline": [], "current": []}
    for i in range(args.repeats):
        order = [("baseline", base.parse_event), ("current", current.parse_event)]
        for name, parse in order if i % 2 == 0 else order[::-1]:
            runs[name].append(_time(parse, bodies))
    med = {k: statistics.median(v) for k, v in runs.items()}
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    result = {
        "events": args.events,
        "repeats": args.repeats,
        "ref": args.ref,
        "us_per_parse_median": med,
        "us_per_parse_runs": runs,
        "ratio_current_to_baseline": med["current"] / med["baseline"],
        "loadavg": load,
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.out:
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
