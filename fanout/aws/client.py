"""The SQS client: created once from Settings, injected everywhere."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aioboto3
from aiobotocore.config import AioConfig

from fanout.aws.urls import region_of
from fanout.config import Settings
from fanout.errors import ConfigError

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


def client_config(settings: Settings) -> AioConfig:
    # SDK retries off: fanout classifies and backs off itself (fanout.aws.retry), exactly once.
    # The read timeout must outlast a long poll. Client-side parameter validation is off: fanout
    # builds every request itself and SQS validates them anyway (bench: -9% CPU per event).
    return AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.max_pool_connections,
        connect_timeout=5,
        read_timeout=settings.wait_time_seconds + 10,
        parameter_validation=False,
    )


def create_client(
    settings: Settings, session: aioboto3.Session | None = None, **credentials: str
) -> Any:
    """An async context manager yielding the SQS client (credentials: the AWS provider chain,
    unless the embedded local run passes its dummy ones)."""
    session = session or aioboto3.Session()
    region = region_for(settings, session)
    if region is None:
        raise ConfigError(
            "no AWS region: set FANOUT_REGION (or AWS_REGION), or use a queue URL "
            "of the form https://sqs.<region>.amazonaws.com/..."
        )
    return _with_cached_user_agent(
        session.client(
            "sqs",
            endpoint_url=settings.endpoint_url,
            region_name=region,
            config=client_config(settings),
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
