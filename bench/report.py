"""Machine info, the terminal tables, the JSON results file and the PNG plots."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PACKAGES = (
    "fanout",
    "aioboto3",
    "aiobotocore",
    "botocore",
    "boto3",
    "aiohttp",
    "pydantic",
    "pydantic-core",
    "orjson",
    "jmespath",
    "uvloop",
    "matplotlib",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(endpoint: str | None) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    localstack = None
    if endpoint:
        try:
            with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=5) as r:
                localstack = json.loads(r.read()).get("version")
        except OSError:
            localstack = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "localstack": localstack,
        "git_commit": commit,
    }


def _ok(correctness: dict[str, Any]) -> str:
    if correctness.get("ok"):
        return "[green]ok[/green]"
    return (
        f"[red]LOST {correctness['lost']} DUP {correctness['duplicates']} "
        f"MISROUTED {correctness['misrouted']}[/red]"
    )


def closed_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in (
        "system",
        "backend",
        "events",
        "events/s",
        "calls/event",
        "min",
        "CPU µs/event",
        "RSS MB",
        "knobs",
        "check",
    ):
        table.add_column(col, justify="left" if col in ("system", "backend", "knobs") else "right")
    for r in rows:
        k = r["knobs"]
        knobs = f"P{k['pollers']} W{k['workers']} L{k['linger_ms']:g}"
        if k.get("defaults"):  # fanout on its own defaults; naive with its pollers
            naive = k.get("naive_pollers") or k["pollers"]
            knobs = {"naive": f"P{naive}", "sync": ""}.get(r["system"], "defaults")
        table.add_row(
            r["system"] + (f" ({r['note']} events)" if r.get("note") else ""),
            r["backend"],
            str(r["events"]),
            f"{r['events_per_s']:.0f}",
            f"{r['calls_per_event']:.3f}",
            f"{r['min_calls_per_event']:.3f}",
            f"{r['cpu_us_per_event']:.0f}",
            f"{r['maxrss_mb']:.0f}",
            knobs,
            _ok(r["correctness"]),
        )
    return table


def open_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in (
        "system",
        "rate",
        "% of max",
        "linger",
        "achieved",
        "copies",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "p50 to target",
        "p50 collector",
        "check",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        share = r.get("share_of_max")
        table.add_row(
            r.get("system", "fanout"),
            f"{r['rate']:.0f}",
            f"{share * 100:.0f}%" if share else "-",
            f"{r['linger_ms']:g}",
            f"{r['achieved_rate']:.0f}",
            str(r["copies"]),
            f"{r['p50_ms']:.0f}",
            f"{r['p95_ms']:.0f}",
            f"{r['p99_ms']:.0f}",
            f"{r['max_ms']:.0f}",
            f"{r.get('p50_to_target_ms', float('nan')):.0f}",
            f"{r.get('p50_collector_ms', float('nan')):.0f}",
            _ok(r["correctness"]),
        )
    return table


def render(results: dict[str, Any], console: Console) -> None:
    if results.get("closed"):
        console.print(closed_table("Closed loop (throughput)", results["closed"]))
    if results.get("profile"):
        p = results["profile"]
        console.print(
            "fanout CPU per event by stage (stub, asyncio loop, cProfile shares applied to "
            "its unprofiled run): "
            + ", ".join(f"{k} {v:.0f} µs" for k, v in p["us_per_event"].items())
        )
    if results.get("open"):
        console.print(open_table("Open loop (latency), LocalStack", results["open"]))
    sweeps = results.get("sweeps", {})
    for name in ("concurrency", "rules", "size"):
        if sweeps.get(name):
            console.print(closed_table(f"Sweep: {name}", sweeps[name]))
    if sweeps.get("linger"):
        console.print(open_table("Sweep: linger (open loop at 50% of max)", sweeps["linger"]))
    if results.get("latency"):
        from bench.latency import EXTRA_HEADER, TABLE_HEADER, extra_rows, table_rows

        table = Table(title="Round trips (stub, medians of the repeats)")
        for head in TABLE_HEADER:
            table.add_column(head, justify="right")
        for row in table_rows(results["latency"]["summary"]):
            table.add_row(*row)
        console.print(table)
        extra = extra_rows(results["latency"]["summary"])
        if extra:
            table = Table(title="Round trips, more systems (closed loop)")
            for head in EXTRA_HEADER:
                table.add_column(head, justify="right")
            for row in extra:
                table.add_row(*row)
            console.print(table)
    for line in results.get("headline", []):
        console.print(line)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """PNG plots; returns the files written (none when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written: list[Path] = []
    sweeps = results.get("sweeps", {})

    conc = sweeps.get("concurrency") or []
    if conc:
        fig, ax = plt.subplots(figsize=(6, 4))
        by_workers: dict[int, list[tuple[int, float]]] = {}
        for r in conc:
            by_workers.setdefault(r["knobs"]["workers"], []).append(
                (r["knobs"]["pollers"], r["events_per_s"])
            )
        for w, pts in sorted(by_workers.items()):
            pts.sort()
            ax.plot([p for p, _ in pts], [e for _, e in pts], marker="o", label=f"{w} workers")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("pollers (FANOUT_POLLERS)")
        ax.set_ylabel("events/s")
        ax.set_title(f"fanout throughput vs concurrency ({conc[0]['backend']})")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / "throughput_vs_concurrency.png"))

    cdf_sets = [("", results.get("open") or [])]
    if sweeps.get("linger"):
        cdf_sets.append(("_linger", sweeps["linger"]))
    for suffix, rows in cdf_sets:
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rows:
            q = r.get("quantiles_ms") or []
            if q:
                label = (
                    f"{r['rate']:.0f}/s, linger {r['linger_ms']:g} ms"
                    if suffix
                    else f"{r.get('system', 'fanout')} {r['rate']:.0f}/s "
                    f"({(r.get('share_of_max') or 0) * 100:.0f}%)"
                )
                ax.plot(q, [i / (len(q) - 1) for i in range(len(q))], label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (send scheduled -> copy received)")
        ax.set_ylabel("fraction of copies")
        ax.set_title("latency CDF per system and rate (LocalStack)")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / f"latency_cdf{suffix}.png"))

    rules = sweeps.get("rules") or []
    if rules:
        fig, ax = plt.subplots(figsize=(6, 4))
        pts = sorted((int(r["extra"]["rules"]), r["cpu_us_per_event"]) for r in rules)
        ax.plot([p for p, _ in pts], [c for _, c in pts], marker="o")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rules")
        ax.set_ylabel("CPU µs per event")
        ax.set_title("fanout CPU per event vs rule count (stub)")
        ax.grid(alpha=0.3)
        written.append(_save(fig, out / "cpu_vs_rules.png"))
    if results.get("latency"):
        from bench.latency import plot

        png = plot(results["latency"], out)
        if png is not None:
            written.append(png)
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
