"""Closed loop (throughput): preload N events, run one system as its own process until the
source is drained, then count what reached the targets and check it.

Systems: ``fanout`` (``python -m fanout run --exit-when-idle``), ``naive`` and ``sync`` (the
baselines in bench/baselines.py). Backends: ``stub`` (bench/stub.py, instant) and
``localstack`` (a real SQS emulator at --endpoint-url)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import orjson

from bench import sqsenv
from bench.check import verify
from bench.procs import PY, Child, ChildResult, child_env, stub_server
from bench.sqsenv import Observed, Queues
from bench.workload import REPO, TargetSpec, Workload, queue_env
from fanout.pipeline.batching import pack

DATA_OPS = (
    "ReceiveMessage",
    "SendMessageBatch",
    "SendMessage",
    "DeleteMessageBatch",
    "DeleteMessage",
    "ChangeMessageVisibilityBatch",
)


@dataclass(frozen=True)
class Knobs:
    """fanout's knobs as its env vars (FANOUT_*); the baselines use ``naive_pollers`` (else
    ``pollers``). ``defaults``: set none of them, so fanout runs on its own default settings
    (only ``extra_env`` and the log level are passed)."""

    pollers: int = 4
    workers: int = 4
    linger_ms: float = 20.0
    wait_time_seconds: int = 2
    exit_when_idle: float = 1.0
    max_in_flight: int = 1000
    extra_env: tuple[tuple[str, str], ...] = ()
    defaults: bool = False
    naive_pollers: int | None = None

    def env(self) -> dict[str, str]:
        if self.defaults:
            return {"FANOUT_LOG_LEVEL": "WARNING", **dict(self.extra_env)}
        return {
            "FANOUT_POLLERS": str(self.pollers),
            "FANOUT_WORKERS": str(self.workers),
            "FANOUT_LINGER_MS": str(self.linger_ms),
            "FANOUT_WAIT_TIME_SECONDS": str(self.wait_time_seconds),
            "FANOUT_MAX_IN_FLIGHT": str(self.max_in_flight),
            "FANOUT_LOG_LEVEL": "WARNING",
            **dict(self.extra_env),
        }


@dataclass
class Prepared:
    """A workload made concrete: bodies, rules file, targets, expected copies."""

    workload: Workload
    bodies: list[str]
    rules_path: Path
    targets: list[TargetSpec]
    expected: dict[str, tuple[str, ...]]
    ids: list[str]
    sizes: list[int]
    workdir: Path

    def first(self, k: int) -> Prepared:
        if k >= len(self.bodies):
            return self
        ids = self.ids[:k]
        return Prepared(
            self.workload,
            self.bodies[:k],
            self.rules_path,
            self.targets,
            {i: self.expected[i] for i in ids},
            ids,
            self.sizes[:k],
            self.workdir,
        )

    def pool_file(self) -> Path:
        digest = hashlib.sha256("".join(self.ids).encode()).hexdigest()[:12]
        path = self.workdir / f"pool-{len(self.bodies)}-{digest}.jsonl"
        if not path.exists():
            path.write_text("\n".join(self.bodies))
        return path

    def min_calls_per_event(self) -> float:
        """1 receive and 1 delete per 10 events, plus each target's copies packed 10 / 1 MiB."""
        n = len(self.bodies)
        per_target: dict[str, list[tuple[int, int]]] = {}
        for eid, size in zip(self.ids, self.sizes, strict=True):
            for t in self.expected[eid]:
                per_target.setdefault(t, []).append((0, size + 60))
        sends = sum(len(pack(items)) for items in per_target.values())
        return (2 * math.ceil(n / 10) + sends) / n


@dataclass
class ClosedResult:
    system: str
    backend: str
    workload: str
    knobs: dict[str, Any]
    events: int
    window_s: float
    events_per_s: float
    calls: dict[str, int]
    calls_per_event: float
    min_calls_per_event: float
    cpu_s: float
    idle_cpu_s: float | None
    cpu_us_per_event: float
    maxrss_mb: float
    correctness: dict[str, Any]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.correctness.get("ok")) and self.events > 0

    def row(self) -> dict[str, Any]:
        return asdict(self)


def stub_queues(endpoint: str, targets: list[TargetSpec]) -> Queues:
    base = f"{endpoint}/000000000000/bench"
    return Queues(
        endpoint,
        f"{base}-source",
        f"{base}-dlq",
        {t.name: f"{base}-{t.name}" + (".fifo" if t.fifo else "") for t in targets},
    )


# fanout as installed (uvloop when the `fast` extra is there, as in the image), and the same on
# asyncio's own loop: what uvloop is worth, in the same run.
FANOUT_SYSTEMS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {"fanout": {}, "fanout-asyncio": {"FANOUT_EVENT_LOOP": "asyncio"}}
)


def system_argv(
    system: str,
    queues: Queues,
    prep: Prepared,
    knobs: Knobs,
    out: Path,
    *,
    max_events: int | None = None,
    profile: Path | None = None,
    log_level: str | None = None,
    exit_when_idle: bool = True,
) -> tuple[list[str], dict[str, str]]:
    env = child_env({**queue_env(prep.targets, queues.targets), **knobs.env()})
    if log_level:
        env["FANOUT_LOG_LEVEL"] = log_level
    if system in FANOUT_SYSTEMS:
        env.update(FANOUT_SYSTEMS[system])
        head = [PY, "-m", "cProfile", "-o", str(profile)] if profile else [PY]
        argv = [
            *head,
            "-m",
            "fanout",
            "run",
            "--rules",
            str(prep.rules_path),
            "--source-queue-url",
            queues.source,
            "--dlq-url",
            queues.dlq,
            "--endpoint-url",
            queues.endpoint,
            "--region",
            "us-east-1",
            "--summary-json",
            str(out),
        ]
        if exit_when_idle:
            argv += ["--exit-when-idle", str(knobs.exit_when_idle)]
        return argv, env
    argv = [
        PY,
        "-m",
        "bench.baselines",
        system,
        "--endpoint-url",
        queues.endpoint,
        "--source-queue-url",
        queues.source,
        "--rules",
        str(prep.rules_path),
        "--targets-json",
        json.dumps(queues.targets),
        "--pollers",
        str(knobs.naive_pollers or knobs.pollers),
    ]
    if max_events is not None:
        argv += ["--max-events", str(max_events)]
    return argv, env


def _read_summary(system: str, res: ChildResult, out: Path) -> dict[str, Any]:
    if res.returncode != 0:
        raise RuntimeError(f"{system} exited {res.returncode}: {res.stderr_tail}")
    if system in FANOUT_SYSTEMS:
        return dict(orjson.loads(out.read_bytes()))
    return dict(json.loads(res.lines[-1]))


def _stub_stats(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/_bench/stats", timeout=30) as resp:
        return dict(orjson.loads(resp.read()))


def _observed_from_stub(stats: dict[str, Any], queues: Queues) -> Observed:
    by_name = {url.rsplit("/", 1)[-1]: name for name, url in queues.targets.items()}
    copies = {name: Counter() for name in queues.targets}
    for qname, counts in stats["copies"].items():
        if qname in by_name:
            copies[by_name[qname]].update(counts)
    return Observed(
        copies=copies,
        dlq=stats["dlq"],
        calls=stats["calls"],
        window=(stats["first_served"], stats["last_delete"])
        if stats["first_served"] and stats["last_delete"]
        else None,
        redelivered=stats["redelivered"],
    )


def _data_calls(calls: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in sorted(calls.items()) if op in DATA_OPS and n}


async def run_stub(
    system: str,
    prep: Prepared,
    knobs: Knobs,
    *,
    profile: Path | None = None,
    empty: bool = False,
    latency_ms: float = 0.0,
    rate: float | None = None,
) -> tuple[ChildResult, Observed, dict[str, Any]]:
    """One system against a fresh stub serving ``prep``'s bodies (none if ``empty``), each
    answer ``latency_ms`` late (+-25%), the bodies due at ``rate`` events/s if given (open
    loop; the stub's stats then hold each copy's latency)."""
    pool = prep.workdir / "pool-empty.jsonl" if empty else prep.pool_file()
    if empty:
        pool.write_text("")
    with stub_server(pool, REPO, latency_ms=latency_ms, rate=rate) as (endpoint, _stub):
        queues = stub_queues(endpoint, prep.targets)
        out = prep.workdir / f"summary-{system}.json"
        n = len(prep.bodies)
        # Open loop: no exit on idle (the gaps between due messages are idle); naive stops
        # after n events, fanout is stopped (SIGTERM, it drains) once all n are deleted.
        argv, env = system_argv(
            system,
            queues,
            prep,
            knobs,
            out,
            profile=profile,
            exit_when_idle=rate is None,
            max_events=n if rate is not None else None,
        )
        if rate is not None and system not in FANOUT_SYSTEMS:
            argv += ["--idle-receives", str(10**9)]
        child = Child(argv, env, REPO)
        if rate is not None:
            await _until_deleted(endpoint, child, n, within=n / rate * 3 + 60)
            if system in FANOUT_SYSTEMS:
                child.terminate()
        res = await asyncio.to_thread(child.wait, 1800)
        summary = _read_summary(system, res, out)
        stats = await asyncio.to_thread(_stub_stats, endpoint)
    observed = _observed_from_stub(stats, queues)
    observed.stub_stats = stats
    return res, observed, summary


async def _until_deleted(endpoint: str, child: Child, n: int, within: float) -> None:
    deadline = time.monotonic() + within
    while child.running() and time.monotonic() < deadline:
        stats = await asyncio.to_thread(_stub_stats, endpoint)
        if int(stats["deleted"]) >= n:
            return
        await asyncio.sleep(0.2)


async def idle_cpu(system: str, prep: Prepared, knobs: Knobs, latency_ms: float = 0.0) -> float:
    """CPU of a run with nothing to do (start, idle wait, shutdown): subtracted per run."""
    res, _, _ = await run_stub(system, prep, knobs, empty=True, latency_ms=latency_ms)
    return res.cpu


async def _depth_window(c: Any, url: str, n: int, child: Child) -> tuple[float, float]:
    """Poll the source queue: start when the first message left the visible count, end when
    the queue is empty (visible + in flight = 0), or when the child exits."""
    start = end = None
    while child.running():
        resp = await c.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )
        now = time.time()
        a = resp["Attributes"]
        visible = int(a["ApproximateNumberOfMessages"])
        total = visible + int(a["ApproximateNumberOfMessagesNotVisible"])
        if start is None and visible < n:
            start = now
        if start is not None and total == 0:
            end = now
            break
        await asyncio.sleep(0.1)
    now = time.time()
    return (start or now, end or now)


async def run_localstack(
    system: str,
    prep: Prepared,
    knobs: Knobs,
    endpoint: str,
    *,
    max_events: int | None = None,
    proxy_endpoint: str | None = None,
) -> tuple[ChildResult, Observed, dict[str, Any], tuple[float, float]]:
    async with sqsenv.client(endpoint) as c:
        queues = await sqsenv.create_queues(c, endpoint, sqsenv.run_prefix(), prep.targets)
        try:
            await sqsenv.preload(c, queues.source, prep.bodies)
            out = prep.workdir / f"summary-{system}.json"
            # Queue URLs name LocalStack; with the JSON protocol the calls go to the endpoint.
            theirs = replace(queues, endpoint=proxy_endpoint) if proxy_endpoint else queues
            argv, env = system_argv(system, theirs, prep, knobs, out, max_events=max_events)
            child = Child(argv, env, REPO)
            window = await _depth_window(c, queues.source, len(prep.bodies), child)
            res = await asyncio.to_thread(child.wait, 3600)
            summary = _read_summary(system, res, out)
            observed = await sqsenv.collect(c, queues)
        finally:
            await sqsenv.delete_queues(c, queues)
    return res, observed, summary, window


async def closed_loop(
    system: str,
    backend: str,
    prep: Prepared,
    knobs: Knobs,
    *,
    endpoint: str | None = None,
    idle: float | None = None,
    note: str = "",
    latency_ms: float = 0.0,
    rate: float | None = None,
    proxy_endpoint: str | None = None,
) -> ClosedResult:
    """``latency_ms``: the stub's round trip; ``rate``: the stub's bodies are due at this
    events/s (open loop: ``extra`` gets the per-copy latency); ``proxy_endpoint``: on
    LocalStack, the system (not the bench's own calls) goes through this endpoint."""
    if backend == "stub":
        res, observed, summary = await run_stub(
            system, prep, knobs, latency_ms=latency_ms, rate=rate
        )
        window = observed.window or (0.0, 1e-9)
    else:
        assert endpoint is not None
        res, observed, summary, window = await run_localstack(
            system, prep, knobs, endpoint, proxy_endpoint=proxy_endpoint
        )
    if system in FANOUT_SYSTEMS:
        processed = int(summary["processed"])
        calls = observed.calls if observed.calls is not None else summary["sqs_calls"]
        keys = ("dlq_total", "errors", "retries", "released", "peak_pollers", "peak_concurrency")
        extra = {k: summary.get(k) for k in keys}
    else:
        processed = int(summary["processed"])
        calls = observed.calls if observed.calls is not None else summary["calls"]
        extra = {"failed_entries": summary["failed_entries"]}
    if rate is not None and observed.stub_stats is not None:
        extra.update(open_latency(observed.stub_stats))
    data = _data_calls(calls)
    n = max(processed, 1)
    seconds = max(window[1] - window[0], 1e-9)
    allowed = observed.redelivered + int(extra.get("released", 0) or 0)
    verdict = verify(prep.expected, observed.copies, observed.dlq, allowed_extra=allowed)
    cpu_net = res.cpu - (idle or 0.0)
    return ClosedResult(
        system=system,
        backend=backend,
        workload=prep.workload.label,
        knobs={k: v for k, v in asdict(knobs).items() if k != "extra_env"},
        events=processed,
        window_s=round(seconds, 3),
        events_per_s=round(processed / seconds, 1),
        calls=data,
        calls_per_event=round(sum(data.values()) / n, 4),
        min_calls_per_event=round(prep.min_calls_per_event(), 4),
        cpu_s=round(res.cpu, 3),
        idle_cpu_s=None if idle is None else round(idle, 3),
        cpu_us_per_event=round(cpu_net / n * 1e6, 1),
        maxrss_mb=round(res.maxrss_kb / 1024, 1),
        correctness=verdict.summary(),
        note=note,
        extra=extra,
    )


def quantile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of sorted values; NaN when there are none."""
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def open_latency(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Per-copy latency (due at the stub -> the copy's SendMessageBatch answered) and per-event
    ack latency (due -> DeleteMessageBatch answered) from an open-loop stub's stats, in ms."""
    copies = sorted(stats.get("copy_latency_ms") or [])
    acks = sorted(stats.get("ack_latency_ms") or [])
    return {
        "rate": stats.get("rate"),
        "copies_timed": len(copies),
        "copy_p50_ms": round(quantile(copies, 50), 1),
        "copy_p99_ms": round(quantile(copies, 99), 1),
        "copy_max_ms": round(copies[-1], 1) if copies else float("nan"),
        "ack_p50_ms": round(quantile(acks, 50), 1),
        "ack_p99_ms": round(quantile(acks, 99), 1),
        "copy_quantiles_ms": [round(quantile(copies, q), 2) for q in range(101)],
    }


def prepare(workload: Workload, workdir: Path | None = None) -> Prepared:
    from bench.workload import bodies, expected_copies, rules_text, targets_of

    workdir = workdir or Path(tempfile.mkdtemp(prefix="fanout-bench-"))
    text = rules_text(workload.rules)
    rules_path = workdir / f"rules-{workload.rules}.yaml"
    rules_path.write_text(text)
    body_list = bodies(workload.n, workload.seed, workload.size)
    expected = expected_copies(body_list, rules_path)
    ids = list(expected)
    return Prepared(
        workload,
        body_list,
        rules_path,
        targets_of(text),
        expected,
        ids,
        [len(b.encode()) for b in body_list],
        workdir,
    )
