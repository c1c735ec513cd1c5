"""A real forwarding proxy and a TLS endpoint on loopback, for the client transport tests.

``ForwardProxy`` runs proxy.py (absolute-form HTTP forwarding and CONNECT tunnels) on
127.0.0.1 in its own processes; what it forwarded is read back from a file its
``RecordForwarded`` plugin appends proxy.py's access-log record to (its own log file is not
written under pytest, whose handlers make ``logging.basicConfig`` a no-op). proxy.py writes one
record per client connection when it closes: read it after closing the client.
``TlsFront`` terminates TLS with a trustme certificate on 127.0.0.1 and relays the bytes to a
plain HTTP server (moto), so a client can reach moto over HTTPS, directly or through CONNECT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import proxy
from proxy.common.flag import flags
from proxy.http.proxy import HttpProxyBasePlugin

# proxy.py's way to give a plugin an option: a flag registered at import.
flags.add_argument("--forwarded-log", type=str, default=None, help="RecordForwarded's file")


class RecordForwarded(HttpProxyBasePlugin):
    """Appends each access-log record (one JSON line) to ``--forwarded-log``."""

    def on_access_log(self, context: dict[str, Any]) -> dict[str, Any] | None:
        path = getattr(self.flags, "forwarded_log", None)
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(context, default=str) + "\n")
        return context


@dataclass(frozen=True)
class Forwarded:
    method: str  # CONNECT for a tunnel, else the forwarded request's method
    target: str  # host:port for CONNECT, host:port/path for a forwarded request


class ForwardProxy:
    """proxy.py on 127.0.0.1 (a free port); ``basic_auth`` ("user:password") makes it demand
    ``Proxy-Authorization``."""

    def __init__(self, log_dir: Path, *, basic_auth: str | None = None) -> None:
        self._log = log_dir / f"forwarded-{id(self)}.jsonl"
        args = ["--hostname", "127.0.0.1", "--port", "0", "--num-acceptors", "1"]
        args += ["--num-workers", "1", "--forwarded-log", str(self._log)]
        if basic_auth:
            args += ["--basic-auth", basic_auth]
        self._proxy = proxy.Proxy(args, plugins=[RecordForwarded])
        self.port = 0

    def __enter__(self) -> Self:
        self._proxy.__enter__()
        self.port = int(self._proxy.flags.port)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._proxy.__exit__(exc_type, exc, tb)

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def forwarded(self) -> list[Forwarded]:
        if not self._log.exists():
            return []
        records = [json.loads(line) for line in self._log.read_text().splitlines() if line]
        return [
            Forwarded(
                str(r["request_method"]),
                f"{r['server_host']}:{r['server_port']}"
                + ("" if r["request_method"] == "CONNECT" else str(r["request_path"])),
            )
            for r in records
        ]

    async def wait_for(self, method: str, target: str, timeout: float = 10.0) -> list[Forwarded]:
        """The lines for ``method`` to ``target`` (a host:port prefix) once there is one, or
        [] after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [
                f for f in self.forwarded() if f.method == method and f.target.startswith(target)
            ]
            if lines or time.monotonic() > deadline:
                return lines
            await asyncio.sleep(0.1)


class TlsFront:
    """A TLS server on 127.0.0.1 relaying each connection to ``upstream`` (host, port)."""

    def __init__(self, context: ssl.SSLContext, upstream: tuple[str, int]) -> None:
        self._context = context
        self._upstream = upstream
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._context, family=socket.AF_INET
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, ssl.SSLError):
            pass  # a client that refused our certificate, or a closed peer
        finally:
            self._relays.discard(task)
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
