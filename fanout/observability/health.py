"""Health endpoints on FANOUT_HTTP_PORT (aiohttp server): /healthz, /readyz, /metrics.

/healthz answers from the event loop, so an answer means the loop is alive. /readyz asks more:
a ReceiveMessage succeeded recently (unless backpressure is what holds the pollers) and the
in-flight messages are settling. /metrics is the OpenTelemetry Prometheus exporter's registry,
when OTEL_METRICS_EXPORTER includes ``prometheus``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from fanout.errors import StartupError

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What readiness reads of the messages in flight (``fanout.pipeline.inflight.InFlight``);
    a protocol, so observability does not import the pipeline."""

    @property
    def last_settled_at(self) -> float: ...

    @property
    def last_receive_ok_at(self) -> float | None: ...

    @property
    def held(self) -> bool: ...

    def __len__(self) -> int: ...


def not_ready_reason(
    inflight: Progress, *, window: float, stopping: bool, now: float | None = None
) -> str | None:
    """Why the service is not ready, or None when it is (pure; ``now`` is time.monotonic())."""
    now = time.monotonic() if now is None else now
    if stopping:
        return "shutting down"
    if len(inflight) and now - inflight.last_settled_at > window:
        return (
            f"stuck: {len(inflight)} messages in flight, none settled for "
            f"{now - inflight.last_settled_at:.0f}s"
        )
    if not inflight.held:  # pollers are not held by backpressure: they should be receiving
        if inflight.last_receive_ok_at is None:
            return "no successful receive yet"
        if now - inflight.last_receive_ok_at > window:
            return f"no successful receive for {now - inflight.last_receive_ok_at:.0f}s"
    return None


Handler = Callable[[web.Request], Awaitable[web.Response]]


async def serve_endpoints(
    host: str,
    port: int,
    *,
    healthz: Handler,
    readyz: Handler,
    metrics: Handler,
    socket_fd: int | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve the three endpoints; the runner and the bound port (``port`` 0 picks one), or
    on the inherited listening socket ``socket_fd`` (a --processes child). A port that cannot
    be bound is a ``StartupError`` naming the settings to change."""
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    # No access log: a probe every few seconds is not a state change.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        if socket_fd is not None:
            await web.SockSite(runner, socket.socket(fileno=socket_fd)).start()
        else:
            await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(
            f"cannot serve health endpoints on {host}:{port}: {exc.strerror or exc} "
            "(set FANOUT_HTTP_PORT / FANOUT_HTTP_HOST)"
        ) from None
    return runner, int(runner.addresses[0][1])


class HealthServer:
    """The HTTP endpoints of one process (aiohttp, on FANOUT_HTTP_HOST:FANOUT_HTTP_PORT):
    ``/healthz`` (the event loop answers), ``/readyz`` (see ``not_ready_reason``) and
    ``/metrics`` (Prometheus text, only when OTEL_METRICS_EXPORTER includes prometheus).

    Owns the aiohttp runner; logs readiness changes once each.

    Parameters:
        inflight: the registry whose receive and settle times decide readiness.
        stop: set when the service is shutting down (then not ready).
        window: FANOUT_READINESS_WINDOW_SECONDS.
        registry: the Prometheus registry to serve on /metrics, or None.
    """

    def __init__(
        self,
        inflight: Progress,
        stop: asyncio.Event,
        *,
        window: float,
        registry: Any = None,
    ) -> None:
        self._inflight = inflight
        self._stop = stop
        self._window = window
        self._registry = registry
        self._ready: bool | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int, socket_fd: int | None = None) -> int:
        self._runner, self.port = await serve_endpoints(
            host,
            port,
            healthz=self._healthz,
            readyz=self._readyz,
            metrics=self._metrics,
            socket_fd=socket_fd,
        )
        log.info("health endpoints on http://%s:%d (/healthz, /readyz, /metrics)", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        reason = not_ready_reason(self._inflight, window=self._window, stopping=self._stop.is_set())
        ready = reason is None
        if ready != self._ready:  # log state changes, not probes
            if ready:
                log.info("ready")
            elif self._ready is not None:
                log.warning("not ready: %s", reason)
            self._ready = ready
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._registry is None:
            return web.Response(
                status=404, text="metrics off: set OTEL_METRICS_EXPORTER=prometheus\n"
            )
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = await asyncio.to_thread(generate_latest, self._registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
