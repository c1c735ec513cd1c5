"""The ``latency`` part of the suite: fanout and the naive consumer on the stub at SQS round
trips of 0, 10, 20, 50 and 100 ms (``--round-trips``; every answer late by the round trip,
+-25% jitter, drawn per call), in the same run, interleaved, ``--repeat`` times.

Closed loop per (system, round trip): events/s over the drain window, CPU per event (net of an
idle run at the same round trip), SQS calls per event. Then an open loop per (system, round
trip) at ``--latency-open-share`` (50%) of *that system's* median closed-loop events/s there:
the stub makes its bodies due at that rate and records, per copy, the time from the body being
due to the copy's SendMessageBatch being answered (p50/p99), and per event the same to its
DeleteMessageBatch. A system that cannot keep up is charged for it (no coordinated omission).

    python -m bench suite --parts latency --defaults --events 5000 --repeat 3 \\
        --out bench/results/latency
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.closed import ClosedResult, Prepared

SYSTEMS = ("fanout", "naive")
ROUND_TRIPS_MS = (0.0, 10.0, 20.0, 50.0, 100.0)
JITTER = 0.25  # the stub's default: each call's round trip is uniform in +-25% of it
MIN_OPEN_EVENTS = 200
# Issue 18's targets at default settings: events/s vs fanout's own 0 ms rate and vs naive at
# the same round trip; calls per event at 20 ms within 10% of the 0 ms figure.
TARGETS = {20.0: (0.7, 3.0), 50.0: (0.5, 4.0)}
CALLS_TOLERANCE = 0.10

# (system, prep, round trip ms, rate or None) -> one run's result
Runner = Callable[[str, Prepared, float, float | None], Awaitable[ClosedResult]]


def processes_system(n: int) -> str:
    """The name of fanout run with ``--processes n`` in this part (``fanout-p4``)."""
    return f"fanout-p{n}"


def processes_of(system: str) -> int | None:
    """``n`` for ``fanout-p<n>``, else None."""
    head, _, n = system.partition("-p")
    return int(n) if head == "fanout" and n.isdigit() else None


def schedule(
    round_trips: Sequence[float], repeat: int, systems: Sequence[str] = SYSTEMS
) -> list[tuple[int, float, str]]:
    """The closed-loop runs in order: each repeat walks the round trips, the systems' order
    alternating between repeats so none always runs first (on a warmer machine)."""
    runs = []
    for r in range(repeat):
        order = tuple(systems) if r % 2 == 0 else tuple(reversed(systems))
        runs += [(r, rtt, system) for rtt in round_trips for system in order]
    return runs


def median_run(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The run with the median events/s (its CPU and calls come with it)."""
    ranked = sorted(rows, key=lambda r: float(r["events_per_s"]))
    if not ranked:
        raise ValueError("no runs")
    return ranked[len(ranked) // 2]


def summarise(closed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per (system, round trip): the median run's events/s, CPU and calls per event,
    the spread over the repeats, and the ratios to fanout's own 0 ms rate (``vs_instant``, only
    when 0 ms was measured) and to naive's at the same round trip (``vs_naive``)."""
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for row in closed:
        groups.setdefault((row["system"], float(row["extra"]["latency_ms"])), []).append(row)
    lines: dict[tuple[str, float], dict[str, Any]] = {}
    for (system, rtt), rows in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        mid = median_run(rows)
        lines[(system, rtt)] = {
            "system": system,
            "latency_ms": rtt,
            "runs": len(rows),
            "events_per_s": mid["events_per_s"],
            "events_per_s_runs": sorted(float(r["events_per_s"]) for r in rows),
            "cpu_us_per_event": mid["cpu_us_per_event"],
            "calls_per_event": mid["calls_per_event"],
            "all_ok": all(bool(r["correctness"].get("ok")) for r in rows),
        }
    for (system, rtt), line in lines.items():
        instant = lines.get((system, 0.0))
        naive = lines.get(("naive", rtt))
        line["vs_instant"] = (
            round(line["events_per_s"] / instant["events_per_s"], 3)
            if instant and instant["events_per_s"]
            else None
        )
        line["vs_naive"] = (
            round(line["events_per_s"] / naive["events_per_s"], 3)
            if system != "naive" and naive and naive["events_per_s"]
            else None
        )
    return list(lines.values())


def open_rate(summary: Sequence[Mapping[str, Any]], system: str, rtt: float, share: float) -> float:
    """The open-loop rate for ``system`` at ``rtt``: ``share`` of its own median max there."""
    for line in summary:
        if line["system"] == system and line["latency_ms"] == rtt:
            return float(line["events_per_s"]) * share
    raise KeyError((system, rtt))


def open_events(rate: float, seconds: float, available: int) -> int:
    """Events for an open-loop run: ``seconds`` at ``rate``, at least MIN_OPEN_EVENTS, at most
    what the workload holds."""
    return max(1, min(available, max(MIN_OPEN_EVENTS, round(rate * seconds))))


def headline(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    """Issue 18's targets against the medians (reported, not asserted)."""
    by = {(line["system"], line["latency_ms"]): line for line in summary}
    out = []
    for rtt, (own, peer) in TARGETS.items():
        line = by.get(("fanout", rtt))
        if line is None or line["vs_instant"] is None or line["vs_naive"] is None:
            continue
        ok = line["vs_instant"] >= own and line["vs_naive"] >= peer
        out.append(
            f"latency {rtt:g} ms: fanout {line['events_per_s']:.0f} ev/s = "
            f"{line['vs_instant']:.2f}x its 0 ms rate, {line['vs_naive']:.2f}x naive - "
            f"{'meets' if ok else '[red]misses[/red]'} the {own:g}x / {peer:g}x target"
        )
    instant, at20 = by.get(("fanout", 0.0)), by.get(("fanout", 20.0))
    if instant and at20 and instant["calls_per_event"]:
        excess = at20["calls_per_event"] / instant["calls_per_event"] - 1
        out.append(
            f"latency 20 ms: fanout {at20['calls_per_event']:.3f} calls/event vs "
            f"{instant['calls_per_event']:.3f} at 0 ms ({excess * 100:+.0f}%) - "
            f"{'meets' if excess <= CALLS_TOLERANCE else '[red]misses[/red]'} the 10% target"
        )
    return out


async def measure(
    run: Runner,
    prep: Prepared,
    round_trips: Sequence[float],
    repeat: int,
    open_share: float,
    open_seconds: float,
    say: Callable[[str], None],
    extra_systems: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole part: closed loops (interleaved, repeated), then one open loop per system and
    round trip at ``open_share`` of that system's median max there. ``extra_systems`` (e.g.
    ``fanout-p4``) run in the closed loops only."""
    closed = []
    for r, rtt, system in schedule(round_trips, repeat, (*SYSTEMS, *extra_systems)):
        result = await run(system, prep, rtt, None)
        result.extra.update(latency_ms=rtt, repeat=r)
        closed.append(result.row())
    summary = summarise(closed)
    opened = []
    if open_share > 0:
        for rtt in round_trips:
            for system in SYSTEMS:
                rate = open_rate(summary, system, rtt, open_share)
                n = open_events(rate, open_seconds, len(prep.bodies))
                result = await run(system, prep.first(n), rtt, rate)
                result.extra.update(latency_ms=rtt, share_of_max=open_share)
                row = result.row()
                opened.append(row)
                x = row["extra"]
                say(
                    f"  open {system:6s} {rtt:>5g} ms at {rate:>7.0f}/s (achieved "
                    f"{row['events_per_s']:.0f}): copy p50 {x['copy_p50_ms']:.0f} p99 "
                    f"{x['copy_p99_ms']:.0f} ms, ack p50 {x['ack_p50_ms']:.0f} p99 "
                    f"{x['ack_p99_ms']:.0f} ms ({x['copies_timed']} copies)"
                )
                for line in summary:
                    if line["system"] == system and line["latency_ms"] == rtt:
                        line["open"] = {
                            k: x[k]
                            for k in (
                                "rate",
                                "copy_p50_ms",
                                "copy_p99_ms",
                                "ack_p50_ms",
                                "ack_p99_ms",
                            )
                        } | {"achieved": row["events_per_s"], "ok": row["correctness"]["ok"]}
    return {
        "round_trips_ms": list(round_trips),
        "jitter": JITTER,
        "repeat": repeat,
        "open_share": open_share,
        "open_seconds": open_seconds,
        "closed": closed,
        "open": opened,
        "summary": summary,
    }


def table_rows(summary: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The summary as table cells (README / console): one row per round trip, both systems."""
    by = {(line["system"], line["latency_ms"]): line for line in summary}
    rows = []
    for rtt in sorted({line["latency_ms"] for line in summary}):
        f, n = by.get(("fanout", rtt)), by.get(("naive", rtt))
        if f is None or n is None:
            continue

        def lat(line: Mapping[str, Any]) -> str:
            o = line.get("open")
            return f"{o['copy_p50_ms']:,.0f} / {o['copy_p99_ms']:,.0f}" if o else ""

        rows.append(
            [
                f"{rtt:g} ms",
                f"{f['events_per_s']:,.0f}",
                f"{n['events_per_s']:,.0f}",
                f"{f['vs_naive']:.2f}x" if f["vs_naive"] is not None else "",
                f"{f['vs_instant']:.2f}" if f["vs_instant"] is not None else "",
                f"{f['cpu_us_per_event']:,.0f} / {n['cpu_us_per_event']:,.0f}",
                f"{f['calls_per_event']:.3f} / {n['calls_per_event']:.3f}",
                lat(f),
                lat(n),
            ]
        )
    return rows


TABLE_HEADER = [
    "round trip",
    "fanout ev/s",
    "naive ev/s",
    "fanout / naive",
    "fanout / its 0 ms",
    "CPU µs/event (fanout / naive)",
    "calls/event (fanout / naive)",
    "fanout p50 / p99 ms (open, 50%)",
    "naive p50 / p99 ms (open, 50%)",
]


def extra_rows(summary: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Systems besides fanout and naive (``fanout-p<n>``): one row per system and round trip."""
    return [
        [
            line["system"],
            f"{line['latency_ms']:g} ms",
            f"{line['events_per_s']:,.0f}",
            f"{line['vs_naive']:.2f}x" if line["vs_naive"] is not None else "",
            f"{line['cpu_us_per_event']:,.0f}",
            f"{line['calls_per_event']:.3f}",
        ]
        for line in summary
        if line["system"] not in SYSTEMS
    ]


EXTRA_HEADER = ["system", "round trip", "ev/s", "vs naive", "CPU µs/event", "calls/event"]


def markdown(summary: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    extra = extra_rows(summary)
    if extra:
        lines += ["", "| " + " | ".join(EXTRA_HEADER) + " |", "|" + "---|" * len(EXTRA_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in extra]
    return "\n".join(lines) + "\n"


def plot(result: Mapping[str, Any], out: Path) -> Path | None:
    """events/s against round trip for both systems (the repeats' spread as error bars), and the
    open-loop p50/p99 per copy; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    summary = result["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for system in dict.fromkeys(line["system"] for line in summary):
        mine = sorted((s for s in summary if s["system"] == system), key=lambda s: s["latency_ms"])
        if not mine:
            continue
        x = [s["latency_ms"] for s in mine]
        y = [s["events_per_s"] for s in mine]
        low = [yy - min(s["events_per_s_runs"]) for yy, s in zip(y, mine, strict=True)]
        high = [max(s["events_per_s_runs"]) - yy for yy, s in zip(y, mine, strict=True)]
        left.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=system)
        opened = [s for s in mine if s.get("open")]
        if opened:
            ox = [s["latency_ms"] for s in opened]
            (line,) = right.plot(
                ox, [s["open"]["copy_p50_ms"] for s in opened], marker="o", label=f"{system} p50"
            )
            right.plot(
                ox,
                [s["open"]["copy_p99_ms"] for s in opened],
                marker="^",
                linestyle="--",
                color=line.get_color(),
                label=f"{system} p99",
            )
    left.set_xlabel("SQS round trip, ms (stub, +-25% jitter)")
    left.set_ylabel("events/s (closed loop, median of repeats)")
    left.set_title("events/s vs round trip, one process each")
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)
    left.legend()
    right.set_xlabel("SQS round trip, ms")
    right.set_ylabel("ms, due -> copy accepted by its target")
    right.set_yscale("log")
    right.set_title(f"per-copy latency, open loop at {result['open_share'] * 100:.0f}% of max")
    right.grid(alpha=0.3)
    if right.get_legend_handles_labels()[0]:
        right.legend()
    fig.tight_layout()
    path = out / "events_vs_round_trip.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
