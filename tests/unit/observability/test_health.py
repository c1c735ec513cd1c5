"""health.py: the HTTP endpoints of one process, served for real on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from fanout.errors import StartupError
from fanout.observability.health import HealthServer
from fanout.pipeline.inflight import InFlight


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def test_endpoints_follow_the_registry_and_the_stop_flag() -> None:
    inflight, stop = InFlight(10), asyncio.Event()
    server = HealthServer(inflight, stop, window=5)
    port = await server.start("127.0.0.1", 0)
    try:
        assert port == server.port
        assert port > 0
        assert await get(port, "/healthz") == (200, "ok\n")
        assert await get(port, "/readyz") == (503, "not ready: no successful receive yet\n")
        inflight.last_receive_ok_at = time.monotonic()
        assert await get(port, "/readyz") == (200, "ready\n")
        stop.set()
        assert await get(port, "/readyz") == (503, "not ready: shutting down\n")
        status, text = await get(port, "/metrics")
        assert status == 404
        assert "OTEL_METRICS_EXPORTER=prometheus" in text
    finally:
        await server.stop()


async def test_a_taken_port_is_a_startup_error_naming_the_settings() -> None:
    first = HealthServer(InFlight(1), asyncio.Event(), window=5)
    port = await first.start("127.0.0.1", 0)
    try:
        second = HealthServer(InFlight(1), asyncio.Event(), window=5)
        with pytest.raises(StartupError, match=f"127.0.0.1:{port}.*FANOUT_HTTP_PORT"):
            await second.start("127.0.0.1", port)
    finally:
        await first.stop()


async def test_refused_credentials_past_the_grace_make_it_not_ready() -> None:
    inflight, stop = InFlight(10), asyncio.Event()
    inflight.last_receive_ok_at = time.monotonic()
    reason: list[str | None] = [None]
    server = HealthServer(inflight, stop, window=5, credentials=lambda: reason[0])
    port = await server.start("127.0.0.1", 0)
    try:
        assert await get(port, "/readyz") == (200, "ready\n")
        reason[0] = "SQS refused fanout's credentials for 12s (ExpiredToken, 40 calls)"
        assert await get(port, "/readyz") == (503, f"not ready: {reason[0]}\n")
        reason[0] = None  # a call succeeded
        assert await get(port, "/readyz") == (200, "ready\n")
    finally:
        await server.stop()
