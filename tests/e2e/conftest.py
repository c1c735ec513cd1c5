"""End-to-end fixtures: a LocalStack (SQS + EventBridge) on 127.0.0.1, started by `make localstack`.

Every test in tests/e2e is marked ``e2e``: `make test` leaves them out, `make test-e2e` runs them.
Queues, event buses and rules get unique names and are deleted afterwards, so the tests can run
against a LocalStack others use too.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aioboto3
import pytest
from botocore.config import Config

from tests.support.harness import Harness

HERE = Path(__file__).parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
GENESYS_SOURCE_PREFIX = "aws.partner/genesys.com"

MakeQueue = Callable[..., Awaitable[str]]
RouteToQueues = Callable[[Sequence[str]], Awaitable[str]]


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def localstack_url() -> str:
    port = os.environ.get("LOCALSTACK_PORT") or "4566"
    return os.environ.get("LOCALSTACK_ENDPOINT") or f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def localstack_endpoint(no_real_aws: None) -> str:
    """LocalStack's URL (LOCALSTACK_ENDPOINT, else http://127.0.0.1:$LOCALSTACK_PORT or :4566),
    checked healthy: SQS and EventBridge available."""
    url = localstack_url().rstrip("/")
    if urlsplit(url).hostname not in LOOPBACK:
        pytest.fail(f"LOCALSTACK_ENDPOINT={url} is not a loopback address", pytrace=False)
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=5) as response:
            services = json.load(response).get("services", {})
    except (OSError, ValueError) as exc:
        services = {"error": str(exc)}
    states = {name: services.get(name, "missing") for name in ("sqs", "events")}
    if not all(state in ("available", "running") for state in states.values()):
        pytest.fail(
            f"LocalStack is not healthy at {url} ({services.get('error') or states}): start it "
            "with `make localstack` (same LOCALSTACK_PORT), or run `make test-e2e`, which does",
            pytrace=False,
        )
    return url


def _client(service: str, endpoint: str) -> Any:
    # SDK retries off, like fanout's own client: what a test sees is what LocalStack said.
    return aioboto3.Session().client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
async def ls_sqs(localstack_endpoint: str) -> AsyncIterator[Any]:
    async with _client("sqs", localstack_endpoint) as client:
        yield client


@pytest.fixture
async def ls_events(localstack_endpoint: str) -> AsyncIterator[Any]:
    async with _client("events", localstack_endpoint) as client:
        yield client


@pytest.fixture
def e2e_prefix() -> str:
    """Unique per test: names of everything the test creates start with it."""
    return f"e2e-{uuid.uuid4().hex[:10]}-"


@pytest.fixture
async def make_queue(ls_sqs: Any, e2e_prefix: str) -> AsyncIterator[MakeQueue]:
    """``await make_queue("name", fifo=False, **attributes)`` -> a new queue's URL, named
    ``<e2e_prefix><name>[.fifo]``; every queue it made is deleted after the test."""
    made: list[str] = []

    async def make(name: str, *, fifo: bool = False, **attributes: str) -> str:
        if fifo:
            attributes["FifoQueue"] = "true"
        response = await ls_sqs.create_queue(
            QueueName=f"{e2e_prefix}{name}" + (".fifo" if fifo else ""), Attributes=attributes
        )
        made.append(response["QueueUrl"])
        return str(response["QueueUrl"])

    yield make
    for url in made:
        await ls_sqs.delete_queue(QueueUrl=url)


@pytest.fixture
async def route_genesys_events(
    ls_sqs: Any, ls_events: Any, e2e_prefix: str
) -> AsyncIterator[RouteToQueues]:
    """``await route_genesys_events([queue_url, ...])`` -> the name of a new event bus whose
    rule (source prefix ``aws.partner/genesys.com``, as for the Genesys partner event source)
    targets those queues; bus, rule and targets are deleted after the test. A bus of its own
    keeps other users' events on a shared LocalStack out of this test's queues."""
    buses: list[tuple[str, str, list[str]]] = []

    async def route(queue_urls: Sequence[str]) -> str:
        bus, rule = f"{e2e_prefix}bus", f"{e2e_prefix}genesys"
        await ls_events.create_event_bus(Name=bus)
        await ls_events.put_rule(
            Name=rule,
            EventBusName=bus,
            EventPattern=json.dumps({"source": [{"prefix": GENESYS_SOURCE_PREFIX}]}),
        )
        targets = []
        for i, url in enumerate(queue_urls):
            attrs = await ls_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            targets.append({"Id": f"q{i}", "Arn": attrs["Attributes"]["QueueArn"]})
        await ls_events.put_targets(Rule=rule, EventBusName=bus, Targets=targets)
        buses.append((bus, rule, [t["Id"] for t in targets]))
        return bus

    yield route
    for bus, rule, ids in buses:
        await ls_events.remove_targets(Rule=rule, EventBusName=bus, Ids=ids)
        await ls_events.delete_rule(Name=rule, EventBusName=bus)
        await ls_events.delete_event_bus(Name=bus)


@pytest.fixture
def ls_harness(ls_sqs: Any, localstack_endpoint: str, tmp_path: Path) -> Harness:
    """tests/harness.py's helpers (send, drain, depth, settings, run_until_idle) on LocalStack."""
    return Harness(ls_sqs, localstack_endpoint, tmp_path)
