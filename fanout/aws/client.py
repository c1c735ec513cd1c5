"""The SQS client: created once from Settings, injected everywhere."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aioboto3
from aiobotocore.config import AioConfig
from botocore.httpsession import where

from fanout.aws.lean import open_lean_client
from fanout.aws.transport import VerifyingAIOHTTPSession, botocore_session, proxies_settings
from fanout.aws.urls import region_of
from fanout.config import Settings
from fanout.errors import ConfigError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

T = TypeVar("T")
log = logging.getLogger(__name__)


def region_for(settings: Settings, session: aioboto3.Session) -> str | None:
    """FANOUT_REGION, else the AWS chain's region, else the region in the source queue URL."""
    if settings.region:
        return settings.region
    if session.region_name:
        return str(session.region_name)
    from_url = region_of(settings.source_queue_url or "")
    if from_url:
        return from_url
    return "us-east-1" if settings.endpoint_url else None


CONNECT_TIMEOUT_SECONDS = 5.0


def read_timeout(settings: Settings) -> float:
    """Seconds: must outlast a long poll."""
    return settings.wait_time_seconds + 10.0


def client_config(settings: Settings, proxies_config: dict[str, Any] | None = None) -> AioConfig:
    # SDK retries off: fanout classifies and backs off itself (fanout.aws.retry), exactly once.
    # Client-side parameter validation is off: fanout builds every request itself and SQS
    # validates them anyway (bench: -9% CPU per event). TLS: the host name is checked too
    # (fanout.aws.transport.VerifyingAIOHTTPSession).
    return AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.max_pool_connections,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout(settings),
        parameter_validation=False,
        proxies_config=proxies_config,
        http_session_cls=VerifyingAIOHTTPSession,
    )


def session_config(settings: Settings, session: aioboto3.Session) -> AioConfig:
    """``client_config`` plus the proxy settings of the profile (``proxy_ca_bundle``,
    ``proxy_client_cert``), which aiobotocore reads but does not apply: both clients get them
    (fanout.aws.transport). Without a ``proxy_ca_bundle``, aiobotocore would connect through a
    proxy with TLS verification off; the trust store as ``proxy_ca_bundle`` turns it on."""
    boto = botocore_session(session)
    proxies = proxies_settings(boto, None)
    proxies.setdefault("proxy_ca_bundle", boto.get_config_variable("ca_bundle") or where())
    return client_config(settings, proxies)


def _region(settings: Settings, session: aioboto3.Session) -> str:
    region = region_for(settings, session)
    if region is None:
        raise ConfigError(
            "no AWS region: set FANOUT_REGION (or AWS_REGION), or use a queue URL "
            "of the form https://sqs.<region>.amazonaws.com/..."
        )
    return region


def create_client(
    settings: Settings, session: aioboto3.Session | None = None, **credentials: str
) -> Any:
    """An async context manager yielding the SQS client (credentials: the AWS provider chain,
    unless the embedded local run passes its dummy ones)."""
    session = session or aioboto3.Session()
    return _with_cached_user_agent(
        session.client(
            "sqs",
            endpoint_url=settings.endpoint_url,
            region_name=_region(settings, session),
            config=session_config(settings, session),
            **credentials,
        )
    )


@contextlib.asynccontextmanager
async def _with_cached_user_agent(client_cm: Any) -> AsyncIterator[Any]:
    """botocore rebuilds the same User-Agent string twice per request (~15% of a call's CPU in
    bench/); build it once. Its creator is private API: if it changes, this does nothing."""
    async with client_cm as client:
        creator = getattr(client, "_user_agent_creator", None)
        if creator is not None and callable(getattr(creator, "to_string", None)):
            user_agent = creator.to_string()
            creator.to_string = lambda: user_agent
        yield client


@contextlib.asynccontextmanager
async def create_clients(
    settings: Settings, session: aioboto3.Session | None = None, **credentials: str
) -> AsyncIterator[tuple[Any, SQSClient]]:
    """(SDK client, data-plane client): the SDK client for start-up checks and tools; the
    data-plane client for the pipeline's four hot calls, chosen by FANOUT_SQS_CLIENT: the same
    SDK client, or a ``LeanSQSClient`` (fanout.aws.lean) built from the same session and
    Config: same credentials, endpoint, proxies and trust store (fanout.aws.transport)."""
    session = session or aioboto3.Session()
    async with create_client(settings, session, **credentials) as sdk:
        if settings.sqs_client == "sdk":
            yield sdk, sdk
            return
        lean = await open_lean_client(
            endpoint_url=settings.endpoint_url,
            region=_region(settings, session),
            max_pool_connections=settings.max_pool_connections,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=read_timeout(settings),
            session=botocore_session(session),
            config=session_config(settings, session),
            credentials=credentials,
        )
        async with lean:
            # The lean client has the four calls the pipeline makes, with the SDK's keyword
            # arguments and response shapes (tests/integration/test_client_contract.py).
            yield sdk, cast("SQSClient", lean)
