"""FaultProxy against a real moto server: faults must reach botocore over the wire."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from multidict import CIMultiDict

from fanout.aws.retry import classify_exception
from fanout.testing.faultproxy import (
    Delay,
    During,
    ErrorResponse,
    FailEntries,
    FaultProxy,
    RandomFaults,
    Reset,
    Tap,
    expired_token,
    sqs_faults,
)

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

pytestmark = pytest.mark.integration

# One attempt: injected errors must surface as-is instead of being retried by botocore.
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def moto_url(moto_endpoint: str) -> str:
    return moto_endpoint  # the session's moto server (tests/conftest.py)


@pytest.fixture
async def proxy(moto_url: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(moto_url) as p:
        yield p


@pytest.fixture(scope="module")
def session() -> aioboto3.Session:
    """Shared so botocore's parsed service models are cached across tests (~0.15 s each)."""
    return aioboto3.Session()


def _client(session: aioboto3.Session, endpoint_url: str) -> Any:
    return session.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRY,
    )


@pytest.fixture
async def sqs(session: aioboto3.Session, proxy: FaultProxy) -> AsyncIterator[SQSClient]:
    """Client that talks through the proxy."""
    async with _client(session, proxy.url) as client:
        yield client


@pytest.fixture
async def direct(session: aioboto3.Session, moto_url: str) -> AsyncIterator[SQSClient]:
    """Client that bypasses the proxy: ground truth about what moto applied."""
    async with _client(session, moto_url) as client:
        yield client


@pytest.fixture
async def queue_url(direct: SQSClient) -> str:
    name = f"q-{uuid.uuid4().hex[:12]}"
    return (await direct.create_queue(QueueName=name))["QueueUrl"]


async def _drain_bodies(client: SQSClient, url: str) -> list[str]:
    """Bodies currently visible in the queue, without hiding them (VisibilityTimeout=0)."""
    resp = await client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
    )
    return sorted(m["Body"] for m in resp.get("Messages", []))


def _batch(*ids: str) -> list[Any]:
    return [{"Id": i, "MessageBody": f"body-{i}"} for i in ids]


async def test_pass_through(proxy: FaultProxy, sqs: SQSClient) -> None:
    url = (await sqs.create_queue(QueueName=f"pt-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    await sqs.send_message(QueueUrl=url, MessageBody="hello")
    resp = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)

    assert [m["Body"] for m in resp["Messages"]] == ["hello"]
    assert proxy.calls["CreateQueue"] == proxy.calls["SendMessage"] == 1
    assert proxy.calls["ReceiveMessage"] == 1
    assert proxy.bodies("SendMessage") == [{"QueueUrl": url, "MessageBody": "hello"}]
    assert [op for op, _ in proxy.forwarded] == ["CreateQueue", "SendMessage", "ReceiveMessage"]

    # Upstream errors pass through with their headers, so botocore still maps them.
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as info:
        await sqs.get_queue_url(QueueName="no-such-queue")
    assert info.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"


@pytest.mark.parametrize(
    ("status", "code", "sender_fault", "exc_name"),
    [
        (503, "ServiceUnavailable", False, "ClientError"),
        (403, "RequestThrottled", True, "RequestThrottled"),
        (400, "AWS.SimpleQueueService.NonExistentQueue", True, "QueueDoesNotExist"),
        (400, "KMS.ThrottlingException", True, "KmsThrottled"),
        (400, "ThrottlingException", True, "ClientError"),
        (500, "InternalError", False, "ClientError"),
        (403, "AccessDenied", True, "ClientError"),
    ],
)
async def test_error_response_reaches_botocore(
    proxy: FaultProxy,
    sqs: SQSClient,
    direct: SQSClient,
    queue_url: str,
    status: int,
    code: str,
    sender_fault: bool,
    exc_name: str,
) -> None:
    rule = proxy.add(ErrorResponse("SendMessage", status, code, sender_fault, "boom"))

    with pytest.raises(ClientError) as info:
        await sqs.send_message(QueueUrl=queue_url, MessageBody="never")

    err = info.value.response["Error"]
    assert err["Code"] == code
    assert err["Message"] == "boom"
    assert err.get("Type") == ("Sender" if sender_fault else "Receiver")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert type(info.value).__name__ == exc_name
    assert rule.hits == 1
    assert await _drain_bodies(direct, queue_url) == []  # upstream never got it


async def test_expired_token_reaches_botocore_as_a_credential_failure(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    rule = proxy.add(expired_token(queue=queue_url.rsplit("/", 1)[1]))
    for _ in range(2):  # every request while the rule is in place
        with pytest.raises(ClientError) as info:
            await sqs.send_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": "0", "MessageBody": "never"}]
            )
        assert info.value.response["Error"]["Code"] == "ExpiredToken"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        failure = classify_exception(info.value)
        assert failure.credentials and failure.code == "ExpiredToken"
    assert rule.hits == 2
    assert await _drain_bodies(direct, queue_url) == []


async def test_error_response_matches_operation_and_queue(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient
) -> None:
    a = (await direct.create_queue(QueueName=f"qa-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    b = (await direct.create_queue(QueueName=f"qb-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    proxy.add(ErrorResponse("SendMessage", queue=a.rsplit("/", 1)[1], times=None))

    await sqs.send_message(QueueUrl=b, MessageBody="ok")  # other queue: untouched
    await sqs.get_queue_attributes(QueueUrl=a)  # other operation: untouched
    with pytest.raises(ClientError):
        await sqs.send_message(QueueUrl=a, MessageBody="x")

    assert await _drain_bodies(direct, b) == ["ok"]
    assert await _drain_bodies(direct, a) == []


async def test_times_budget(proxy: FaultProxy, sqs: SQSClient, queue_url: str) -> None:
    rule = proxy.add(ErrorResponse("SendMessage", 403, "RequestThrottled", True, times=2))

    for _ in range(2):
        with pytest.raises(ClientError):
            await sqs.send_message(QueueUrl=queue_url, MessageBody="x")
    await sqs.send_message(QueueUrl=queue_url, MessageBody="x")

    assert (rule.hits, rule.exhausted) == (2, True)
    assert proxy.calls["SendMessage"] == 3
    assert [op for op, _ in proxy.forwarded] == ["SendMessage"]


async def test_unlimited_budget_and_clear(
    proxy: FaultProxy, sqs: SQSClient, queue_url: str
) -> None:
    rule = proxy.add(ErrorResponse("SendMessage", times=None))
    for _ in range(3):
        with pytest.raises(ClientError):
            await sqs.send_message(QueueUrl=queue_url, MessageBody="x")
    assert (rule.hits, rule.exhausted) == (3, False)

    proxy.clear()
    await sqs.send_message(QueueUrl=queue_url, MessageBody="x")
    assert rule.hits == 3


async def test_fail_entries_send_batch(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    rule = proxy.add(
        FailEntries(
            code="InvalidParameterValue",
            sender_fault=True,
            select=lambda e: e["Id"] in {"1", "3"},
        )
    )

    resp = await sqs.send_message_batch(QueueUrl=queue_url, Entries=_batch("0", "1", "2", "3"))

    assert sorted(f["Id"] for f in resp["Failed"]) == ["1", "3"]
    assert all(f["SenderFault"] is True for f in resp["Failed"])
    assert {f["Code"] for f in resp["Failed"]} == {"InvalidParameterValue"}
    assert sorted(s["Id"] for s in resp["Successful"]) == ["0", "2"]
    assert await _drain_bodies(direct, queue_url) == ["body-0", "body-2"]
    # Upstream saw only the survivors; the client's request is recorded untouched.
    assert [e["Id"] for e in proxy.forwarded[-1][1]["Entries"]] == ["0", "2"]
    assert len(proxy.bodies("SendMessageBatch")[0]["Entries"]) == 4

    # The budget is spent, so a retry of just the failed entries goes through.
    retry = await sqs.send_message_batch(QueueUrl=queue_url, Entries=_batch("1", "3"))
    assert retry.get("Failed", []) == []
    assert [e["Id"] for e in proxy.bodies("SendMessageBatch")[-1]["Entries"]] == ["1", "3"]
    assert rule.hits == 1
    assert await _drain_bodies(direct, queue_url) == ["body-0", "body-1", "body-2", "body-3"]


async def test_fail_all_entries_skips_upstream(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    proxy.add(FailEntries())

    resp = await sqs.send_message_batch(QueueUrl=queue_url, Entries=_batch("a", "b"))

    assert resp["Successful"] == []
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in resp["Failed"]] == [
        ("a", "InternalError", False),
        ("b", "InternalError", False),
    ]
    assert proxy.forwarded == []
    assert await _drain_bodies(direct, queue_url) == []


async def test_fail_entries_max_entries_and_unselected_request(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    # A request with no selected entry neither fails anything nor spends the budget.
    only_z = proxy.add(FailEntries(select=lambda e: e["Id"].startswith("z")))
    first_two = proxy.add(FailEntries(max_entries=2))

    await sqs.send_message_batch(QueueUrl=queue_url, Entries=_batch("a", "b", "c"))
    resp = await sqs.send_message_batch(QueueUrl=queue_url, Entries=_batch("z1", "d"))

    assert (only_z.hits, first_two.hits) == (1, 1)
    assert [f["Id"] for f in resp["Failed"]] == ["z1"]
    assert await _drain_bodies(direct, queue_url) == ["body-c", "body-d"]


async def test_fail_entries_delete_batch(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    await direct.send_message_batch(QueueUrl=queue_url, Entries=_batch("0", "1", "2"))
    received = await direct.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    handles = {m["Body"]: m["ReceiptHandle"] for m in received["Messages"]}
    proxy.add(
        FailEntries(
            "DeleteMessageBatch", code="ReceiptHandleIsInvalid", select=lambda e: e["Id"] == "d1"
        )
    )

    resp = await sqs.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": f"d{i}", "ReceiptHandle": handles[f"body-{i}"]} for i in range(3)],
    )

    assert [(f["Id"], f["Code"]) for f in resp["Failed"]] == [("d1", "ReceiptHandleIsInvalid")]
    assert sorted(s["Id"] for s in resp["Successful"]) == ["d0", "d2"]
    assert await _drain_bodies(direct, queue_url) == ["body-1"]


async def test_fail_entries_change_visibility_batch(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    await direct.send_message_batch(QueueUrl=queue_url, Entries=_batch("0", "1"))
    received = await direct.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
    )
    handles = {m["Body"]: m["ReceiptHandle"] for m in received["Messages"]}
    proxy.add(FailEntries("ChangeMessageVisibilityBatch", select=lambda e: e["Id"] == "c1"))

    resp = await sqs.change_message_visibility_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": f"c{i}", "ReceiptHandle": handles[f"body-{i}"], "VisibilityTimeout": 0}
            for i in range(2)
        ],
    )

    assert [f["Id"] for f in resp["Failed"]] == ["c1"]
    # Only the non-failed entry was made visible again.
    assert await _drain_bodies(direct, queue_url) == ["body-0"]


async def test_delay_composes_with_error(proxy: FaultProxy, sqs: SQSClient, queue_url: str) -> None:
    delay = proxy.add(Delay("GetQueueAttributes", 0.2))
    error = proxy.add(ErrorResponse("GetQueueAttributes", 500, "InternalError"))

    started = time.monotonic()
    with pytest.raises(ClientError) as info:
        await sqs.get_queue_attributes(QueueUrl=queue_url)
    assert time.monotonic() - started >= 0.2
    assert info.value.response["Error"]["Code"] == "InternalError"

    started = time.monotonic()
    await sqs.get_queue_attributes(QueueUrl=queue_url)  # both budgets spent
    assert time.monotonic() - started < 0.2
    assert (delay.hits, error.hits) == (1, 1)


async def test_short_circuit_keeps_later_rule_budget(
    proxy: FaultProxy, sqs: SQSClient, queue_url: str
) -> None:
    first = proxy.add(ErrorResponse("SendMessage", 503, "ServiceUnavailable"))
    second = proxy.add(ErrorResponse("SendMessage", 403, "RequestThrottled"))

    codes = []
    for _ in range(2):
        with pytest.raises(ClientError) as info:
            await sqs.send_message(QueueUrl=queue_url, MessageBody="x")
        codes.append(info.value.response["Error"]["Code"])

    assert codes == ["ServiceUnavailable", "RequestThrottled"]
    assert (first.hits, second.hits) == (1, 1)


async def test_reset_mid_response_applies_upstream(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    rule = proxy.add(Reset("SendMessage"))

    with pytest.raises((ClientError, BotoCoreError)) as info:
        await sqs.send_message(QueueUrl=queue_url, MessageBody="applied")

    assert not isinstance(info.value, ClientError)  # a broken connection, not an AWS error
    assert rule.hits == 1
    assert await _drain_bodies(direct, queue_url) == ["applied"]  # upstream did apply it


async def test_reset_before_upstream_forwards_nothing(
    proxy: FaultProxy, sqs: SQSClient, direct: SQSClient, queue_url: str
) -> None:
    proxy.add(Reset("SendMessage", mid_response=False))

    with pytest.raises(BotoCoreError):
        await sqs.send_message(QueueUrl=queue_url, MessageBody="never")

    assert proxy.forwarded == []
    await sqs.send_message(QueueUrl=queue_url, MessageBody="later")  # budget spent
    assert await _drain_bodies(direct, queue_url) == ["later"]


async def test_delay_after_upstream_beyond_read_timeout(
    session: aioboto3.Session, proxy: FaultProxy, direct: SQSClient, queue_url: str
) -> None:
    held: list[str] = []
    proxy.add(
        Delay("SendMessage", 1.5, after_upstream=True, on_hold=lambda r: held.append(r.operation))
    )
    config = NO_RETRY.merge(Config(read_timeout=0.5))
    async with session.client(
        "sqs",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    ) as client:
        with pytest.raises(BotoCoreError, match="timeout"):
            await client.send_message(QueueUrl=queue_url, MessageBody="slow")

    assert held == ["SendMessage"]
    assert await _drain_bodies(direct, queue_url) == ["slow"]  # applied despite the timeout


async def test_tap_sees_request_and_reply(
    proxy: FaultProxy, sqs: SQSClient, queue_url: str
) -> None:
    seen: list[tuple[str, int]] = []
    proxy.add(
        Tap(
            "SendMessageBatch",
            on_request=lambda r: seen.append((r.operation, -1)),
            on_reply=lambda r, reply: seen.append((r.operation, reply.status)),
        )
    )
    await sqs.send_message_batch(QueueUrl=queue_url, Entries=_batch("a"))
    await sqs.send_message(QueueUrl=queue_url, MessageBody="untapped")

    assert seen == [("SendMessageBatch", -1), ("SendMessageBatch", 200)]


async def test_during_window(proxy: FaultProxy, sqs: SQSClient, queue_url: str) -> None:
    window = proxy.add(
        During(ErrorResponse("SendMessage", 403, "RequestThrottled", True, times=None), 0.3, 0.4)
    )
    await sqs.send_message(QueueUrl=queue_url, MessageBody="before")
    while not window.active:
        await asyncio.sleep(0.02)
    with pytest.raises(ClientError) as info:
        await sqs.send_message(QueueUrl=queue_url, MessageBody="inside")
    assert info.value.response["Error"]["Code"] == "RequestThrottled"
    while not window.over:
        await asyncio.sleep(0.02)
    await sqs.send_message(QueueUrl=queue_url, MessageBody="after")

    assert window.hits == 1


async def test_random_faults_seeded_rate_and_filters(
    proxy: FaultProxy, sqs: SQSClient, queue_url: str
) -> None:
    def run_schedule(seed: int) -> list[bool]:
        schedule = RandomFaults(sqs_faults(), rate=0.3, seed=seed)
        return [schedule.claim(_fake_request("ReceiveMessage")) for _ in range(200)]

    first = run_schedule(5)
    assert first == run_schedule(5)  # seeded: the same decisions
    assert first != run_schedule(6)
    assert 40 <= sum(first) <= 80  # ~30 % of 200

    # Only faults whose own filter matches are eligible: nothing here fits GetQueueUrl.
    only_batch = proxy.add(RandomFaults([FailEntries(times=None)], rate=1.0, seed=1))
    await sqs.get_queue_attributes(QueueUrl=queue_url)
    assert (only_batch.seen, only_batch.hits) == (0, 0)
    resp = await sqs.send_message_batch(QueueUrl=queue_url, Entries=_batch("x"))
    assert [f["Id"] for f in resp["Failed"]] == ["x"]
    assert only_batch.injected == {"FailEntries(SendMessageBatch:InternalError;Receiver)": 1}


def _fake_request(operation: str) -> Any:
    from fanout.testing.faultproxy import SqsRequest

    return SqsRequest(operation, {}, b"", CIMultiDict(), "POST", "/", None)  # type: ignore[arg-type]
