"""Tracing overhead: CPU per event of the fanout process with OpenTelemetry off and on.

    python -m bench.tracing_overhead [--events 1500] [--repeats 3]
                                     [--stub | --endpoint URL] [--profile DIR]

SQS is bench/stub.py (``--stub``: instant, its own process, so the CPU measured is fanout's
alone), an endpoint (``--endpoint``, e.g. LocalStack on 127.0.0.1:4566) or an embedded moto
server; a stand-in OTLP/HTTP collector on 127.0.0.1 accepts and drops the exports. Each
measured run is a separate child process running the real Service over the repo's rules.yaml
with synthetic Genesys traffic preloaded in the source queue. The
child measures its own process CPU (all threads: the span processor's export thread included)
at steady state: from the first 10% of events deleted until all are. Modes run interleaved,
median of the repeats; moto's CPU is in the parent and not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "rules.yaml"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# (label, OTEL_* variables); the collector endpoint is added at run time.
MODES: list[tuple[str, dict[str, str]]] = [
    ("off (nothing configured)", {}),
    ("metrics only", {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "otlp"}),
    ("traces+metrics, sampling 1.0", {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}),
    (
        "  same, no aiohttp-client spans",
        {
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "aiohttp-client",
        },
    ),
    (
        "traces+metrics, ratio 0.1",
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    ),
]


class _Collector(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and drops them (an empty protobuf response is a valid one)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


async def prepare(endpoint: str, events: int, seed: int) -> dict[str, Any]:
    """Fresh queues for one run, with ``events`` synthetic bodies in the source queue."""
    from fanout.aws.client import create_client
    from fanout.config import Settings
    from fanout.local.run import create_queues
    from fanout.local.synthetic import DEMO_MIX, GenesysEventGenerator
    from fanout.rules import load_rules_unresolved

    rules = load_rules_unresolved(RULES)
    settings = Settings(endpoint_url=endpoint, region="us-east-1")
    async with create_client(settings) as client:
        source, dlq, targets = await create_queues(
            client, rules, prefix=f"bench-{uuid.uuid4().hex[:8]}-"
        )
        generator = GenesysEventGenerator(seed=seed, mix=DEMO_MIX, clock=time.time)
        for start in range(0, events, 10):
            bodies = generator.bodies(min(10, events - start))
            await client.send_message_batch(
                QueueUrl=source,
                Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)],
            )
    return {"source": source, "dlq": dlq, "targets": targets, "events": events}


def stub_spec(endpoint: str, events: int) -> dict[str, Any]:
    """Queue URLs on the stub (it accepts any); its pool already holds the bodies."""
    from fanout.rules import load_rules_unresolved

    base = f"{endpoint}/000000000000/bench"
    rules = load_rules_unresolved(RULES)
    targets = {
        name: f"{base}-{name}" + (".fifo" if t.fifo is not None else "")
        for name, t in rules.targets.items()
    }
    return {"source": f"{base}-source", "dlq": f"{base}-dlq", "targets": targets, "events": events}


def stub_pool(path: Path, events: int, seed: int) -> Path:
    from fanout.local.synthetic import DEMO_MIX, GenesysEventGenerator

    generator = GenesysEventGenerator(seed=seed, mix=DEMO_MIX, clock=time.time)
    bodies = [b.replace("\n", " ") for b in generator.bodies(events)]  # one body per line
    path.write_text("\n".join(bodies))
    return path


async def cleanup(endpoint: str, spec: dict[str, Any]) -> None:
    from fanout.aws.client import create_client
    from fanout.config import Settings

    async with create_client(Settings(endpoint_url=endpoint, region="us-east-1")) as client:
        for url in [spec["source"], spec["dlq"], *spec["targets"].values()]:
            await client.delete_queue(QueueUrl=url)


async def child(spec: dict[str, Any]) -> dict[str, float]:
    """One measured run (in its own process)."""
    from fanout.aws.checks import check_queues
    from fanout.aws.client import create_clients
    from fanout.config import Settings
    from fanout.observability.telemetry import setup_telemetry
    from fanout.rules import load_rules_unresolved
    from fanout.runtime.heap import settle_heap
    from fanout.service import Service

    telemetry = setup_telemetry()
    rules = load_rules_unresolved(RULES).with_queue_urls(spec["targets"])
    settings = Settings(
        source_queue_url=spec["source"],
        dlq_url=spec["dlq"],
        endpoint_url=spec["endpoint"],
        region="us-east-1",
        wait_time_seconds=1,
        # Fuller batches: fewer SQS calls per event, less sensitive to the emulator's speed.
        linger_ms=100,
        pollers=1,  # moto hands a message to concurrent receives twice: keep counts exact
    )
    async with create_clients(settings) as (sdk, client):  # data plane: FANOUT_SQS_CLIENT
        limits = await check_queues(sdk, settings, rules)
        service = Service(settings, rules, client, queue_limits=limits, telemetry=telemetry)
        settle_heap()  # as `fanout run` does before its pipeline starts
        run = asyncio.create_task(service.run())
        # Steady state: one-time costs (lazy imports, first export, connection set-up) fall
        # in the warm-up share of the events, which is not measured.
        warmup = spec["events"] // 10
        while service.stats.deleted < warmup:
            await asyncio.sleep(0.05)
        # The steady state only, sampled by py-spy from outside: no instrumentation overhead
        # (cProfile's per-call hooks would inflate exactly the small calls in question).
        profiler = (
            subprocess.Popen(  # noqa: ASYNC220 - returns at once; py-spy samples our own pid
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--nonblocking",
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--pid",
                    str(os.getpid()),
                    "--output",
                    spec["profile"],
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if spec.get("profile")
            else None
        )
        cpu0, wall0, done0 = time.process_time(), time.perf_counter(), service.stats.deleted
        calls0 = sum(service.stats.calls.values())
        while service.stats.deleted < spec["events"]:
            await asyncio.sleep(0.05)
        cpu1, wall1, done1 = time.process_time(), time.perf_counter(), service.stats.deleted
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            profiler.wait(60)
        calls = sum(service.stats.calls.values()) - calls0
        service.stop.set()
        await run
    telemetry.shutdown()
    return {
        "cpu_s": cpu1 - cpu0,
        "wall_s": wall1 - wall0,
        "events": done1 - done0,
        "calls": calls,
    }


def run_child(
    spec: dict[str, Any],
    mode_env: dict[str, str],
    collector_url: str,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One child run; with ``profile``, under cProfile (its CPU numbers are then inflated)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FANOUT_"))}
    env.update(CREDENTIALS)
    env["FANOUT_LOG_LEVEL"] = "WARNING"
    if mode_env:
        env.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector_url,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_METRIC_EXPORT_INTERVAL": "5000",
                **mode_env,
            }
        )
    if profile is not None:
        spec = {**spec, "profile": str(profile)}
    out = subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "bench.tracing_overhead", "--child", orjson.dumps(spec).decode()],
        env=env,
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = orjson.loads(out.stdout.splitlines()[-1])
    return result


def run_on_stub(
    events: int,
    seed: int,
    mode_env: dict[str, str],
    collector_url: str,
    profile: Path | None = None,
) -> dict[str, Any]:
    from bench.procs import stub_server

    with tempfile.TemporaryDirectory() as tmp:
        pool = stub_pool(Path(tmp) / "pool.jsonl", events, seed)
        with stub_server(pool, REPO) as (endpoint, _):
            spec = stub_spec(endpoint, events)
            spec["endpoint"] = endpoint
            return run_child(spec, mode_env, collector_url, profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--endpoint", help="SQS endpoint to use instead of an embedded moto")
    parser.add_argument("--stub", action="store_true", help="SQS is bench/stub.py (instant)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory: one py-spy profile (raw stacks) per mode on the stub, not measured; "
        "needs py-spy (pip install py-spy)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from fanout.cli import run_async  # the loop fanout runs on (FANOUT_EVENT_LOOP)

        print(orjson.dumps(run_async(child(orjson.loads(args.child)))).decode())
        return

    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        with collector() as collector_url:
            for index, (label, mode_env) in enumerate(MODES):
                path = args.profile / f"mode{index}.txt"
                run_on_stub(args.events, 0, mode_env, collector_url, path)
                print(f"{label}: {path}", file=sys.stderr)
        return

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per SQS request otherwise
    os.environ.update(CREDENTIALS)
    server = None
    if args.stub:
        endpoint = ""
    elif args.endpoint:
        endpoint = args.endpoint
    else:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    cpu_per_event: dict[str, list[float]] = {label: [] for label, _ in MODES}
    try:
        with collector() as collector_url:
            for repeat in range(args.repeats):
                for label, mode_env in MODES:
                    if args.stub:
                        result = run_on_stub(args.events, repeat, mode_env, collector_url)
                    else:
                        spec = asyncio.run(prepare(endpoint, args.events, seed=repeat))
                        spec["endpoint"] = endpoint
                        try:
                            result = run_child(spec, mode_env, collector_url)
                        finally:
                            asyncio.run(cleanup(endpoint, spec))
                    us = result["cpu_s"] / result["events"] * 1e6
                    cpu_per_event[label].append(us)
                    print(
                        f"  run {repeat + 1} {label:32s} {us:7.1f} us CPU/event "
                        f"({result['events'] / result['wall_s']:.0f} events/s wall, "
                        f"{result['calls'] / result['events']:.2f} SQS calls/event)",
                        file=sys.stderr,
                    )
    finally:
        if server is not None:
            server.stop()

    base = statistics.median(cpu_per_event[MODES[0][0]])
    print(f"tracing overhead, {args.events} events per run, median of {args.repeats} runs")
    print(f"{'mode':34s} {'CPU us/event':>12s} {'vs off':>8s}")
    for label, values in cpu_per_event.items():
        median = statistics.median(values)
        print(f"{label:34s} {median:12.1f} {100 * (median / base - 1):+7.1f}%")


if __name__ == "__main__":
    main()
