"""The lean SQS data-plane client: the four hot calls over aiohttp, awsJson1_0, orjson.

aiobotocore spends most of a SendMessageBatch's CPU on per-call machinery (request objects,
event hooks, model-driven serialization and parsing), several times the work itself (see
docs/performance's numbers). fanout's pipeline makes four calls on its data plane, always with the
same shapes, so this client makes exactly those four, with the SDK's keyword arguments and
response dicts: the pipeline cannot tell the two apart (tests/integration/test_client_contract.py
runs one contract suite against both).

What it keeps from the SDK: the session, so the credential provider chain and its refresh
(``fanout.aws.credentials``), SigV4 (``fanout.aws.sigv4``, equal to botocore's byte for byte),
and the endpoint, proxies and trust store as botocore resolves them from the session and the
client Config (``fanout.aws.transport``: ``AWS_ENDPOINT_URL_SQS``, ``HTTPS_PROXY``/``NO_PROXY``,
``AWS_CA_BUNDLE``, FIPS/dual-stack, ...), the error shape (``ClientError`` with the same
``Error.Code``, ``Type``, ``QueryErrorCode`` and HTTP status) and the exception classes for
connection, proxy and TLS failures and timeouts, so ``fanout.aws.retry`` classifies both
clients' failures the same way.

What it adds: each queue is called at the endpoint of its own region (taken from its URL) and
signed for that region, so targets in other regions work; and ``MD5OfBody`` of every received
message is verified, and ``MD5OfMessageAttributes`` when it has attributes (as the Java and Go
SDKs do): a mismatch raises ``MessageIntegrityError``,
a retryable receive failure, and the messages come back after their visibility timeout.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import SSLError as BotoSSLError
from botocore.httpsession import get_cert_path
from botocore.regions import EndpointResolver
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from yarl import URL

from fanout import __version__
from fanout.aws.credentials import CredentialSource
from fanout.aws.retry import MessageIntegrityError
from fanout.aws.sigv4 import SigV4Signer, canonical_host
from fanout.aws.transport import Proxy, ProxyPolicy, Transport
from fanout.aws.urls import region_of
from fanout.jsontypes import bytes_as_base64

CONTENT_TYPE: Final = "application/x-amz-json-1.0"
# Requests at least this large are copied to their exact size (see ``_call``); below it
# orjson's excess is small and a copy would only cost CPU.
EXACT_COPY_BYTES: Final = 64 * 1024
USER_AGENT: Final = f"fanout/{__version__} lean-sqs aiohttp/{aiohttp.__version__}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one queue's calls go, through which proxy, and how they are signed."""

    url: str  # scheme://host[:port]/path the POST goes to
    host: str  # the Host header, as signed
    path: str
    region: str
    target: URL  # ``url`` parsed once: aiohttp would parse a str on every request
    proxy: Proxy | None = None


def endpoint_of(url: str, region: str, proxies: ProxyPolicy | None = None) -> Endpoint:
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"not an endpoint URL: {url!r}")
    path = parts.path or "/"
    request_url = f"{parts.scheme}://{parts.netloc}{path}"  # as botocore's (in errors)
    return Endpoint(
        url=request_url,
        host=canonical_host(parts.scheme, parts.hostname, parts.port),
        path=path,
        region=region,
        target=URL(request_url),
        proxy=proxies.for_url(request_url) if proxies is not None else None,
    )


class EndpointTable:
    """The endpoint of each queue: the override, else the queue's region's SQS endpoint.

    Resolved once per queue URL (botocore's endpoints table, FIPS/dual-stack from the AWS
    config, the proxy for that endpoint) and cached: a lookup per call is one dict get.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        default_region: str,
        resolver: EndpointResolver | None = None,
        use_fips: bool = False,
        use_dualstack: bool = False,
        proxies: ProxyPolicy | None = None,
    ) -> None:
        self._proxies = proxies
        self._override = (
            endpoint_of(endpoint_url, default_region, proxies) if endpoint_url else None
        )
        self._default_region = default_region
        self._resolver = resolver
        self._use_fips = use_fips
        self._use_dualstack = use_dualstack
        self._by_queue: dict[str, Endpoint] = {}
        self._by_region: dict[str, Endpoint] = {}

    def __call__(self, queue_url: str) -> Endpoint:
        found = self._by_queue.get(queue_url)
        if found is None:
            found = self._override or self._regional(region_of(queue_url) or self._default_region)
            self._by_queue[queue_url] = found
        return found

    def _regional(self, region: str) -> Endpoint:
        found = self._by_region.get(region)
        if found is None:
            hostname = None
            if self._resolver is not None:
                resolved = self._resolver.construct_endpoint(
                    "sqs",
                    region,
                    use_fips_endpoint=self._use_fips,
                    use_dualstack_endpoint=self._use_dualstack,
                )
                hostname = resolved.get("hostname") if resolved else None
            # A region newer than botocore's table: the standard pattern of the aws partition.
            found = endpoint_of(
                f"https://{hostname or f'sqs.{region}.amazonaws.com'}/", region, self._proxies
            )
            self._by_region[region] = found
        return found


def _uninstrumented(session: aiohttp.ClientSession) -> aiohttp.ClientSession | None:
    """A session sharing ``session``'s pool and settings, without the HTTP client span hooks;
    None when ``session`` has none (tracing off or the aiohttp-client instrumentation off)."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    if not session.trace_configs:
        return None
    plain = aiohttp.ClientSession(
        connector=session.connector,
        connector_owner=False,
        timeout=session.timeout,
        skip_auto_headers=tuple(session.skip_auto_headers),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    AioHttpClientInstrumentor.uninstrument_session(plain)
    return plain


class LeanSQSClient:
    """ReceiveMessage, SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch.

    Use as an async context manager (it owns one aiohttp session and its keep-alive pool).
    Parameters:
        credentials: where each call's credentials come from.
        endpoints: the endpoint and signing region of each queue.
        max_pool_connections: the keep-alive pool's size (FANOUT_MAX_POOL_CONNECTIONS).
        connect_timeout, read_timeout: seconds, as the SDK client is configured.
        ssl_context: the trust store and verification (None: botocore's default bundle); it
            verifies through proxies too (``fanout.aws.transport.tls_context``).
    """

    def __init__(
        self,
        credentials: CredentialSource,
        endpoints: EndpointTable,
        *,
        max_pool_connections: int = 256,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._credentials = credentials
        self._endpoints = endpoints
        self._signer = SigV4Signer("sqs")
        self._pool_size = max_pool_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        # The same pool without the OpenTelemetry HTTP client hooks, for calls whose span is
        # sampled out: the hooks would run on every request only to find they are suppressed.
        self._plain: aiohttp.ClientSession | None = None
        self._second = -1  # the SigV4 timestamp, formatted once per second
        self._timestamp = ""
        # Receive bodies arrive as str; MD5 over UTF-8 bytes. usedforsecurity=False: an
        # integrity check, and it keeps working on FIPS-mode OpenSSL builds.
        self._md5 = hashlib.md5

    async def __aenter__(self) -> Self:
        ssl_context = self._ssl or ssl.create_default_context(cafile=get_cert_path(True))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._pool_size, ssl=ssl_context),
            timeout=self._timeout,
            skip_auto_headers=("Accept", "Accept-Encoding"),
            cookie_jar=aiohttp.DummyCookieJar(),  # SQS sets no cookies: skip the jar per call
        )
        self._plain = _uninstrumented(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def endpoint(self, queue_url: str) -> Endpoint:
        """Where this queue's calls go (and through which proxy), and their signing region."""
        return self._endpoints(queue_url)

    async def close(self) -> None:
        session, self._session = self._session, None
        plain, self._plain = self._plain, None
        if plain is not None:
            await plain.close()
        if session is not None:
            await session.close()

    async def refresh_credentials(self) -> None:
        """Force a credential refresh (SQS refused the current ones: fanout.aws.outage)."""
        await self._credentials.refresh()

    # --- the four calls ----------------------------------------------------------------

    async def receive_message(self, **params: Any) -> dict[str, Any]:
        response = await self._call("ReceiveMessage", params)
        messages = response.get("Messages")
        if messages:
            for message in messages:
                self._verify(message)
        return response

    async def send_message_batch(self, **params: Any) -> dict[str, Any]:
        return await self._call("SendMessageBatch", params)

    async def delete_message_batch(self, **params: Any) -> dict[str, Any]:
        return await self._call("DeleteMessageBatch", params)

    async def change_message_visibility_batch(self, **params: Any) -> dict[str, Any]:
        return await self._call("ChangeMessageVisibilityBatch", params)

    # --- one call ------------------------------------------------------------------------

    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        session = self._session
        if session is None:
            raise RuntimeError("LeanSQSClient is not open (use it with `async with`)")
        if self._plain is not None and not is_http_instrumentation_enabled():
            session = self._plain
        endpoint = self._endpoints(params["QueueUrl"])
        body = orjson.dumps(params, default=bytes_as_base64)
        if len(body) >= EXACT_COPY_BYTES:
            # orjson over-allocates for a long string and keeps the excess while the request is
            # sent. Freed, such blocks scatter glibc's heap, which then keeps what later bodies
            # touch: RSS grew far past FANOUT_MAX_IN_FLIGHT_BYTES (docs/performance, "Numbers
            # behind code choices"). An exact copy frees the block now.
            body = bytes(memoryview(body))
        headers = {
            "Host": endpoint.host,
            "X-Amz-Target": "AmazonSQS." + operation,
            "Content-Type": CONTENT_TYPE,
            "x-amzn-query-mode": "true",
            "User-Agent": USER_AGENT,  # not signed (botocore's rule), per request: no merging
        }
        credentials = await self._credentials.frozen()
        self._signer.sign(
            headers,
            method="POST",
            path=endpoint.path,
            body=body,
            region=endpoint.region,
            timestamp=self._now(),
            access_key=credentials.access_key or "",
            secret_key=credentials.secret_key or "",
            token=credentials.token,
        )
        # The same exception classes aiobotocore raises (aiobotocore.httpsession), so
        # fanout.aws.retry classifies a dropped connection or a timeout the same way.
        proxy = endpoint.proxy
        try:
            async with session.post(
                endpoint.target,
                data=body,
                headers=headers,
                proxy=proxy.url if proxy is not None else None,
            ) as response:
                raw = await response.read()
                status = response.status
                response_headers = response.headers
        except aiohttp.ClientSSLError as exc:
            raise BotoSSLError(endpoint_url=endpoint.url, error=exc) from exc
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            masked = proxy.masked if proxy is not None else ""
            raise ProxyConnectionError(proxy_url=masked, error=exc) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionClosedError(endpoint_url=endpoint.url, error=exc) from exc
        except aiohttp.ServerTimeoutError as exc:
            if str(exc).lower().startswith("connect"):
                raise ConnectTimeoutError(endpoint_url=endpoint.url, error=exc) from exc
            raise ReadTimeoutError(endpoint_url=endpoint.url, error=exc) from exc
        except aiohttp.ClientConnectionError as exc:
            raise EndpointConnectionError(endpoint_url=endpoint.url, error=exc) from exc
        except TimeoutError as exc:
            raise ReadTimeoutError(endpoint_url=endpoint.url, error=exc) from exc
        except aiohttp.ClientError as exc:
            raise HTTPClientError(error=exc) from exc
        metadata = {
            "RequestId": response_headers.get("x-amzn-requestid", ""),
            "HTTPStatusCode": status,
            "HTTPHeaders": response_headers,  # case-insensitive (botocore's: lower-cased keys)
            "RetryAttempts": 0,
        }
        if status >= 300:
            metadata["HTTPHeaders"] = {k.lower(): v for k, v in response_headers.items()}
            raise ClientError(_error(status, raw, response_headers, metadata), operation)  # type: ignore[arg-type]
        parsed: dict[str, Any] = orjson.loads(raw) if raw else {}
        parsed["ResponseMetadata"] = metadata
        return parsed

    def _now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._timestamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._timestamp

    def _verify(self, message: dict[str, Any]) -> None:
        """MD5OfBody must match the body and MD5OfMessageAttributes the attributes; binary
        attribute values become bytes (as in botocore's parsed response)."""
        expected = message.get("MD5OfBody")
        body = message.get("Body")
        if expected is not None and body is not None:
            actual = self._md5(body.encode(), usedforsecurity=False).hexdigest()
            if actual != expected:
                raise MessageIntegrityError(
                    f"message {message.get('MessageId')}: MD5 of the received body {actual} "
                    f"!= MD5OfBody {expected}"
                )
        attributes = message.get("MessageAttributes")
        if attributes:
            for value in attributes.values():
                binary = value.get("BinaryValue")
                if isinstance(binary, str):
                    value["BinaryValue"] = base64.b64decode(binary)
            expected = message.get("MD5OfMessageAttributes")
            if expected is not None:
                actual = attributes_md5(attributes)
                if actual != expected:
                    raise MessageIntegrityError(
                        f"message {message.get('MessageId')}: MD5 of the received message "
                        f"attributes {actual} != MD5OfMessageAttributes {expected}"
                    )


def _framed(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def attributes_md5(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """MD5OfMessageAttributes as SQS computes it: attributes sorted by name; for each, its
    name, data type and value as 4-byte big-endian length + bytes (UTF-8 for text), with a
    transport byte before the value (1: String/Number, 2: Binary)."""
    parts: list[bytes] = []
    for name in sorted(attributes):
        value = attributes[name]
        parts += (_framed(name.encode()), _framed(str(value["DataType"]).encode()))
        if value.get("StringValue") is not None:
            parts += (b"\x01", _framed(str(value["StringValue"]).encode()))
        elif value.get("BinaryValue") is not None:
            parts += (b"\x02", _framed(bytes(value["BinaryValue"])))
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()


def _error(status: int, raw: bytes, headers: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """The error dict botocore's JSON parser builds (parsers.BaseJSONParser._do_error_parse and
    ResponseParser's generic 5xx case), including SQS's x-amzn-query-error legacy codes."""
    stripped = raw.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        error = {"Code": str(status), "Message": http.client.responses.get(status, "")}
        return {"Error": error, "ResponseMetadata": metadata}
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {"message": raw.decode("utf-8", "replace")}
    if not isinstance(body, dict):
        body = {}
    error = {"Message": body.get("message", body.get("Message", "")), "Code": ""}
    code = body.get("__type", str(status))
    if ":" in code:
        code = code.split(":", 1)[0]
    if "#" in code:
        code = code.rsplit("#", 1)[1]
    query_error = headers.get("x-amzn-query-error")
    if query_error is not None:
        parts = query_error.split(";")
        if len(parts) == 2 and parts[0]:
            error["QueryErrorCode"] = code
            error["Type"] = parts[1]
            code = parts[0]
    error["Code"] = code
    return {"Error": error, "ResponseMetadata": metadata}


async def open_lean_client(
    *,
    endpoint_url: str | None,
    region: str,
    max_pool_connections: int,
    connect_timeout: float,
    read_timeout: float,
    session: AioSession | None = None,
    config: Config | None = None,
    credentials: Mapping[str, str] | None = None,
) -> LeanSQSClient:
    """A LeanSQSClient configured as the SDK client of ``session`` and ``config`` would be
    (``fanout.aws.transport``; not yet opened).

    ``endpoint_url``: FANOUT_ENDPOINT_URL (None: the AWS config's, else regional endpoints).
    ``credentials``: explicit ``aws_access_key_id``/``aws_secret_access_key`` (the embedded
    local run's dummy ones), else the session's provider chain (shared with the SDK client)."""
    session = session or AioSession()
    source = await CredentialSource.resolve(session, **(credentials or {}))
    transport = Transport.resolve(session, config, endpoint_url)
    endpoints = EndpointTable(
        endpoint_url=transport.endpoint_url,
        default_region=region,
        resolver=transport.resolver,
        use_fips=transport.use_fips,
        use_dualstack=transport.use_dualstack,
        proxies=transport.proxies,
    )
    return LeanSQSClient(
        source,
        endpoints,
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        ssl_context=transport.tls,
    )
