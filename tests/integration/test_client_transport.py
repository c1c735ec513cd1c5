"""Both data-plane clients (FANOUT_SQS_CLIENT=sdk and lean) through a real forwarding proxy.

proxy.py on 127.0.0.1 forwards plain HTTP to moto and tunnels HTTPS (CONNECT) to a TLS
endpoint in front of moto whose certificate a trustme CA signed (trusted via AWS_CA_BUNDLE).
Each client is built exactly as fanout wires it (``create_clients``) from the environment the
test sets; each test checks the SQS outcome and what the proxy's access log says it forwarded.
"""

from __future__ import annotations

import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from botocore.exceptions import ClientError, ProxyConnectionError, SSLError

from fanout.aws.client import create_clients
from fanout.config import Settings
from tests.support.forward_proxy import ForwardProxy, TlsFront, closed_port

pytestmark = pytest.mark.integration

KINDS = ("sdk", "lean")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def forward_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with ForwardProxy(tmp_path_factory.mktemp("proxy")) as running:
        yield running


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@contextlib.asynccontextmanager
async def tls_front(cert: trustme.LeafCert, moto_endpoint: str) -> AsyncIterator[TlsFront]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    moto = urlsplit(moto_endpoint)
    async with TlsFront(context, (moto.hostname or "", moto.port or 80)) as front:
        yield front


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable from the host leaks in (either case, as urllib reads both)."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def round_trip(kind: str, queue_url: str, endpoint_url: str | None = None) -> list[str]:
    """Send 3, receive them, delete them, through the data-plane client fanout would build."""
    settings = Settings(
        endpoint_url=endpoint_url, region="us-east-1", sqs_client=kind, wait_time_seconds=0
    )
    async with create_clients(settings) as (_, client):
        entries = [{"Id": str(i), "MessageBody": f"{kind}-{i}"} for i in range(3)]
        sent = await client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        assert len(sent["Successful"]) == 3
        received = await client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = received.get("Messages", [])
        handles = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        deleted = await client.delete_message_batch(QueueUrl=queue_url, Entries=handles)
        assert len(deleted["Successful"]) == len(messages)
        return sorted(m["Body"] for m in messages)


async def new_queue(sqs: Any) -> str:
    created = await sqs.create_queue(QueueName=f"transport-{uuid.uuid4().hex[:10]}")
    return str(created["QueueUrl"])


def host_port(url: str) -> str:
    return urlsplit(url).netloc


@pytest.mark.parametrize("kind", KINDS)
async def test_http_through_the_proxy(
    kind: str, sqs: Any, moto_endpoint: str, forward_proxy: ForwardProxy, proxy_env: Any
) -> None:
    queue_url = await new_queue(sqs)
    proxy_env.setenv("HTTP_PROXY", forward_proxy.url())
    before = len(forward_proxy.forwarded())
    assert await round_trip(kind, queue_url, moto_endpoint) == [f"{kind}-{i}" for i in range(3)]
    lines = await forward_proxy.wait_for("POST", host_port(moto_endpoint))
    assert len(forward_proxy.forwarded()) > before and lines, "the calls bypassed the proxy"


@pytest.mark.parametrize("kind", KINDS)
async def test_https_tunnelled_with_connect(
    kind: str,
    sqs: Any,
    moto_endpoint: str,
    forward_proxy: ForwardProxy,
    proxy_env: Any,
    ca: trustme.CA,
    ca_bundle: str,
) -> None:
    """Endpoint from AWS_ENDPOINT_URL_SQS (not fanout's setting): both clients read it."""
    queue_url = await new_queue(sqs)
    async with tls_front(ca.issue_cert("127.0.0.1"), moto_endpoint) as front:
        proxy_env.setenv("HTTPS_PROXY", forward_proxy.url())
        proxy_env.setenv("AWS_CA_BUNDLE", ca_bundle)
        proxy_env.setenv("AWS_ENDPOINT_URL_SQS", front.url)
        assert await round_trip(kind, queue_url) == [f"{kind}-{i}" for i in range(3)]
        tunnels = await forward_proxy.wait_for("CONNECT", host_port(front.url))
    assert tunnels, "no CONNECT tunnel to the TLS endpoint: the calls bypassed the proxy"


@pytest.mark.parametrize("kind", KINDS)
async def test_proxy_with_basic_auth(
    kind: str, sqs: Any, moto_endpoint: str, tmp_path: Path, proxy_env: Any
) -> None:
    """user:password in the proxy URL becomes Proxy-Authorization (botocore's rule); a wrong
    password is refused by the proxy."""
    queue_url = await new_queue(sqs)
    with ForwardProxy(tmp_path, basic_auth="fan:s3cret") as guarded:
        proxy_env.setenv("HTTP_PROXY", guarded.url("fan:s3cret"))
        assert await round_trip(kind, queue_url, moto_endpoint) == [f"{kind}-{i}" for i in range(3)]
        assert await guarded.wait_for("POST", host_port(moto_endpoint))
        proxy_env.setenv("HTTP_PROXY", guarded.url("fan:wrong"))
        with pytest.raises(ClientError) as refused:
            await round_trip(kind, queue_url, moto_endpoint)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 407


@pytest.mark.parametrize("kind", KINDS)
async def test_no_proxy_bypasses_the_proxy(
    kind: str, sqs: Any, moto_endpoint: str, proxy_env: Any
) -> None:
    """The proxy variables point at a port where nothing listens: with NO_PROXY naming the
    endpoint's host the calls succeed (they went direct); without it they fail at the proxy."""
    queue_url = await new_queue(sqs)
    dead = f"http://127.0.0.1:{closed_port()}"
    proxy_env.setenv("HTTP_PROXY", dead)
    proxy_env.setenv("HTTPS_PROXY", dead)
    proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert await round_trip(kind, queue_url, moto_endpoint) == [f"{kind}-{i}" for i in range(3)]
    proxy_env.delenv("NO_PROXY")
    with pytest.raises(ProxyConnectionError):
        await round_trip(kind, queue_url, moto_endpoint)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("identity", ["wrong-host.test", "untrusted-ca"])
async def test_tls_verified_through_the_proxy_and_directly(
    kind: str,
    identity: str,
    sqs: Any,
    moto_endpoint: str,
    forward_proxy: ForwardProxy,
    proxy_env: Any,
    ca: trustme.CA,
    ca_bundle: str,
) -> None:
    """A certificate for another host, or from a CA outside the trust store, is refused
    through a CONNECT tunnel and directly. aiobotocore alone accepts all four (through a proxy
    it turns verification off; directly it skips the host name): fanout's SDK client is
    configured not to (fanout.aws.client.session_config)."""
    queue_url = await new_queue(sqs)
    cert = (
        trustme.CA().issue_cert("127.0.0.1")
        if identity == "untrusted-ca"
        else ca.issue_cert(identity)
    )
    async with tls_front(cert, moto_endpoint) as front:
        proxy_env.setenv("HTTPS_PROXY", forward_proxy.url())
        proxy_env.setenv("AWS_CA_BUNDLE", ca_bundle)
        with pytest.raises(SSLError):
            await round_trip(kind, queue_url, front.url)
        assert await forward_proxy.wait_for("CONNECT", host_port(front.url))
        proxy_env.delenv("HTTPS_PROXY")
        with pytest.raises(SSLError):
            await round_trip(kind, queue_url, front.url)


@pytest.mark.parametrize("kind", KINDS)
async def test_connect_with_proxy_credentials(
    kind: str,
    sqs: Any,
    moto_endpoint: str,
    tmp_path: Path,
    proxy_env: Any,
    ca: trustme.CA,
    ca_bundle: str,
) -> None:
    """Proxy-Authorization on the CONNECT request; a refused tunnel is ProxyConnectionError."""
    queue_url = await new_queue(sqs)
    with ForwardProxy(tmp_path, basic_auth="fan:s3cret") as guarded:
        async with tls_front(ca.issue_cert("127.0.0.1"), moto_endpoint) as front:
            proxy_env.setenv("AWS_CA_BUNDLE", ca_bundle)
            proxy_env.setenv("HTTPS_PROXY", guarded.url("fan:s3cret"))
            assert await round_trip(kind, queue_url, front.url) == [f"{kind}-{i}" for i in range(3)]
            assert await guarded.wait_for("CONNECT", host_port(front.url))
            proxy_env.setenv("HTTPS_PROXY", guarded.url("fan:wrong"))
            with pytest.raises(ProxyConnectionError):
                await round_trip(kind, queue_url, front.url)
