"""Micro-benchmark: one JMESPath rule condition per evaluation, library vs compiled.

    .venv/bin/python bench/jmespath_micro.py [--rules rules.yaml] [--events 500] [--repeat 7]

Conditions: every rule's condition in rules.yaml plus a few other shapes rules use. Events:
the synthetic Genesys generator's envelopes (fixed seed). Columns are µs per evaluation, the
median of --repeat passes over all events: `jmespath.search(expr, event)`,
`jmespath.compile(expr).search(event)` (parsed once), and
`fanout.rules.jmescompile.compile_expression(expr).search(event)`. Numbers, not assertions: the
machine is shared, so run it a few times and compare within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jmespath
import yaml

from fanout.local.synthetic import GenesysEventGenerator
from fanout.rules.jmescompile import compile_expression

EXTRA_CONDITIONS = [
    "starts_with(source, 'aws.partner/genesys.com')",
    "detail.eventBody.mediaType == 'VOICE' && detail.eventBody.direction == 'INBOUND'",
    "to_number(detail.eventBody.interactingDurationMs) >= `300000`",
    "length(detail.eventBody.participants || `[]`) > `1`",
    "!contains(['CALLBACK', 'EMAIL'], detail.eventBody.mediaType)",
    "length(detail.eventBody.participants[?purpose == 'agent'] || `[]`) > `0`",
]


def _per_eval_us(fn: Callable[[Any], Any], events: list[Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for event in events:
            fn(event)
        samples.append((time.perf_counter() - start) / len(events) * 1e6)
    return min(samples)  # timeit practice: the least-disturbed pass on a shared machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=Path(__file__).parents[1] / "rules.yaml")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    rules = yaml.safe_load(args.rules.read_text(encoding="utf-8"))["rules"]
    conditions = [(r["id"], r["condition"]) for r in rules]
    conditions += [(f"extra-{i + 1}", c) for i, c in enumerate(EXTRA_CONDITIONS)]
    generator = GenesysEventGenerator(seed=7)
    events = [generator.event() for _ in range(args.events)]

    print(f"{args.events} synthetic events, best of {args.repeat} passes, µs per evaluation")
    header = (
        f"{'condition':<20} {'search':>8} {'parsed':>8} {'compiled':>9} "
        f"{'vs search':>10} {'vs parsed':>10}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    parsed_ratios = []
    for name, condition in conditions:
        parsed = jmespath.compile(condition)
        compiled = compile_expression(condition)
        for event in events:  # same answers, or the numbers mean nothing
            assert compiled.search(event) == parsed.search(event), (name, event)
        lib = _per_eval_us(lambda e, c=condition: jmespath.search(c, e), events, args.repeat)
        pre = _per_eval_us(parsed.search, events, args.repeat)
        ours = _per_eval_us(compiled.search, events, args.repeat)
        ratios.append(lib / ours)
        parsed_ratios.append(pre / ours)
        flag = "" if compiled.fully_compiled else " (partly interpreted)"
        print(
            f"{name:<20} {lib:8.2f} {pre:8.2f} {ours:9.3f} {lib / ours:9.0f}x "
            f"{pre / ours:9.0f}x{flag}"
        )
    for label, values in (("jmespath.search", ratios), ("jmespath.compile", parsed_ratios)):
        print(
            f"speedup vs {label}: min {min(values):.0f}x, median {statistics.median(values):.0f}x"
        )


if __name__ == "__main__":
    main()
