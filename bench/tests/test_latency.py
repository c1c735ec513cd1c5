"""The latency part's pieces: option parsing, its result math, the stub's round trip and open-loop
schedule, and the child-process bookkeeping (no throughput is asserted here)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench import latency
from bench.cli import build_parser
from bench.closed import Knobs, open_latency, quantile
from bench.procs import Child, child_env, stub_server
from bench.stub import Stub
from bench.stub import build_parser as stub_parser
from fanout.testing.faultproxy import Delay

REPO = Path(__file__).resolve().parents[2]


# --- options ---------------------------------------------------------------------------


def test_latency_options_parse() -> None:
    args = build_parser().parse_args(
        ["suite", "--parts", "latency", "--defaults", "--round-trips", "0,20,50"]
    )
    assert args.parts == ["latency"]
    assert args.defaults is True
    assert args.round_trips == [0.0, 20.0, 50.0]
    assert args.latency_open_share == 0.5
    assert args.localstack_latency_ms == 0.0
    assert args.naive_pollers is None


def test_latency_part_is_in_the_default_parts_and_round_trips() -> None:
    args = build_parser().parse_args(["suite"])
    assert "latency" in args.parts
    assert args.round_trips == [0.0, 10.0, 20.0, 50.0, 100.0]
    assert args.defaults is False


def test_defaults_sets_no_fanout_knob() -> None:
    env = Knobs(defaults=True, pollers=9, extra_env=(("FANOUT_X", "1"),)).env()
    assert env == {"FANOUT_LOG_LEVEL": "WARNING", "FANOUT_X": "1"}
    tuned = Knobs(pollers=9).env()
    assert tuned["FANOUT_POLLERS"] == "9" and "FANOUT_MAX_IN_FLIGHT" in tuned


def test_stub_open_loop_options() -> None:
    args = stub_parser().parse_args(["--pool", "p", "--latency-ms", "50", "--rate", "200"])
    assert (args.latency_ms, args.jitter, args.rate, args.start_delay) == (50.0, 0.25, 200.0, 1.0)
    assert stub_parser().parse_args(["--pool", "p"]).rate is None


# --- result math -----------------------------------------------------------------------


def _row(system: str, rtt: float, eps: float, cpu: float = 100.0, calls: float = 0.25) -> Any:
    return {
        "system": system,
        "events_per_s": eps,
        "cpu_us_per_event": cpu,
        "calls_per_event": calls,
        "correctness": {"ok": True},
        "extra": {"latency_ms": rtt},
    }


def test_schedule_interleaves_and_alternates_the_order() -> None:
    runs = latency.schedule([0.0, 20.0], 2)
    assert runs == [
        (0, 0.0, "fanout"),
        (0, 0.0, "naive"),
        (0, 20.0, "fanout"),
        (0, 20.0, "naive"),
        (1, 0.0, "naive"),
        (1, 0.0, "fanout"),
        (1, 20.0, "naive"),
        (1, 20.0, "fanout"),
    ]


def test_processes_systems_are_named_and_scheduled() -> None:
    assert latency.processes_system(4) == "fanout-p4"
    assert latency.processes_of("fanout-p4") == 4
    assert latency.processes_of("fanout") is None and latency.processes_of("naive") is None
    runs = latency.schedule([20.0], 2, ("fanout", "naive", "fanout-p2"))
    assert [s for _, _, s in runs] == [
        "fanout",
        "naive",
        "fanout-p2",
        "fanout-p2",
        "naive",
        "fanout",
    ]


def test_extra_systems_get_their_own_rows() -> None:
    rows = [_row("fanout", 20.0, 1000), _row("naive", 20.0, 500), _row("fanout-p2", 20.0, 1900)]
    summary = latency.summarise(rows)
    assert latency.extra_rows(summary) == [["fanout-p2", "20 ms", "1,900", "3.80x", "100", "0.250"]]
    assert "| fanout-p2 | 20 ms |" in latency.markdown(summary)


def test_summary_takes_the_median_run_and_the_ratios() -> None:
    rows = [
        _row("fanout", 0.0, 9000),
        _row("fanout", 0.0, 10000, cpu=80),
        _row("fanout", 0.0, 11000),
        _row("naive", 0.0, 2000),
        _row("fanout", 20.0, 1000, cpu=150, calls=0.3),
        _row("fanout", 20.0, 3000, cpu=120, calls=0.28),
        _row("fanout", 20.0, 2000, cpu=130, calls=0.29),
        _row("naive", 20.0, 1000),
    ]
    by = {(s["system"], s["latency_ms"]): s for s in latency.summarise(rows)}
    f20 = by[("fanout", 20.0)]
    # median by events/s, and that run's CPU and calls (not medians of each column)
    assert (f20["events_per_s"], f20["cpu_us_per_event"], f20["calls_per_event"]) == (
        2000,
        130,
        0.29,
    )
    assert f20["events_per_s_runs"] == [1000.0, 2000.0, 3000.0]
    assert f20["vs_instant"] == 0.2 and f20["vs_naive"] == 2.0
    assert by[("fanout", 0.0)]["cpu_us_per_event"] == 80
    assert by[("naive", 20.0)]["vs_naive"] is None
    assert by[("naive", 20.0)]["vs_instant"] == 0.5
    assert latency.open_rate(list(by.values()), "fanout", 20.0, 0.5) == 1000.0


def test_summary_without_an_instant_run_has_no_instant_ratio() -> None:
    (line,) = latency.summarise([_row("fanout", 50.0, 700)])
    assert line["vs_instant"] is None and line["vs_naive"] is None


def test_headline_verdicts_follow_the_targets() -> None:
    rows = [
        _row("fanout", 0.0, 10000, calls=0.25),
        _row("naive", 20.0, 1000),
        _row("fanout", 20.0, 7000, calls=0.27),  # 0.7x instant, 7x naive, +8% calls
        _row("naive", 50.0, 500),
        _row("fanout", 50.0, 1500),  # 0.15x instant: misses
    ]
    lines = latency.headline(latency.summarise(rows))
    assert any(line.startswith("latency 20 ms") and "- meets the 0.7x" in line for line in lines)
    assert any(line.startswith("latency 50 ms") and "misses" in line for line in lines)
    assert any("calls/event" in line and "meets the 10%" in line for line in lines)


def test_open_events_bounds() -> None:
    assert latency.open_events(1000.0, 8.0, 20000) == 8000
    assert latency.open_events(10.0, 8.0, 20000) == latency.MIN_OPEN_EVENTS
    assert latency.open_events(1000.0, 8.0, 5000) == 5000


def test_open_latency_quantiles() -> None:
    stats = {"rate": 100.0, "copy_latency_ms": [float(x) for x in range(100, 0, -1)]}
    got = open_latency(stats)
    assert got["copies_timed"] == 100
    assert got["copy_p50_ms"] == 51.0 and got["copy_p99_ms"] == 99.0 and got["copy_max_ms"] == 100
    assert len(got["copy_quantiles_ms"]) == 101
    assert quantile([], 50) != quantile([], 50)  # NaN for no values


def test_markdown_table_has_one_row_per_round_trip() -> None:
    rows = [_row(s, rtt, 1000) for rtt in (0.0, 20.0) for s in ("fanout", "naive")]
    text = latency.markdown(latency.summarise(rows))
    assert text.count("\n") == 4 and "| 20 ms | 1,000 | 1,000 | 1.00x | 1.00 |" in text


# --- the stub: round trip and open-loop schedule ----------------------------------------


def _call(endpoint: str, op: str, payload: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    req = urllib.request.Request(
        endpoint + "/",
        data=json.dumps(payload).encode(),
        headers={
            "X-Amz-Target": f"AmazonSQS.{op}",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read() or b"{}")
    return time.perf_counter() - start, body


def test_stub_latency_is_honoured(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"id": "e1"}')
    url = "http://127.0.0.1/000000000000/q"
    with stub_server(pool, REPO, latency_ms=50) as (endpoint, _):
        _call(endpoint, "GetQueueAttributes", {"QueueUrl": url})  # connection warm
        took = [_call(endpoint, "GetQueueAttributes", {"QueueUrl": url})[0] for _ in range(5)]
    # every call waits 50 ms +-25%: at least 37.5 ms
    assert min(took) >= 0.037, took


def test_stub_round_trip_jitter_stays_in_its_band() -> None:
    stub = Stub([], 0.5, latency=0.05, jitter=0.25, rng=random.Random(1))
    draws = [stub.latency * stub.rng.uniform(1 - stub.jitter, 1 + stub.jitter) for _ in range(500)]
    assert 0.0375 <= min(draws) < 0.04 and 0.06 < max(draws) <= 0.0625


def test_stub_open_loop_serves_messages_when_due_and_times_them() -> None:
    pool = [json.dumps({"id": f"e{i}"}) for i in range(6)]

    async def scenario() -> tuple[list[int], float, dict[str, Any]]:
        stub = Stub(pool, max_wait=5.0, rate=20.0, start_delay=0.0)
        sizes = []
        first = await stub.receive({"MaxNumberOfMessages": 10})  # t0 = now: e0 due
        sizes.append(len(first["Messages"]))
        start = time.monotonic()
        second = await stub.receive({"MaxNumberOfMessages": 10, "WaitTimeSeconds": 5})
        waited = time.monotonic() - start
        sizes.append(len(second["Messages"]))
        await asyncio.sleep(0.3)  # e2..e5 due by then (at 100-250 ms)
        rest = await stub.receive({"MaxNumberOfMessages": 10})
        sizes.append(len(rest["Messages"]))
        handles = [m["ReceiptHandle"] for r in (first, second, rest) for m in r["Messages"]]
        stub.send_batch(
            {
                "QueueUrl": "http://h/000000000000/bench-a",
                "Entries": [{"Id": "0", "MessageBody": pool[5]}],
            }
        )
        stub.delete_batch(
            {"Entries": [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]}
        )
        return sizes, waited, stub.stats()

    sizes, waited, stats = asyncio.run(scenario())
    # only e0 is due at first; e1 50 ms later (more if the loop woke late); the rest by 300 ms
    assert sizes[0] == 1 and sizes[1] >= 1 and sum(sizes) == 6
    # the long poll came back when e1 was due (50 ms), not at its 5 s deadline
    assert waited < 4.0
    assert len(stats["ack_latency_ms"]) == 6 and len(stats["copy_latency_ms"]) == 1
    # e5 was due at 250 ms and copied after the 300 ms sleep: charged from its due time
    assert 0 <= stats["copy_latency_ms"][0] < 1000
    assert stats["copies"]["bench-a"] == {"e5": 1}


def test_closed_loop_stub_serves_everything_at_once() -> None:
    pool = [json.dumps({"id": f"e{i}"}) for i in range(12)]

    async def scenario() -> int:
        stub = Stub(pool, max_wait=0.1)
        got = await stub.receive({"MaxNumberOfMessages": 10})
        return len(got["Messages"])

    assert asyncio.run(scenario()) == 10


# --- child processes and the LocalStack latency proxy -----------------------------------


def test_child_that_exited_is_not_reaped_before_wait() -> None:
    child = Child([sys.executable, "-c", "print('{}')"], child_env({}), REPO)
    deadline = time.monotonic() + 30
    while child.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not child.running()
    child.terminate()  # after exit: no signal to a reaped pid, no reaping either
    res = child.wait(timeout=10)  # wait4 still finds it: no ChildProcessError
    assert res.returncode == 0 and res.lines == ["{}"]
    child.terminate()  # after wait as well


def test_delay_jitter_draws_within_its_band() -> None:
    rule = Delay(None, 0.02, times=None, jitter=0.25)
    draws = [rule._seconds() for _ in range(300)]
    assert min(draws) >= 0.015 and max(draws) <= 0.025 and len(set(draws)) > 100
    assert Delay(None, 0.02)._seconds() == 0.02


@pytest.mark.parametrize("bad", [["--latency-ms", "-1"], ["--jitter", "1"], ["--rate", "0"]])
def test_stub_rejects_bad_options(tmp_path: Path, bad: list[str]) -> None:
    from bench.stub import main

    pool = tmp_path / "p.jsonl"
    pool.write_text("")
    with pytest.raises(SystemExit, match=r"bench\.stub"):
        main(["--pool", str(pool), *bad])


def test_latency_proxy_delays_every_call(tmp_path: Path) -> None:
    """--localstack-latency-ms's proxy (FaultProxy + a jittered Delay), here in front of the
    instant stub: each call through it takes the added round trip."""
    from fanout.testing.faultproxy import FaultProxy

    pool = tmp_path / "pool.jsonl"
    pool.write_text("")
    url = "http://127.0.0.1/000000000000/q"

    async def through(endpoint: str) -> list[float]:
        async with FaultProxy(endpoint) as proxy:
            proxy.add(Delay(None, 0.05, times=None, jitter=latency.JITTER))
            took = [
                (
                    await asyncio.to_thread(
                        _call, proxy.url, "GetQueueAttributes", {"QueueUrl": url}
                    )
                )[0]
                for _ in range(4)
            ]
            assert proxy.calls["GetQueueAttributes"] == 4
            return took

    with stub_server(pool, REPO) as (endpoint, _):
        took = asyncio.run(through(endpoint))
    assert min(took) >= 0.037, took
