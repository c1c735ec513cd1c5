"""The one place that wires the stages: pollers -> work queue -> workers -> senders -> acker/DLQ.

ReceiveMessage x P --> asyncio.Queue --> N workers (validate, match)
                                              |  one copy per matched target
                                              v
                    per-target batchers: SendMessageBatch (+ retry of Failed entries)
                                              |
                   all copies accepted? --yes--> DeleteMessageBatch
                              |no
                              +--> DLQ record --accepted--> DeleteMessageBatch
                                              \\--failed--> left to come back
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from fanout.aws.limits import MAX_MESSAGE_BYTES
from fanout.aws.retry import NON_EXISTENT_QUEUE_CODES, Backoff, Failure, call_with_retry
from fanout.aws.urls import queue_name
from fanout.config import Settings
from fanout.errors import StartupError
from fanout.observability.health import HealthServer
from fanout.observability.stats import Stats
from fanout.observability.telemetry import Telemetry, observe_stats
from fanout.pipeline.acker import Acker
from fanout.pipeline.dlq import DeadLetters
from fanout.pipeline.inflight import InFlight, Received
from fanout.pipeline.poller import Poller
from fanout.pipeline.sender import Copy, QueueSender
from fanout.pipeline.settle import Settler
from fanout.pipeline.worker import Worker
from fanout.rules import RuleSet, Target

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)

ABORT_RESERVE = 3.0


@dataclass(frozen=True)
class QueueRef:
    """A queue to check at start, with where its URL came from (for the error message)."""

    label: str
    url: str
    origin: str


def queues_to_check(settings: Settings, rules: RuleSet) -> list[QueueRef]:
    assert settings.source_queue_url is not None
    refs = [QueueRef("source queue", settings.source_queue_url, "FANOUT_SOURCE_QUEUE_URL")]
    if settings.dlq_url:
        refs.append(QueueRef("DLQ", settings.dlq_url, "FANOUT_DLQ_URL"))
    for target in rules.targets.values():
        refs.append(QueueRef(f"target '{target.name}'", target.queue_url, rules.path))
    return refs


async def check_queues(client: SQSClient, settings: Settings, rules: RuleSet) -> dict[str, int]:
    """Fail the start with one clear line if any queue is missing, denied or unreachable.

    Returns each queue's MaximumMessageSize: copies over a target's limit go to the DLQ
    without a doomed send (older queues still have the former 256 KiB default)."""
    source_has_redrive = False
    limits: dict[str, int] = {}
    # Transient errors (throttling, 5xx, a dropped connection) are retried like any call: they
    # say nothing about the configuration, so they must not end the start with exit 2.
    backoff = Backoff(
        max_attempts=settings.retry_max_attempts,
        base=settings.retry_base_delay_ms / 1000,
        cap=settings.retry_max_delay_ms / 1000,
    )
    rng = random.Random()  # noqa: S311 - jitter, not cryptography
    for ref in queues_to_check(settings, rules):
        try:
            response = await call_with_retry(
                functools.partial(
                    client.get_queue_attributes,
                    QueueUrl=ref.url,
                    AttributeNames=["RedrivePolicy", "MaximumMessageSize"],
                ),
                backoff,
                rng,
            )
        except NoCredentialsError:
            raise StartupError(
                "no AWS credentials found by the standard provider chain "
                "(env, ~/.aws, SSO, instance role); configure one"
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            if code in NON_EXISTENT_QUEUE_CODES:
                problem = "does not exist"
            elif "AccessDenied" in code:
                problem = "access denied (see README: IAM actions per queue)"
            else:
                problem = f"failed: {code} {exc.response.get('Error', {}).get('Message', '')}"
            raise StartupError(f"{ref.label} {ref.url} {problem} (set in {ref.origin})") from None
        except (BotoCoreError, OSError) as exc:
            raise StartupError(
                f"{ref.label} {ref.url} is unreachable: {exc} (set in {ref.origin}; "
                f"endpoint {settings.endpoint_url or 'AWS'})"
            ) from None
        attributes = response.get("Attributes", {})
        limits[ref.url] = int(attributes.get("MaximumMessageSize", MAX_MESSAGE_BYTES))
        if ref.label == "source queue":
            source_has_redrive = "RedrivePolicy" in attributes
    if not settings.dlq_url and not source_has_redrive:
        log.warning(
            "no DLQ configured (FANOUT_DLQ_URL) and the source queue has no redrive policy: "
            "events that cannot be delivered will be received again and again"
        )
    return limits


class Service:
    """One run of the pipeline over an injected SQS client."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        client: SQSClient,
        *,
        stats: Stats | None = None,
        rng: random.Random | None = None,
        queue_limits: Mapping[str, int] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        assert settings.source_queue_url is not None
        self.settings = settings
        telemetry = telemetry or Telemetry.off()
        self.telemetry = telemetry
        self.rules = rules
        self.stats = stats or Stats()
        self.inflight = InFlight(settings.max_in_flight)
        self.work: asyncio.Queue[Received] = asyncio.Queue(maxsize=settings.max_in_flight)
        self.stop = asyncio.Event()
        rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        backoff = Backoff(
            max_attempts=settings.retry_max_attempts,
            base=settings.retry_base_delay_ms / 1000,
            cap=settings.retry_max_delay_ms / 1000,
        )
        self.acker = Acker(
            client,
            settings.source_queue_url,
            inflight=self.inflight,
            stats=self.stats,
            backoff=backoff,
            rng=rng,
            linger=settings.delete_linger_seconds,
            visibility_timeout=settings.visibility_timeout_seconds,
            telemetry=telemetry,
        )
        self.settler = Settler(self.acker, self.inflight, self.stats, telemetry)

        def make_sender(
            target: Target, on_done: Callable[[Copy, Failure | None], None]
        ) -> QueueSender:
            return QueueSender(
                client,
                target,
                on_done=on_done,
                backoff=backoff,
                rng=rng,
                stats=self.stats,
                linger=settings.linger_seconds,
                concurrency=settings.send_concurrency,
                max_message_bytes=(queue_limits or {}).get(target.queue_url, MAX_MESSAGE_BYTES),
                telemetry=telemetry,
            )

        self.dead_letters = DeadLetters(
            make_sender,
            settings.dlq_url,
            stats=self.stats,
            on_written=self.settler.ack,
            on_failed=self.settler.abandon,
        )
        self.settler.dead_letters = self.dead_letters
        self.senders = {
            name: make_sender(target, self.settler.copy_done)
            for name, target in rules.targets.items()
        }
        self.pollers = [
            Poller(
                client,
                settings.source_queue_url,
                self.work,
                self.inflight,
                self.stats,
                wait_time=settings.wait_time_seconds,
                visibility_timeout=settings.visibility_timeout_seconds,
                backoff=backoff,
                rng=rng,
                telemetry=telemetry,
            )
            for _ in range(settings.pollers)
        ]
        source_name = queue_name(settings.source_queue_url)
        self.workers = [
            Worker(rules, self.senders, self.settler, self.stats, telemetry, source_name)
            for _ in range(settings.workers)
        ]
        observe_stats(
            telemetry.meter,
            self.stats,
            lambda: len(self.inflight),
            source=source_name,
            target_queues={n: queue_name(t.queue_url) for n, t in rules.targets.items()},
            dlq_queue=queue_name(settings.dlq_url) if settings.dlq_url else None,
        )
        self.health = (
            HealthServer(
                self.inflight,
                self.stop,
                window=settings.readiness_window_seconds,
                registry=telemetry.prometheus_registry,
            )
            if settings.http_port is not None
            else None
        )

    async def run(self, *, exit_when_idle: float | None = None) -> Stats:
        """Run until ``self.stop`` is set (signal) or the source stayed empty ``exit_when_idle``
        seconds; then shut down gracefully and return the counters."""
        s = self.settings
        log.info(
            "fanout started: %d rules, %d targets, %d pollers, %d workers, max %d in flight",
            len(self.rules.rules),
            len(self.rules.targets),
            s.pollers,
            s.workers,
            s.max_in_flight,
        )
        self.stats.started_at = time.monotonic()
        self.inflight.last_message_at = time.monotonic()
        if self.health is not None:
            assert s.http_port is not None
            await self.health.start(s.http_host, s.http_port)
        heartbeat = asyncio.create_task(self.acker.heartbeat(), name="visibility heartbeat")
        pollers = [asyncio.create_task(p.run(), name="poller") for p in self.pollers]
        workers = [asyncio.create_task(w.run(self.work), name="worker") for w in self.workers]
        idle = (
            asyncio.create_task(self._watch_idle(exit_when_idle), name="idle watch")
            if exit_when_idle is not None
            else None
        )
        try:
            await self.stop.wait()
        finally:
            if idle is not None:
                idle.cancel()
            await self._shutdown(pollers, workers)
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            if self.health is not None:
                await self.health.stop()
        return self.stats

    async def _watch_idle(self, idle: float) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(min(0.1, idle))
            quiet = time.monotonic() - self.inflight.last_message_at
            if len(self.inflight) == 0 and self.work.empty() and quiet >= idle:
                log.info("source queue idle for %.1fs: draining done, exiting", quiet)
                self.stop.set()

    async def _shutdown(
        self, pollers: list[asyncio.Task[None]], workers: list[asyncio.Task[None]]
    ) -> None:
        """Stop receiving, finish in-flight work, delete what completed, release the rest; all
        within FANOUT_SHUTDOWN_TIMEOUT_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout_seconds
        log.info("shutting down: %d messages in flight", len(self.inflight))
        # Keep a slice of the budget to release what the drain could not settle.
        reserve = min(ABORT_RESERVE, self.settings.shutdown_timeout_seconds / 4)
        # Idle pollers stop now. A receive in progress is let finish (a long poll ends within
        # FANOUT_WAIT_TIME_SECONDS) and what it brings is released below: cancelling it could
        # strand messages the server already made invisible, until their visibility timeout.
        for poller, task in zip(self.pollers, pollers, strict=True):
            poller.stopping = True
            if not poller.receiving:
                task.cancel()
        await asyncio.wait(pollers, timeout=max(0.0, self._left(deadline) - reserve))
        for task in [*pollers, *workers]:
            task.cancel()
        await asyncio.gather(*pollers, *workers, return_exceptions=True)
        # Received but never processed: visible again now, not after the visibility timeout.
        while not self.work.empty():
            self.acker.release(self.work.get_nowait())
        try:
            async with asyncio.timeout(max(0.0, self._left(deadline) - reserve)):
                await self._drain()
        except TimeoutError:
            log.warning(
                "shutdown timeout (%.0fs) reached: %d messages still in flight are released",
                self.settings.shutdown_timeout_seconds,
                len(self.inflight),
            )
            await self._abort(self._left(deadline))

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.0, deadline - asyncio.get_running_loop().time())

    def _all_senders(self) -> list[QueueSender]:
        # Order matters when draining: target sends settle into DLQ writes, both into deletes.
        extra = [self.dead_letters.sender] if self.dead_letters.sender is not None else []
        return [*self.senders.values(), *extra]

    async def _drain(self) -> None:
        senders = self._all_senders()
        while any(s.batcher.busy for s in senders) or self.acker.busy:
            for sender in senders:
                await sender.batcher.drain()
            await self.acker.drain()

    async def _abort(self, budget: float) -> None:
        for sender in self._all_senders():
            await sender.batcher.abort()
        for message in self.inflight:
            self.acker.release(message)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(budget, 0.5)):
                await self.acker.drain()
