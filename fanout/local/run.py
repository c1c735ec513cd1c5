"""Embedded local run (``fanout run --local``, what ``make run`` runs): no AWS account needed.

Starts moto's SQS server in-process on 127.0.0.1, creates the source queue, the DLQ and one
queue per target of the rules file, feeds synthetic Genesys traffic (with a few malformed
bodies), drains the target queues the way downstream consumers would, and shows a live line.

moto's SQS costs O(queue length) per call, so the default rate is modest and every queue is
drained continuously: the demo stays responsive for as long as it runs.

moto is an extra (``pip install 'fanout[local]'``), imported only when a local run starts: the
runtime install (a container) does not carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from fanout.aws.checks import check_queues
from fanout.aws.client import create_clients
from fanout.config import Settings
from fanout.errors import ConfigError
from fanout.local.synthetic import DEMO_MIX, GenesysEventGenerator
from fanout.observability.stats import Stats
from fanout.observability.telemetry import Telemetry
from fanout.rules import RuleSet, load_rules_unresolved
from fanout.service import Service
from fanout.signals import install_signal_handlers

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)

LOCAL_CREDENTIALS = {
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",  # moto accepts any credentials
}
LOCAL_REGION = "us-east-1"
NO_MOTO = (
    "the embedded local run needs moto's SQS server, which the runtime install leaves out: "
    "pip install 'fanout[local]'"
)


def require_moto() -> Any:
    """moto's ThreadedMotoServer class, or ConfigError (one line, exit 2) naming the extra."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ConfigError(NO_MOTO) from None
    return ThreadedMotoServer


@dataclass(frozen=True)
class LocalOptions:
    rate: float = 25.0
    events: int | None = None
    malformed: float = 0.02
    seed: int = 7
    progress: bool = True


@dataclass
class Downstream:
    """What the simulated downstream consumers received, per queue and per DLQ reason."""

    per_queue: Counter[str] = field(default_factory=Counter)
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    produced: int = 0


@contextlib.asynccontextmanager
async def moto_server() -> AsyncIterator[str]:
    """moto's SQS on an ephemeral loopback port; yields its endpoint URL."""
    server = require_moto()(ip_address="127.0.0.1", port=0, verbose=False)
    await asyncio.to_thread(server.start)
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        await asyncio.to_thread(server.stop)


async def create_queues(
    client: SQSClient, rules: RuleSet, prefix: str = "fanout-"
) -> tuple[str, str, dict[str, str]]:
    """Source, DLQ and one queue per target; returns (source_url, dlq_url, {target: url})."""

    async def create(name: str, fifo: bool = False) -> str:
        attributes = {"FifoQueue": "true"} if fifo else {}
        response = await client.create_queue(
            QueueName=name + (".fifo" if fifo else ""),
            Attributes=attributes,  # type: ignore[arg-type]
        )
        return response["QueueUrl"]

    source = await create(f"{prefix}source")
    dlq = await create(f"{prefix}dlq")
    targets = {
        name: await create(f"{prefix}{name}", fifo=target.fifo is not None)
        for name, target in rules.targets.items()
    }
    return source, dlq, targets


async def produce(
    client: SQSClient, url: str, options: LocalOptions, downstream: Downstream
) -> None:
    """Send synthetic bodies on a fixed schedule (batches of up to 10)."""
    mix = dataclasses.replace(DEMO_MIX, malformed=options.malformed)
    generator = GenesysEventGenerator(seed=options.seed, mix=mix, clock=time.time)
    interval = 1.0 / options.rate if options.rate > 0 else 1.0
    next_at = time.monotonic()
    while options.events is None or downstream.produced < options.events:
        due = max(1, min(10, int((time.monotonic() - next_at) / interval) + 1))
        if options.events is not None:
            due = min(due, options.events - downstream.produced)
        bodies = generator.bodies(due)
        await client.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)],
        )
        downstream.produced += due
        next_at += due * interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def consume(
    client: SQSClient, name: str, url: str, downstream: Downstream, *, dlq: bool = False
) -> None:
    """A downstream consumer: receive, count, delete."""
    while True:
        response = await client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        if not messages:
            continue
        downstream.per_queue[name] += len(messages)
        if dlq:
            for message in messages:
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    downstream.dlq_reasons[orjson.loads(message["Body"])["reason"]] += 1
        await client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def progress_line(stats: Stats, inflight: int, downstream: Downstream) -> Text:
    rate = stats.processed / stats.elapsed
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{rate:6.1f} events/s", style="bold")
    line.append(f"  received {stats.received}  in flight {inflight:3d}  ")
    sends = [n for t, n in stats.concurrency.items() if t != "delete"]
    line.append(f"pollers {stats.pollers}  sends <= {max(sends, default=0)}  ", style="dim")
    for name, count in sorted(stats.per_target.items()):
        line.append(f"{name} {count}  ", style="green")
    line.append(f"unmatched {stats.unmatched}  ", style="dim")
    line.append(f"DLQ {sum(stats.dlq.values())}", style="red")
    return line


@dataclass
class LocalSqs:
    """The embedded SQS of a local run: settings and rules pointing at it, a client on it, the
    created queues and what the simulated downstream consumers saw."""

    settings: Settings
    rules: RuleSet
    client: SQSClient  # the SDK client: queue set-up, the simulated producer and consumers
    data_plane: SQSClient  # the pipeline's (FANOUT_SQS_CLIENT)
    limits: dict[str, int]
    target_urls: dict[str, str]
    downstream: Downstream


@contextlib.asynccontextmanager
async def local_sqs(settings: Settings, options: LocalOptions) -> AsyncIterator[LocalSqs]:
    """moto's server, the queues of the rules file, the synthetic producer and the downstream
    consumers, running until the block ends. Shared by one pipeline (``run_local``) and by the
    ``--processes`` supervisor, whose children all consume from it."""
    rules = load_rules_unresolved(settings.rules)
    async with moto_server() as endpoint:
        base = settings.model_copy(
            update={"endpoint_url": endpoint, "region": LOCAL_REGION, "wait_time_seconds": 1}
        )
        # The simulated producer and consumers use the SDK client; the pipeline the data-plane
        # client FANOUT_SQS_CLIENT chooses.
        async with create_clients(base, **LOCAL_CREDENTIALS) as (client, data_plane):
            source, dlq, target_urls = await create_queues(client, rules)
            rules = rules.with_queue_urls(target_urls)
            local = base.model_copy(update={"source_queue_url": source, "dlq_url": dlq})
            limits = await check_queues(client, local, rules)
            log.info(
                "local SQS (moto) on %s: source, DLQ and %d target queues created",
                endpoint,
                len(target_urls),
            )
            downstream = Downstream()
            helpers = [
                asyncio.create_task(produce(client, source, options, downstream)),
                asyncio.create_task(consume(client, "dlq", dlq, downstream, dlq=True)),
                *(
                    asyncio.create_task(consume(client, name, url, downstream))
                    for name, url in target_urls.items()
                ),
            ]
            try:
                yield LocalSqs(
                    local, rules, client, data_plane, dict(limits), target_urls, downstream
                )
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
            log.info(
                "local downstream received: %s; DLQ reasons: %s",
                dict(downstream.per_queue),
                dict(downstream.dlq_reasons),
            )


async def run_local(
    settings: Settings,
    options: LocalOptions,
    *,
    exit_when_idle: float | None = None,
    telemetry: Telemetry | None = None,
) -> Stats:
    async with local_sqs(settings, options) as local:
        service = Service(
            local.settings,
            local.rules,
            local.data_plane,
            queue_limits=local.limits,
            telemetry=telemetry,
            # A reload binds the targets to the local queues too (a new target has none:
            # its ${VAR} URL fails the queue check, and the running rules stay).
            load_rules=lambda: load_rules_unresolved(settings.rules).with_queue_urls(
                local.target_urls
            ),
            checks_client=local.client,
        )
        install_signal_handlers(service.stop, service.reloader.request)
        display = (
            asyncio.create_task(show_progress(service, local.downstream))
            if options.progress
            else None
        )
        try:
            return await service.run(exit_when_idle=exit_when_idle)
        finally:
            if display is not None:
                display.cancel()
                await asyncio.gather(display, return_exceptions=True)


async def show_progress(service: Service, downstream: Downstream) -> None:
    """The live line; log records print above it through the same console while it runs."""
    console = Console()
    handler = RichHandler(console=console, show_path=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [handler]
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                live.update(progress_line(service.stats, len(service.inflight), downstream))
                await asyncio.sleep(0.25)
    finally:
        root.handlers = saved
