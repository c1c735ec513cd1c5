"""``fanout run --processes N``: N full pipelines as child processes, one supervisor.

One asyncio process uses one core; SQS already shares a queue between consumers, so the way to
use every core is N independent pipelines (``python -m fanout run`` children, each with its own
client, pollers and in-flight bound). The supervisor adds only what a host needs:

* signals: SIGTERM/SIGINT are forwarded once to every child (each drains within
  FANOUT_SHUTDOWN_TIMEOUT_SECONDS); a second one is forwarded again (children stop waiting);
  a child still alive past the bound plus a grace is killed. Children run in their own session
  (a terminal's Ctrl-C reaches only the supervisor, so they never see it twice) and stop on
  their own if the supervisor disappears (``watch_parent``). SIGHUP is forwarded: each child
  reloads the rules.
* restarts: a child that exits unexpectedly is started again after a backoff (logged and
  counted). Only exit code 2 at a child's first start (bad configuration) stops the
  supervisor (with 2); after that a 2 is transient (queues unreachable past the start-up
  retries, a rules file mid-edit) and restarted like any exit.
* one summary: each child writes ``--summary-json``; the supervisor sums them.
* one ``/healthz`` ``/readyz`` ``/metrics`` on FANOUT_HTTP_PORT: children serve theirs on
  internal loopback sockets the supervisor binds once and passes down (FANOUT_HTTP_SOCKET_FD,
  kept across restarts: no port race); ready when every child is ready; metrics merged with
  a ``fanout_process`` label.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import yaml
from aiohttp import web

from fanout.aws.checks import check_queues
from fanout.aws.client import create_client
from fanout.config import Settings, env_name
from fanout.observability.health import serve_endpoints
from fanout.observability.stats import merge_summaries
from fanout.rules import load_rules

if TYPE_CHECKING:
    from fanout.local.run import LocalOptions

log = logging.getLogger(__name__)

# Restart backoff: doubles per consecutive failure up to the cap; a child that ran this long
# counts as healthy again (k8s CrashLoopBackOff in miniature).
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 30.0
RESTART_RESET_AFTER = 60.0
# Beyond the children's own shutdown bound: interpreter teardown, telemetry flush.
KILL_GRACE = 5.0
CHILD_PROBE_TIMEOUT = 2.0
CONFIG_EXIT = 2
PROCESS_LABEL = "fanout_process"
CHILD_RESTARTS = "fanout_child_restarts"  # served as fanout_child_restarts_total
RESOURCE_ATTRIBUTE = "fanout.process.index"


@dataclass
class Child:
    index: int
    sock: socket.socket | None  # the bound listening socket of its health endpoints
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    starts: int = 0
    failures: int = 0  # consecutive unexpected exits
    restarts: int = 0  # unexpected exits, all told (fanout_child_restarts_total)
    finished: bool = False  # exited 0 in drain mode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def port(self) -> int | None:
        return None if self.sock is None else int(self.sock.getsockname()[1])


@dataclass
class Supervisor:
    """Starts and watches ``processes`` children running ``settings``; see the module doc.

    Parameters:
        settings: the resolved Settings; every field is passed to the children as FANOUT_*.
        processes: how many children.
        workdir: where the children write their summaries.
        exit_when_idle: drain mode (children exit 0 when idle; not restarted then).
    """

    settings: Settings
    processes: int
    workdir: Path
    exit_when_idle: float | None = None
    restarts: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    children: list[Child] = field(default_factory=list)
    exit_code: int = 0
    port: int | None = None  # of the host health server, once started
    env_overrides: Mapping[str, str | None] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    async def run(self) -> dict[str, Any]:
        """Run the children until a signal (or, in drain mode, until all are done); return
        the merged summary. ``exit_code`` is 2 if a child's first start reported bad
        configuration."""
        started = time.monotonic()
        internal = self.settings.http_port is not None
        self.children = [
            Child(i, listen_loopback() if internal else None) for i in range(self.processes)
        ]
        self._install_signals()
        async with contextlib.AsyncExitStack() as sockets, aiohttp.ClientSession() as self._http:
            for child in self.children:
                if child.sock is not None:
                    sockets.callback(child.sock.close)
            if self.settings.http_port is not None:
                await self._serve_health(self.settings.http_host, self.settings.http_port)
            log.info("supervisor: starting %d pipelines", self.processes)
            watchers = [asyncio.create_task(self._watch(c)) for c in self.children]

            async def stopped() -> None:
                await self.stop.wait()

            async def all_finished() -> None:  # drain mode: every child exited 0
                await asyncio.gather(*watchers)

            waiters = [asyncio.create_task(stopped()), asyncio.create_task(all_finished())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if self.stop.is_set():
                    await self._terminate(watchers)
                elif waiters[1].done():
                    waiters[1].result()  # a watcher that failed (e.g. cannot exec) raises here
            finally:
                for task in [*waiters, *watchers]:
                    task.cancel()
                await asyncio.gather(*watchers, *waiters, return_exceptions=True)
                if self._runner is not None:
                    await self._runner.cleanup()
        summaries = [orjson.loads(p.read_bytes()) for p in sorted(self.workdir.glob("*.json"))]
        return merge_summaries(
            summaries,
            elapsed=time.monotonic() - started,
            processes=self.processes,
            restarts=self.restarts,
        )

    # -- children --------------------------------------------------------------------------

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        child.starts += 1
        summary = self.workdir / f"child-{child.index}-run-{child.starts}.json"
        args = [sys.executable, "-m", "fanout", "run", "--summary-json", str(summary)]
        if self.exit_when_idle is not None:
            args += ["--exit-when-idle", str(self.exit_when_idle)]
        fd = child.sock.fileno() if child.sock is not None else None
        env = child_env(os.environ, self.settings, child.index, child.port, self.env_overrides, fd)
        proc = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            pass_fds=() if fd is None else (fd,),
            stdout=asyncio.subprocess.DEVNULL,  # the supervisor prints the one summary
            start_new_session=True,  # signals reach children only through the supervisor
        )
        child.proc, child.started_at = proc, time.monotonic()
        log.info("child %d started: pid %d", child.index, proc.pid)
        return proc

    async def _watch(self, child: Child) -> None:
        while not self.stop.is_set():
            proc = await self._spawn(child)
            if self.stop.is_set():  # stopped while it was starting: it missed the SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
            if self.stop.is_set():
                return
            if code == 0 and self.exit_when_idle is not None:
                child.finished = True
                return
            if code == CONFIG_EXIT and child.starts == 1:
                log.error("child %d exited with code 2 (configuration): stopping", child.index)
                self.exit_code = CONFIG_EXIT
                self.stop.set()
                return
            ran = time.monotonic() - child.started_at
            child.failures = 1 if ran >= RESTART_RESET_AFTER else child.failures + 1
            delay = min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2 ** (child.failures - 1))
            self.restarts += 1
            child.restarts += 1
            log.warning(
                "child %d (pid %d) died (%s) after %.1fs: restart %d in %.1fs",
                child.index,
                proc.pid,
                describe_exit(code),
                ran,
                self.restarts,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            name = signal.Signals(signum).name
            if not self.stop.is_set():
                log.info(
                    "%s received: stopping %d pipelines (again to force)", name, self.processes
                )
                self.stop.set()
            else:  # the children's second signal: stop waiting
                self._signal_children(signal.SIGTERM)

        def on_hangup() -> None:
            log.info("SIGHUP received: each pipeline reloads the rules")
            self._signal_children(signal.SIGHUP)

        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal, signum)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, on_hangup)

    def _signal_children(self, signum: int) -> None:
        for child in self.children:
            if child.proc is not None and child.running:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)

    async def _terminate(self, watchers: list[asyncio.Task[None]]) -> None:
        self._signal_children(signal.SIGTERM)
        bound = self.settings.shutdown_timeout_seconds + KILL_GRACE
        procs = [c.proc.wait() for c in self.children if c.proc is not None and c.running]
        try:
            async with asyncio.timeout(bound):
                await asyncio.gather(*procs)
        except TimeoutError:
            log.error("children still running %.0fs after SIGTERM: killed", bound)
            self._signal_children(signal.SIGKILL)
        await asyncio.gather(*watchers, return_exceptions=True)

    # -- health --------------------------------------------------------------------------

    async def _serve_health(self, host: str, port: int) -> None:
        self._runner, self.port = await serve_endpoints(
            host, port, healthz=self._healthz, readyz=self._readyz, metrics=self._metrics
        )
        log.info("host health endpoints on http://%s:%d (every child's, merged)", host, self.port)

    def _child_lines(self) -> list[str]:
        return [
            f"child {c.index}: pid {c.proc.pid if c.proc else '-'} "
            f"{'running' if c.running else 'finished' if c.finished else 'restarting'}, "
            f"starts {c.starts}"
            for c in self.children
        ]

    async def _get(self, child: Child, path: str) -> tuple[int, str]:
        assert self._http is not None
        assert child.port is not None
        try:
            timeout = aiohttp.ClientTimeout(total=CHILD_PROBE_TIMEOUT)
            async with self._http.get(
                f"http://127.0.0.1:{child.port}{path}", timeout=timeout
            ) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, f"no answer ({type(exc).__name__})"

    async def _healthz(self, request: web.Request) -> web.Response:
        # The supervisor's loop answers: a child being restarted is not a reason to kill the
        # host's container (the restart is ours to do); /readyz says it is not serving.
        return web.Response(text="ok\n" + "\n".join(self._child_lines()) + "\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.stop.is_set():
            return web.Response(status=503, text="not ready: shutting down\n")
        answers = await asyncio.gather(
            *(self._get(c, "/readyz") if c.running else _not_running(c) for c in self.children)
        )
        reasons = [
            f"child {c.index}: {text.strip()}"
            for c, (status, text) in zip(self.children, answers, strict=True)
            if status != 200
        ]
        if not reasons:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: " + "; ".join(reasons) + "\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        running = [c for c in self.children if c.running]
        answers = await asyncio.gather(*(self._get(c, "/metrics") for c in running))
        texts = {
            c.index: text
            for c, (status, text) in zip(running, answers, strict=True)
            if status == 200
        }
        if not texts and not _prometheus_on():
            return web.Response(
                status=404, text="metrics off: set OTEL_METRICS_EXPORTER=prometheus\n"
            )
        from prometheus_client import CONTENT_TYPE_LATEST

        # The restarts come from the supervisor itself: served even while every child is down.
        restarts = {c.index: c.restarts for c in self.children}
        response = web.Response(body=merge_metrics(texts, restarts))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def _prometheus_on() -> bool:
    """Whether the children export Prometheus metrics (OTEL_METRICS_EXPORTER), as they read it."""
    from fanout.observability.telemetry import metric_exporter_names

    return "prometheus" in metric_exporter_names(os.environ)


async def _not_running(child: Child) -> tuple[int, str]:
    return 0, "finished" if child.finished else "not running (being restarted)"


def describe_exit(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def listen_loopback() -> socket.socket:
    """A listening loopback socket for one child's health endpoints: bound here, once, and
    inherited by each start of the child, so no other process can take its port meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def child_env(
    base: Mapping[str, str],
    settings: Settings,
    index: int,
    port: int | None,
    overrides: Mapping[str, str | None] | None = None,
    socket_fd: int | None = None,
) -> dict[str, str]:
    """The environment of child ``index``: ``base`` with every Settings field as its FANOUT_*
    variable (what the supervisor resolved from flags and environment), one process each,
    its index, its internal health port and inherited socket ``socket_fd``, and the index as
    an OTLP resource attribute. ``overrides``: more variables (None: removed)."""
    env = dict(base)
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    values = settings.model_dump()
    values.update(
        processes=1,
        process_index=index,
        http_port=port,
        http_socket_fd=socket_fd,
        http_host="127.0.0.1" if port is not None else settings.http_host,
    )
    for name, value in values.items():
        env.pop(env_name(name), None)
        if value is not None:
            env[env_name(name)] = str(value)
    for alias in ("GENESYS_SOURCE_QUEUE_URL", "GENESYS_DLQ_URL"):
        env.pop(alias, None)  # resolved into FANOUT_* above
    attribute = f"{RESOURCE_ATTRIBUTE}={index}"
    existing = env.get("OTEL_RESOURCE_ATTRIBUTES")
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"{existing},{attribute}" if existing else attribute
    return env


def merge_metrics(texts: Mapping[int, str], restarts: Mapping[int, int] | None = None) -> bytes:
    """The children's Prometheus texts as one exposition: each family once, every sample
    labelled ``fanout_process="<index>"``; plus the supervisor's own counter of each child's
    unexpected exits, ``fanout_child_restarts_total{fanout_process="<index>"}``."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import CounterMetricFamily, Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    if restarts is not None:
        counter = CounterMetricFamily(
            CHILD_RESTARTS,
            "Unexpected exits of each --processes child, restarted by the supervisor",
            labels=[PROCESS_LABEL],
        )
        for index, count in sorted(restarts.items()):
            counter.add_metric([str(index)], count)
        families[CHILD_RESTARTS] = counter
    for index, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            for sample in family.samples:
                labels = {**sample.labels, PROCESS_LABEL: str(index)}
                merged.samples.append(sample._replace(labels=labels))

    class Children:
        def collect(self) -> list[Metric]:
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Children())
    return bytes(generate_latest(registry))


async def watch_parent(stop: asyncio.Event, interval: float = 1.0) -> None:
    """In a child: stop gracefully when the supervisor is gone (re-parented), so no pipeline
    outlives it, e.g. after a SIGKILL of the supervisor."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(interval)
        if os.getppid() != parent:
            log.warning("supervisor (pid %d) is gone: stopping", parent)
            stop.set()


def bind_rules_file(source: Path, target_urls: Mapping[str, str], dest: Path) -> Path:
    """A copy of ``source`` with the targets' queue URLs replaced (the local run's queues), for
    children that load the rules file themselves."""
    raw = yaml.safe_load(source.read_text())
    for name, url in target_urls.items():
        raw["targets"][name]["queue_url"] = url
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest


async def check_once(settings: Settings) -> None:
    """The start-up checks once in the supervisor: a bad rules file or a missing queue is one
    line (exit 2) before any child starts, not one line per child."""
    rules = load_rules(settings.rules)
    async with create_client(settings) as client:
        await check_queues(client, settings, rules)


async def supervise(
    settings: Settings,
    processes: int,
    *,
    exit_when_idle: float | None = None,
    local: LocalOptions | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run ``processes`` pipelines; with ``local``, all on one embedded moto server (the
    supervisor hosts it, feeds it and drains its targets). Returns (exit code, summary)."""
    with tempfile.TemporaryDirectory(prefix="fanout-supervisor-") as tmp:
        workdir = Path(tmp)
        async with _environment(settings, local, workdir) as (resolved, overrides):
            supervisor = Supervisor(
                resolved, processes, workdir, exit_when_idle, env_overrides=overrides
            )
            summary = await supervisor.run()
        return supervisor.exit_code, summary


@contextlib.asynccontextmanager
async def _environment(
    settings: Settings, local: LocalOptions | None, workdir: Path
) -> AsyncIterator[tuple[Settings, dict[str, str | None]]]:
    """The children's settings and extra environment: as given (checked once), or pointing at
    the embedded moto server of a local run."""
    if local is None:
        await check_once(settings)
        yield settings, {}
        return
    from fanout.local.run import LOCAL_CREDENTIALS, local_sqs

    async with local_sqs(settings, local) as sqs:
        rules = bind_rules_file(settings.rules, sqs.target_urls, workdir / "local-rules.yaml")
        # The children reach moto with the supervisor's dummy credentials, never real ones.
        credentials: dict[str, str | None] = {
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": None,
            "AWS_PROFILE": None,
        }
        yield sqs.settings.model_copy(update={"rules": rules}), credentials
