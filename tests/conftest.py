"""Shared fixtures: one moto SQS server on 127.0.0.1 per session, never real AWS."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioboto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tests.support.harness import Harness

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@pytest.fixture(scope="session", autouse=True)
def no_real_aws() -> Iterator[None]:
    """Dummy credentials everywhere: even a misrouted call could never reach a real account."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in DUMMY_AWS_ENV.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
            mp.delenv(key, raising=False)
        for key in [k for k in os.environ if k.startswith(("FANOUT_", "GENESYS_"))]:
            mp.delenv(key)
        yield


@pytest.fixture(scope="session")
def quiet_moto() -> None:
    # One werkzeug INFO line per request drowns the logs a failing test shows.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def moto_endpoint(no_real_aws: None, quiet_moto: None) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def sqs(moto_endpoint: str) -> AsyncIterator[Any]:
    """A plain client for test setup and inspection (SDK retries off, like fanout's)."""
    session = aioboto3.Session()
    async with session.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    ) as client:
        yield client


@pytest.fixture
async def harness(sqs: Any, moto_endpoint: str, tmp_path: Any) -> Harness:
    return Harness(sqs, moto_endpoint, tmp_path)
