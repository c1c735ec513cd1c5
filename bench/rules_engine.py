"""Rule engine bench: µs per event vs rule count, library vs compiled vs compiled + index.

    .venv/bin/python -m bench.rules_engine [--sizes 3,10,100,1000] [--events 2000] [--repeats 5]

Rule sets come from bench/rulesets.py (realistic Genesys routes; the same routes as JMESPath
conditions and as EventBridge patterns), events from fanout.local.synthetic (fixed seed). Each event
is matched against the whole set with ``match: all`` semantics; per-event times give the median
and p95, and of ``--repeats`` passes the least disturbed one (lowest median) is reported, as
timeit does: the machine is shared. Methods:

* ``jmespath.search``: the library, ``jmespath.search(condition, event)`` per rule (its parse
  cache holds 128 expressions, so large sets re-parse: that is what naive code pays);
* ``library pre-parsed``: ``jmespath.compile(condition)`` once, ``.search(event)`` per rule;
* ``compiled``: fanout.rules.jmescompile closures, every rule;
* ``compiled + index``: ``RuleSet.match`` (fanout.rules.index picks the candidates);
* ``patterns`` / ``patterns + index``: the same for the EventBridge-pattern flavour.

Every method's matches are checked against the others on every event. Results: a table on
stdout, ``bench/results/rules_engine.json`` and ``bench/results/rules_engine.png``. Goals are
reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jmespath

from fanout.local.synthetic import GenesysEventGenerator
from fanout.rules import RuleSet, load_rules
from fanout.rules.jmescompile import compile_expression
from fanout.rules.model import is_truthy
from fanout.testing.rulesets import Flavour, ruleset_yaml

RESULTS = Path(__file__).resolve().parent / "results"
ENV = {
    f"{t}_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/123456789012/bench-{t.lower()}"
    for t in ("CRITICAL", "HIGH", "STANDARD")
}
Matcher = Callable[[Mapping[str, Any]], tuple[str, ...]]


def load(n: int, flavour: Flavour, seed: int, folder: Path) -> RuleSet:
    path = folder / f"{flavour}-{n}.yaml"
    path.write_text(ruleset_yaml(n, flavour=flavour, seed=seed), encoding="utf-8")
    return load_rules(path, env=ENV)


def every_rule(rules: RuleSet, test: Callable[[Any, Mapping[str, Any]], bool]) -> Matcher:
    """Every rule in file order, as RuleSet.match did before the index."""
    items = [(rule, rule.id) for rule in rules.rules]
    first = rules.mode == "first"

    def match(event: Mapping[str, Any]) -> tuple[str, ...]:
        matched = []
        for rule, rule_id in items:
            if test(rule, event):
                matched.append(rule_id)
                if rule.stop or first:
                    break
        return tuple(matched)

    return match


def methods(rules: RuleSet, flavour: Flavour) -> dict[str, Matcher]:
    def indexed(event: Mapping[str, Any]) -> tuple[str, ...]:
        return rules.match(event).rule_ids

    if flavour == "pattern":
        return {
            "patterns": every_rule(rules, lambda r, e: r.compiled.matches(e)),
            "patterns + index": indexed,
        }
    parsed = {r.id: jmespath.compile(r.condition) for r in rules.rules}
    compiled = {r.id: compile_expression(r.condition) for r in rules.rules}
    return {
        "jmespath.search": every_rule(
            rules, lambda r, e: is_truthy(jmespath.search(r.condition, e))
        ),
        "library pre-parsed": every_rule(rules, lambda r, e: is_truthy(parsed[r.id].search(e))),
        "compiled": every_rule(rules, lambda r, e: is_truthy(compiled[r.id].search(e))),
        "compiled + index": indexed,
    }


def time_per_event(
    match: Matcher, events: list[dict[str, Any]], repeats: int
) -> tuple[float, float, list[tuple[str, ...]]]:
    """(median µs, p95 µs) of the least disturbed pass, and the matches of the last pass."""
    best: tuple[float, float] | None = None
    results: list[tuple[str, ...]] = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        samples = []
        results = []
        for event in events:
            start = clock()
            matched = match(event)
            samples.append(clock() - start)
            results.append(matched)
        samples.sort()
        median = samples[len(samples) // 2] / 1000
        p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))] / 1000
        if best is None or median < best[0]:
            best = (median, p95)
    assert best is not None
    return best[0], best[1], results


def single_conditions(rules: RuleSet, events: list[dict[str, Any]], repeats: int) -> list[Any]:
    """µs per evaluation of each condition alone: jmespath.search vs compiled."""
    out = []
    for rule in rules.rules:
        compiled = compile_expression(rule.condition)
        cond = rule.condition

        def lib(e: Any, cond: str = cond) -> Any:
            return jmespath.search(cond, e)

        timings = {}
        for name, fn in (("jmespath.search", lib), ("compiled", compiled.search)):
            passes = []
            for _ in range(repeats):
                start = time.perf_counter()
                for event in events:
                    fn(event)
                passes.append((time.perf_counter() - start) / len(events) * 1e6)
            timings[name] = min(passes)
        out.append(
            {
                "rule": rule.id,
                "jmespath.search_us": round(timings["jmespath.search"], 3),
                "compiled_us": round(timings["compiled"], 3),
                "speedup": round(timings["jmespath.search"] / timings["compiled"], 1),
            }
        )
    return out


def index_stats(rules: RuleSet, events: list[dict[str, Any]]) -> dict[str, Any]:
    candidates = [rules.index.candidates(e).bit_count() for e in events]
    return {
        "indexed_rules": sum(1 for r in rules.rules if r.plan.indexed),
        "complete_rules": sum(1 for r in rules.rules if r.plan.complete),
        "mean_candidates": round(statistics.fmean(candidates), 2),
        "mean_matches": round(statistics.fmean(len(rules.match(e).rule_ids) for e in events), 2),
    }


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: pip install -e '.[bench]' for the plot)")
        return False
    flavours = sorted({r["flavour"] for r in results})
    fig, axes = plt.subplots(1, len(flavours), figsize=(6 * len(flavours), 4.5), squeeze=False)
    for ax, flavour in zip(axes[0], flavours, strict=True):
        rows = [r for r in results if r["flavour"] == flavour]
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = sorted(
                (r["rules"], r["median_us"], r["p95_us"]) for r in rows if r["method"] == method
            )
            xs, med, p95 = zip(*pts, strict=True)
            (line,) = ax.plot(xs, med, marker="o", label=f"{method} (median)")
            ax.plot(xs, p95, linestyle=":", color=line.get_color(), alpha=0.7)
        ax.axhline(25, color="grey", linewidth=0.8, linestyle="--", label="goal: 25 µs at 1,000")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rules in the set")
        ax.set_ylabel("µs per event (dotted: p95)")
        ax.set_title(f"{flavour} rules, match: all")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,10,100,1000", help="rule counts (comma-separated)")
    parser.add_argument("--flavours", default="jmespath,pattern", help="jmespath and/or pattern")
    parser.add_argument("--events", type=int, default=2000, help="synthetic events per pass")
    parser.add_argument("--repeats", type=int, default=5, help="passes; the best is reported")
    parser.add_argument(
        "--max-library-evals",
        type=int,
        default=100_000,
        help="cap on rule evaluations per pass for the slow library methods (fewer events)",
    )
    parser.add_argument("--seed", type=int, default=0, help="rule-set and event seed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    flavours: list[Flavour] = [f for f in ("jmespath", "pattern") if f in args.flavours]

    gen = GenesysEventGenerator(seed=args.seed + 1)
    events = [gen.event() for _ in range(args.events)]
    load_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    single: list[Any] = []
    agree = True
    with tempfile.TemporaryDirectory() as tmp:
        for flavour in flavours:
            for n in sizes:
                rules = load(n, flavour, args.seed, Path(tmp))
                stats[f"{flavour}-{n}"] = index_stats(rules, events[:500])
                reference: list[tuple[str, ...]] | None = None
                for method, match in methods(rules, flavour).items():
                    slow = method in ("jmespath.search", "library pre-parsed", "patterns")
                    count = len(events)
                    if slow:
                        count = max(50, min(count, args.max_library_evals // max(n, 1)))
                    median, p95, got = time_per_event(match, events[:count], args.repeats)
                    if reference is None or len(got) > len(reference):
                        agree &= reference is None or got[: len(reference)] == reference
                        reference = got
                    else:
                        agree &= got == reference[: len(got)]
                    results.append(
                        {
                            "flavour": flavour,
                            "rules": n,
                            "method": method,
                            "median_us": round(median, 2),
                            "p95_us": round(p95, 2),
                            "events": count,
                        }
                    )
                    print(
                        f"{flavour:8} {n:5} rules  {method:20} median {median:10.2f} µs"
                        f"  p95 {p95:10.2f} µs  ({count} events)",
                        flush=True,
                    )
            if flavour == "jmespath":
                rules10 = load(10, "jmespath", args.seed, Path(tmp))
                single = single_conditions(rules10, events[:500], args.repeats)

    def cost(flavour: str, method: str, n: int) -> float | None:
        for r in results:
            if (r["flavour"], r["method"], r["rules"]) == (flavour, method, n):
                return float(r["median_us"])
        return None

    goals: dict[str, Any] = {}
    if single:
        ratio = statistics.median(s["speedup"] for s in single)
        goals["single condition: compiled vs jmespath.search (median speedup, goal >= 10x)"] = ratio
    for flavour, method in (("jmespath", "compiled + index"), ("pattern", "patterns + index")):
        at_1000, at_10 = cost(flavour, method, 1000), cost(flavour, method, 10)
        if at_1000 is not None:
            goals[f"{flavour}: 1,000 rules, median µs/event (goal <= 25)"] = at_1000
        if at_1000 is not None and at_10:
            goals[f"{flavour}: cost at 1,000 / cost at 10 (goal <= 3)"] = round(at_1000 / at_10, 2)

    table = render_table(results, sizes)
    print()
    print(table)
    print("\nGoals (reported, not asserted):")
    for name, value in goals.items():
        print(f"  {name}: {value}")
    print(f"All methods agree on every event's matches: {'yes' if agree else 'NO'}")
    doc = {
        "bench": "rules_engine",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "events": args.events,
        "repeats": args.repeats,
        "seed": args.seed,
        "results": results,
        "index": stats,
        "single_condition": single,
        "goals": goals,
        "methods_agree": agree,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rules_engine.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (args.out / "rules_engine.md").write_text(table + "\n", encoding="utf-8")
    if plot(results, args.out / "rules_engine.png"):
        print(f"wrote {args.out / 'rules_engine.json'}, .md and .png")


def render_table(results: list[dict[str, Any]], sizes: list[int]) -> str:
    """Markdown: one row per (flavour, method), median / p95 µs per event per rule count."""
    head = "| rules | method | " + " | ".join(f"{n:,} rules" for n in sizes) + " |"
    lines = [head, "|" + "---|" * (len(sizes) + 2)]
    rows: dict[tuple[str, str], dict[int, str]] = {}
    for r in results:
        cell = f"{r['median_us']:,.1f} / {r['p95_us']:,.1f}"
        rows.setdefault((r["flavour"], r["method"]), {})[r["rules"]] = cell
    for (flavour, method), cells in rows.items():
        lines.append(
            f"| {flavour} | {method} | " + " | ".join(cells.get(n, "-") for n in sizes) + " |"
        )
    lines.append("\nµs per event, median / p95 (best of the passes), match: all.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
