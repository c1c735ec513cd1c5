"""Tracing overhead: CPU per event of the fanout process with OpenTelemetry off and on.

    python -m bench.tracing_overhead [--events 1500] [--repeats 3] [--stub | --endpoint URL]
        [--modes off,metrics,0.0,0.01,0.1,1.0] [--baseline TREE] [--out FILE.json]
        [--profile DIR | --cprofile DIR] [--span-split | --worker-micro]

SQS is bench/stub.py (``--stub``: instant, its own process, so the CPU measured is fanout's
alone), an endpoint (``--endpoint``, e.g. LocalStack on 127.0.0.1:4566) or an embedded moto
server; a stand-in OTLP/HTTP collector on 127.0.0.1 accepts and drops the exports. Each
measured run is a separate child process running the real Service over the repo's rules.yaml
with synthetic Genesys traffic preloaded in the source queue. The
child measures its own process CPU (all threads: the span processor's export thread included)
at steady state: from the first 10% of events deleted until all are. Modes run interleaved,
median of the repeats; moto's CPU is in the parent and not counted.

``--baseline TREE`` runs every mode a second time with the fanout package of another source
tree (e.g. ``git archive main | tar -x -C /tmp/main``), interleaved with this tree's runs, so
before/after is a ratio within one run. ``--cprofile DIR`` writes one cProfile of each mode's
steady state (and tree) and prints the functions with the most own time. ``--span-split``
measures the SDK's cost per recorded span in-process: creation, attributes, end, OTLP encoding.
``--worker-micro`` times only ``Worker.handle`` per event in each mode's child (no SQS).
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
_RATIO = "parentbased_traceidratio"
# name -> (label, OTEL_* variables); the collector endpoint is added at run time.
MODES: dict[str, tuple[str, dict[str, str]]] = {
    "off": ("off (nothing configured)", {}),
    "metrics": (
        "metrics only",
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "otlp"},
    ),
    "0.0": (
        "traces+metrics, ratio 0.0",
        {"OTEL_TRACES_SAMPLER": _RATIO, "OTEL_TRACES_SAMPLER_ARG": "0.0"},
    ),
    "0.01": (
        "traces+metrics, ratio 0.01",
        {"OTEL_TRACES_SAMPLER": _RATIO, "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    ),
    "0.1": (
        "traces+metrics, ratio 0.1",
        {"OTEL_TRACES_SAMPLER": _RATIO, "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    ),
    "1.0": ("traces+metrics, sampling 1.0", {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}),
    "1.0-nohttp": (
        "  same, no aiohttp-client spans",
        {
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "aiohttp-client",
        },
    ),
}
DEFAULT_MODES = "off,metrics,0.0,0.01,0.1,1.0,1.0-nohttp"


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
        cprofile = None
        if spec.get("cprofile"):
            import cProfile

            cprofile = cProfile.Profile(time.thread_time)  # CPU of the loop thread, not waits
            cprofile.enable()
        cpu0, wall0, done0 = time.process_time(), time.perf_counter(), service.stats.deleted
        calls0 = sum(service.stats.calls.values())
        while service.stats.deleted < spec["events"]:
            await asyncio.sleep(0.05)
        cpu1, wall1, done1 = time.process_time(), time.perf_counter(), service.stats.deleted
        if cprofile is not None:
            cprofile.disable()
            cprofile.dump_stats(spec["cprofile"])
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


def worker_micro(spec: dict[str, Any]) -> dict[str, float]:
    """The worker's share in-process: ``Worker.handle`` over synthetic events with senders that
    drop the copies (no SQS calls, so per-call spans and records are not in it): what sampling,
    the process span, the traceparent and the per-event metrics cost per event, at a fraction
    of the full run's noise."""
    import gc
    from types import SimpleNamespace

    from fanout.local.synthetic import DEMO_MIX, GenesysEventGenerator
    from fanout.observability.stats import Stats
    from fanout.observability.telemetry import setup_telemetry
    from fanout.pipeline.dlq import DeadLetters
    from fanout.pipeline.inflight import Received
    from fanout.pipeline.routing import Routing
    from fanout.pipeline.settle import Settler
    from fanout.pipeline.worker import Worker
    from fanout.rules import load_rules_unresolved
    from fanout.runtime.heap import settle_heap

    telemetry = setup_telemetry()
    rules = load_rules_unresolved(RULES).with_queue_urls(
        {name: f"http://127.0.0.1:9/{name}" for name in load_rules_unresolved(RULES).targets}
    )

    class Drop:
        def submit(self, copy: Any) -> None:
            pass

    stats = Stats()
    acker: Any = SimpleNamespace(delete=lambda m: None, abandon=lambda m: None)
    dead = DeadLetters("http://127.0.0.1:9/dlq", lambda *a, **k: Drop(), acker, stats)  # type: ignore[arg-type]
    settler = Settler(acker, dead, stats, telemetry)
    routing = Routing(rules, {t: Drop() for t in rules.targets.values()})  # type: ignore[misc]
    worker = Worker(routing, settler, stats, telemetry, "bench-source")
    generator = GenesysEventGenerator(seed=spec["seed"], mix=DEMO_MIX, clock=time.time)
    events = spec["worker_micro"]
    messages = [Received(str(i), f"rh{i}", b) for i, b in enumerate(generator.bodies(events))]
    warmup = events // 10
    for message in messages[:warmup]:
        worker.handle(message)
    settle_heap()
    gc_before = sum(s["collections"] for s in gc.get_stats())
    cpu0 = time.process_time()
    for message in messages[warmup:]:
        worker.handle(message)
    cpu = time.process_time() - cpu0
    telemetry.shutdown()
    gcs = sum(s["collections"] for s in gc.get_stats()) - gc_before
    return {"cpu_s": cpu, "events": events - warmup, "wall_s": cpu, "calls": 0, "gc": gcs}


def run_child(
    spec: dict[str, Any],
    mode_env: dict[str, str],
    collector_url: str,
    profile: Path | None = None,
    tree: Path = REPO,
) -> dict[str, Any]:
    """One child run of ``tree``'s fanout package (this bench's child code); with ``profile``,
    under py-spy, or cProfile with ``spec["cprofile"]`` (its CPU numbers are then inflated)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FANOUT_"))}
    # The tree's fanout package comes first on the path; this bench module is loaded from REPO.
    env["BENCH_FANOUT_TREE"] = str(tree)
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
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench child failed ({out.returncode}): {out.stderr.decode()[-2000:]}")
    result: dict[str, Any] = orjson.loads(out.stdout.splitlines()[-1])
    return result


def run_on_stub(
    events: int,
    seed: int,
    mode_env: dict[str, str],
    collector_url: str,
    profile: Path | None = None,
    tree: Path = REPO,
    cprofile: Path | None = None,
) -> dict[str, Any]:
    from bench.procs import stub_server

    with tempfile.TemporaryDirectory() as tmp:
        pool = stub_pool(Path(tmp) / "pool.jsonl", events, seed)
        with stub_server(pool, REPO) as (endpoint, _):
            spec = stub_spec(endpoint, events)
            spec["endpoint"] = endpoint
            if cprofile is not None:
                spec["cprofile"] = str(cprofile)
            return run_child(spec, mode_env, collector_url, profile, tree)


def top_functions(path: Path, limit: int = 25) -> str:
    """The functions with the most own time in a cProfile dump, as text."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(limit)
    return f"total own time {total:.3f} s\n{out.getvalue()}"


def span_split(spans: int = 20_000) -> dict[str, float]:
    """The SDK's CPU per recorded span, µs, split by step: start (sampler, ids, span object),
    the process span's attributes, end (the batch processor's queue), OTLP protobuf encoding
    (done on the export thread), and a link (send/settle spans link their batch's events)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import Link, SpanKind

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=spans * 2))
    tracer = provider.get_tracer("bench")
    base = {
        "messaging.system": "aws_sqs",
        "messaging.operation.type": "process",
        "messaging.destination.name": "source",
    }
    attributes = {
        "messaging.message.id": "5fea7756-0ea4-451a-a703-a558b933e274",
        "fanout.outcome": "sent",
        "fanout.event.id": "0f3e2f9a-8d1c-4a6e-9d43-3c1f0b9a7e55",
        "fanout.event.type": "v2.detail.events.conversation.{id}.customer.start",
        "fanout.rule_ids": ("all-conversations", "vip"),
    }
    result: dict[str, float] = {}
    cpu = time.process_time
    t0 = cpu()
    made = [
        tracer.start_span("process source", kind=SpanKind.CONSUMER, attributes=base)
        for _ in range(spans)
    ]
    result["start (with 3 attributes)"] = (cpu() - t0) / spans * 1e6
    t0 = cpu()
    for span in made:
        span.set_attributes(attributes)
    result["set 5 attributes"] = (cpu() - t0) / spans * 1e6
    t0 = cpu()
    for span in made:
        span.end()
    result["end (to the batch processor)"] = (cpu() - t0) / spans * 1e6
    finished = [s for s in made if hasattr(s, "to_json")]
    t0 = cpu()
    for start in range(0, len(finished), 512):  # the processor's export batch size
        encode_spans(finished[start : start + 512]).SerializeToString()  # type: ignore[arg-type]
    result["OTLP encoding"] = (cpu() - t0) / spans * 1e6
    link = Link(made[0].get_span_context())
    t0 = cpu()
    for _ in range(spans):
        tracer.start_span("send target", kind=SpanKind.PRODUCER, links=[link]).end()
    linked = (cpu() - t0) / spans * 1e6
    t0 = cpu()
    for _ in range(spans):
        tracer.start_span("send target", kind=SpanKind.PRODUCER).end()
    result["one link"] = linked - (cpu() - t0) / spans * 1e6
    provider.shutdown()
    result.update(record_split(spans))
    return result


def record_split(records: int) -> dict[str, float]:
    """The SDK's CPU per histogram record (metrics only pays ~1.6 of them per event)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    histogram = provider.get_meter("bench").create_histogram("h", unit="s")
    attributes = {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": "source",
        "fanout.outcome": "sent",
    }
    result: dict[str, float] = {}
    for label, attrs in (("histogram record, 3 attributes", attributes), ("  no attributes", None)):
        t0 = time.process_time()
        for _ in range(records):
            histogram.record(0.0004, attrs)
        result[label] = (time.process_time() - t0) / records * 1e6
    provider.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--endpoint", help="SQS endpoint to use instead of an embedded moto")
    parser.add_argument("--stub", action="store_true", help="SQS is bench/stub.py (instant)")
    parser.add_argument(
        "--modes", default=DEFAULT_MODES, help=f"comma-separated, of: {', '.join(MODES)}"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another source tree: each mode also runs its fanout package, interleaved",
    )
    parser.add_argument("--out", type=Path, help="write the runs and medians as JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory: one py-spy profile (raw stacks) per mode on the stub, not measured; "
        "needs py-spy (pip install py-spy)",
    )
    parser.add_argument(
        "--cprofile",
        type=Path,
        help="directory: one cProfile dump of each mode's steady state (and tree) on the stub",
    )
    parser.add_argument(
        "--span-split", action="store_true", help="only the in-process cost per recorded span"
    )
    parser.add_argument(
        "--worker-micro",
        action="store_true",
        help="only the worker's per-event share, in-process (Worker.handle, copies dropped)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tree = os.environ.get("BENCH_FANOUT_TREE")
        if tree:  # another tree's fanout package, not the editable install's
            sys.meta_path[:] = [
                f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
            ]
            sys.path.insert(0, tree)
        from fanout.cli import run_async  # the loop fanout runs on (FANOUT_EVENT_LOOP)

        spec = orjson.loads(args.child)
        if spec.get("worker_micro"):
            print(orjson.dumps(worker_micro(spec)).decode())
            return
        print(orjson.dumps(run_async(child(spec))).decode())
        return
    if args.span_split:
        split = span_split()
        for step, us in split.items():
            print(f"{step:32s} {us:6.1f} us/span")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            document = {"span_split_us": split, "loadavg": os.getloadavg()}
            args.out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        return

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}: use {', '.join(MODES)}")
    trees: dict[str, Path] = {"new": REPO}
    if args.baseline:
        trees = {"base": args.baseline.resolve(), "new": REPO}

    if args.profile or args.cprofile:
        directory = args.profile or args.cprofile
        directory.mkdir(parents=True, exist_ok=True)
        with collector() as collector_url:
            for mode in modes:
                label, mode_env = MODES[mode]
                for tree_name, tree in trees.items():
                    path = directory / f"{mode}-{tree_name}.{'txt' if args.profile else 'prof'}"
                    run_on_stub(
                        args.events,
                        0,
                        mode_env,
                        collector_url,
                        path if args.profile else None,
                        tree,
                        None if args.profile else path,
                    )
                    print(f"{label} ({tree_name}): {path}", file=sys.stderr)
                    if args.cprofile:
                        text = top_functions(path)
                        path.with_suffix(".txt").write_text(text)
                        print(text)
        return

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per SQS request otherwise
    os.environ.update(CREDENTIALS)
    server = None
    if args.stub or args.worker_micro:
        endpoint = ""
    elif args.endpoint:
        endpoint = args.endpoint
    else:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    cpu_per_event: dict[tuple[str, str], list[float]] = {(t, m): [] for m in modes for t in trees}
    runs: list[dict[str, Any]] = []
    try:
        with collector() as collector_url:
            for repeat in range(args.repeats):
                for mode in modes:
                    label, mode_env = MODES[mode]
                    for tree_name, tree in trees.items():
                        if args.worker_micro:
                            spec = {"worker_micro": args.events, "seed": repeat}
                            result = run_child(spec, mode_env, collector_url, tree=tree)
                        elif args.stub:
                            result = run_on_stub(
                                args.events, repeat, mode_env, collector_url, tree=tree
                            )
                        else:
                            spec = asyncio.run(prepare(endpoint, args.events, seed=repeat))
                            spec["endpoint"] = endpoint
                            try:
                                result = run_child(spec, mode_env, collector_url, tree=tree)
                            finally:
                                asyncio.run(cleanup(endpoint, spec))
                        us = result["cpu_s"] / result["events"] * 1e6
                        cpu_per_event[(tree_name, mode)].append(us)
                        runs.append({"repeat": repeat, "mode": mode, "tree": tree_name, **result})
                        print(
                            f"  run {repeat + 1} {tree_name:4s} {label:32s} {us:7.1f} us CPU/event "
                            f"({result['events'] / result['wall_s']:.0f} events/s wall, "
                            f"{result['calls'] / result['events']:.2f} SQS calls/event)",
                            file=sys.stderr,
                        )
    finally:
        if server is not None:
            server.stop()

    medians = {key: statistics.median(values) for key, values in cpu_per_event.items()}
    print(
        f"tracing overhead, {args.events} events per run, median of {args.repeats} runs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = f"{'mode':34s}"
    for tree_name in trees:
        header += f" {tree_name + ' us/event':>14s} {'vs off':>8s} {'vs metrics':>10s}"
    print(header)
    for mode in modes:
        line = f"{MODES[mode][0]:34s}"
        for tree_name in trees:
            median = medians[(tree_name, mode)]
            off = medians.get((tree_name, "off"))
            metrics = medians.get((tree_name, "metrics"))
            line += f" {median:14.1f}"
            line += f" {100 * (median / off - 1):+7.1f}%" if off else f" {'':>8s}"
            line += f" {median - metrics:+9.1f}us" if metrics else f" {'':>11s}"
        print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "command": " ".join(["python -m bench.tracing_overhead", *sys.argv[1:]]),
            "events": args.events,
            "repeats": args.repeats,
            "loadavg_end": os.getloadavg(),
            "trees": {name: str(tree) for name, tree in trees.items()},
            "median_us_per_event": {f"{t}/{m}": v for (t, m), v in medians.items()},
            "runs": runs,
        }
        args.out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
