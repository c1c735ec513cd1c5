"""The one place that wires the stages: pollers -> work queue -> workers -> senders -> acker/DLQ.

The life of one message, step by step, is in fanout.pipeline's docstring.

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
from typing import TYPE_CHECKING

from fanout.aws.checks import check_new_targets
from fanout.aws.credentials import refresher_for
from fanout.aws.limits import MAX_MESSAGE_BYTES
from fanout.aws.outage import CredentialOutage
from fanout.aws.retry import Backoff
from fanout.aws.urls import queue_name
from fanout.config import Settings
from fanout.observability.health import HealthServer, not_ready_reason
from fanout.observability.stats import Stats
from fanout.observability.telemetry import (
    Telemetry,
    observe_concurrency,
    observe_inflight_limits,
    observe_readiness,
    observe_stats,
)
from fanout.pipeline.acker import Acker
from fanout.pipeline.dlq import DeadLetters
from fanout.pipeline.inflight import InFlight, Received
from fanout.pipeline.poller import Poller, Pollers
from fanout.pipeline.routing import Routing
from fanout.pipeline.sender import QueueSender, SenderFactory
from fanout.pipeline.settle import Settler
from fanout.pipeline.tasks import TaskSupervisor
from fanout.pipeline.worker import Worker
from fanout.reload import RulesChange, RulesReloader
from fanout.rules import RuleSet
from fanout.rules import load_rules as load_rules_file
from fanout.rules.lint import log_warnings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)

# Seconds of the shutdown budget kept to release what the drain could not settle.
ABORT_RESERVE = 3.0


class Service:
    """The one wiring place: one run of the pipeline over an injected SQS client.

    Builds and owns every stage (pollers, the work queue, workers, one QueueSender per target,
    the Settler, DeadLetters, the Acker and its visibility heartbeat, the health server) and
    runs them until ``stop`` is set, then shuts down within FANOUT_SHUTDOWN_TIMEOUT_SECONDS.

    A rules reload (SIGHUP, FANOUT_WATCH_RULES: ``reloader``) goes through ``apply_rules``.

    Parameters:
        settings: the one Settings object.
        rules: the compiled rule set.
        client: the SQS client every stage calls.
        stats: the run's counters (a fresh Stats by default).
        rng: jitter for retries (seeded in tests).
        queue_limits: MaximumMessageSize per queue URL, from ``check_queues``.
        telemetry: tracer, meter and instruments (off by default).
        load_rules: how a reload reads the rules (default: ``load_rules(settings.rules)``).
        checks_client: the SDK client a reload checks new target queues with
            (GetQueueAttributes; the lean data-plane client has only the four hot calls);
            ``client`` by default.
    """

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
        load_rules: Callable[[], RuleSet] | None = None,
        checks_client: SQSClient | None = None,
    ) -> None:
        assert settings.source_queue_url is not None
        self.settings = settings
        telemetry = telemetry or Telemetry.off()
        self.telemetry = telemetry
        self._client = client
        self._checks_client = checks_client or client
        self.stats = stats or Stats()
        self.inflight = InFlight(
            settings.max_in_flight,
            settings.max_in_flight_bytes,
            message_bytes=(queue_limits or {}).get(settings.source_queue_url, MAX_MESSAGE_BYTES),
            adaptive=True,
        )
        # Unbounded: InFlight bounds it (its limit adapts, so no fixed maxsize can).
        self.work: asyncio.Queue[Received] = asyncio.Queue()
        self.stop = asyncio.Event()
        # Every long-lived task runs under it: a crash is logged, counted and restarted.
        self.tasks = TaskSupervisor(self.stats, self.stop)
        rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        backoff = Backoff.from_settings(settings)
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
            retry_budget=settings.retry_max_seconds,
            concurrency=settings.send_concurrency,
            max_concurrency=settings.max_pool_connections,
        )
        # One per process: while SQS refuses the credentials, every sender's calls take turns.
        self.outage = CredentialOutage(
            backoff=backoff,
            rng=rng,
            stats=self.stats,
            grace=settings.credential_grace_seconds,
            budget=settings.retry_max_seconds,
            refresh=refresher_for(client),
        )
        # Owned here and shared with the factory: a reload adds the new targets' limits.
        self._queue_limits = dict(queue_limits or {})
        # Sends wait out a throttled or failing target for FANOUT_RETRY_MAX_SECONDS; deletes
        # and visibility changes keep the attempt count (their messages come back anyway).
        self._senders = SenderFactory(
            client,
            backoff.with_budget(settings.retry_max_seconds),
            rng,
            self.stats,
            linger=settings.linger_seconds,
            concurrency=settings.send_concurrency,
            queue_limits=self._queue_limits,
            telemetry=telemetry,
            max_pending=settings.target_max_pending,
            outage=self.outage,
            max_concurrency=settings.max_pool_connections,
        )
        self.dead_letters = DeadLetters(settings.dlq_url, self._senders, self.acker, self.stats)
        self.settler = Settler(self.acker, self.dead_letters, self.stats, telemetry)
        self.routing = Routing(
            rules,
            {t: self._senders(t, self.settler.copy_settled) for t in rules.targets.values()},
        )
        path = settings.rules
        self.reloader = RulesReloader(
            path,
            load_rules or (lambda: load_rules_file(path)),
            self.apply_rules,
            self.stats,
            watch=settings.watch_rules,
            interval=settings.rules_watch_interval_seconds,
        )
        source_url = settings.source_queue_url
        self.pollers = Pollers(
            lambda: Poller(
                client,
                source_url,
                self.work,
                self.inflight,
                self.stats,
                wait_time=settings.wait_time_seconds,
                visibility_timeout=settings.visibility_timeout_seconds,
                backoff=backoff,
                rng=rng,
                telemetry=telemetry,
                gate=self.outage,
            ),
            self.inflight,
            self.stats,
            floor=settings.pollers,
            ceiling=settings.max_pollers,
        )
        source_name = queue_name(settings.source_queue_url)
        self.workers = [
            Worker(self.routing, self.settler, self.stats, telemetry, source_name)
            for _ in range(settings.workers)
        ]
        # Target name -> queue name for the sent-messages metric; a reload adds to it.
        self._target_queues = {n: queue_name(t.queue_url) for n, t in rules.targets.items()}
        observe_stats(
            telemetry.meter,
            self.stats,
            lambda: len(self.inflight),
            inflight_bytes=lambda: self.inflight.bytes,
            source=source_name,
            target_queues=self._target_queues,
            dlq_queue=queue_name(settings.dlq_url) if settings.dlq_url else None,
        )
        observe_concurrency(telemetry.meter, self.stats, source=source_name)
        observe_inflight_limits(
            telemetry.meter,
            lambda: self.inflight.max_in_flight,
            lambda: self.inflight.max_bytes,
            source=source_name,
        )
        observe_readiness(
            telemetry.meter,
            lambda: (
                not_ready_reason(
                    self.inflight,
                    window=settings.readiness_window_seconds,
                    stopping=self.stop.is_set(),
                )
                is None
            ),
        )
        self.health = (
            HealthServer(
                self.inflight,
                self.stop,
                window=settings.readiness_window_seconds,
                registry=telemetry.prometheus_registry,
                credentials=self.outage.not_ready_reason,
            )
            if settings.http_port is not None
            else None
        )

    async def run(self, *, exit_when_idle: float | None = None) -> Stats:
        """Run until ``self.stop`` is set (signal) or the source stayed empty ``exit_when_idle``
        seconds; then shut down gracefully and return the counters."""
        s = self.settings
        log.info(
            "fanout started: %d rules, %d targets, %d-%d pollers, %d workers, max %d in flight "
            "and %.0f MiB of bodies",
            len(self.rules.rules),
            len(self.rules.targets),
            s.pollers,
            max(s.pollers, s.max_pollers),
            s.workers,
            s.max_in_flight,
            s.max_in_flight_bytes / 2**20,
        )
        log_warnings(self.rules, log)  # Genesys schema warnings: logged, never refused
        log.debug(
            "tuning: %s data-plane client on %s, linger %.0f ms, delete linger %.0f ms, "
            "wait %d s, visibility %d s, retry budget %d attempts / %.0f s",
            s.sqs_client,
            type(asyncio.get_running_loop()).__module__.split(".")[0],  # uvloop or asyncio
            s.linger_ms,
            s.delete_linger_ms,
            s.wait_time_seconds,
            s.visibility_timeout_seconds,
            s.retry_max_attempts,
            s.retry_max_seconds,
        )
        self.stats.started_at = time.monotonic()
        self.inflight.last_message_at = time.monotonic()
        if self.health is not None:
            assert s.http_port is not None
            await self.health.start(s.http_host, s.http_port, s.http_socket_fd)
        # Drain mode: short polls, so the exit never waits out a long poll.
        self.pollers.drain = exit_when_idle is not None
        tasks = self.tasks
        heartbeat = tasks.spawn("visibility heartbeat", self.acker.heartbeat)
        reloader = tasks.spawn("rules reload", self.reloader.run)
        pollers = tasks.spawn("pollers", self.pollers.run)
        workers = [tasks.spawn("worker", functools.partial(w.run, self.work)) for w in self.workers]
        idle = (
            tasks.spawn("idle watch", functools.partial(self._watch_idle, exit_when_idle))
            if exit_when_idle is not None
            else None
        )
        try:
            await self.stop.wait()
        finally:
            if idle is not None:
                idle.cancel()
            reloader.cancel()  # a reload in progress is dropped: the running rules stay
            await asyncio.gather(reloader, return_exceptions=True)
            await self._shutdown(pollers, workers)
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            if self.health is not None:
                await self.health.stop()
            self.stats.peak_in_flight_bytes = self.inflight.peak_bytes
            self.stats.crash_loop = self.tasks.failed
        return self.stats

    @property
    def rules(self) -> RuleSet:
        """The rule set in force."""
        return self.routing.rules

    async def apply_rules(self, rules: RuleSet) -> RulesChange:
        """Check the new rules' new target queues, give each new target a sender, then swap
        (between two events). Raises StartupError, changing nothing, when a queue is missing,
        denied or unreachable. Senders of removed targets stay until drained."""
        limits = await check_new_targets(
            self._checks_client, self.settings, rules, self._queue_limits
        )
        self._queue_limits.update(limits)
        routing = self.routing
        new = {t: self._senders(t, self.settler.copy_settled) for t in routing.needs_sender(rules)}
        old = routing.rules
        routing.swap(rules, new)
        for name, target in rules.targets.items():
            self._target_queues[name] = queue_name(target.queue_url)
        routing.prune()
        return RulesChange(
            rules=len(rules.rules),
            targets=len(rules.targets),
            added=tuple(sorted(set(rules.targets) - set(old.targets))),
            removed=tuple(sorted(set(old.targets) - set(rules.targets))),
        )

    async def _watch_idle(self, idle: float) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(min(0.1, idle))
            now = time.monotonic()
            # Abandoned messages come back once visible: idle only counts from then.
            quiet = now - max(self.inflight.last_message_at, self.inflight.abandoned_until)
            held = len(self.inflight) or not self.work.empty()
            if not held and quiet >= idle:
                log.info("source queue idle for %.1fs: draining done, exiting", quiet)
                self.stop.set()

    async def _shutdown(
        self, pollers: asyncio.Task[None], workers: list[asyncio.Task[None]]
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
        self.pollers.stop()
        await asyncio.wait([pollers], timeout=max(0.0, self._left(deadline) - reserve))
        for task in [pollers, *workers]:
            task.cancel()
        await asyncio.gather(pollers, *workers, return_exceptions=True)
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
        return [*self.routing.senders, *extra]

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
