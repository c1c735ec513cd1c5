"""One contract for both data-plane clients (FANOUT_SQS_CLIENT=sdk|lean), on moto's server.

Every scenario runs against aiobotocore and the lean client in the same test and the two
outcomes, normalized (ids, receipt handles, timestamps and response metadata aside), must be
equal; each test also checks the facts it is about, so a client that is wrong in the same way
as the other still fails. Through the fault proxy: every fault kind it injects, classified by
fanout.aws.retry, gives the same Failure for both. Golden: for the same call, the lean
client's JSON body and headers equal what botocore sends (date, signature and botocore's own
SDK-metrics headers aside), and its signature verifies with botocore's signer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import aioboto3
import orjson
import pytest
from aiobotocore.config import AioConfig
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from fanout.aws.client import client_config, create_clients
from fanout.aws.lean import open_lean_client
from fanout.aws.retry import (
    Failure,
    MessageIntegrityError,
    classify_entry,
    classify_exception,
)
from fanout.config import Settings
from fanout.testing.faultproxy import (
    Delay,
    FaultProxy,
    FaultRule,
    Next,
    Reply,
    SqsRequest,
    describe,
    sqs_faults,
)

pytestmark = pytest.mark.integration

KINDS = ("sdk", "lean")
Client = Any
Scenario = Callable[[Client], Awaitable[Any]]


@contextlib.asynccontextmanager
async def data_plane(kind: str, endpoint: str, **overrides: Any) -> AsyncIterator[Client]:
    """The data-plane client exactly as fanout wires it (fanout.aws.client.create_clients)."""
    settings = Settings(
        endpoint_url=endpoint, region="us-east-1", sqs_client=kind, wait_time_seconds=0
    )
    settings = settings.model_copy(update=overrides)
    async with create_clients(settings) as (_, client):
        yield client


@contextlib.asynccontextmanager
async def short_timeout_client(kind: str, endpoint: str, read_timeout: float) -> AsyncIterator[Any]:
    """As wired, but with a read timeout short enough for a test (the real one outlasts a poll)."""
    settings = Settings(endpoint_url=endpoint, region="us-east-1", wait_time_seconds=0)
    if kind == "sdk":
        config = client_config(settings).merge(AioConfig(read_timeout=read_timeout))
        async with aioboto3.Session().client(
            "sqs", endpoint_url=endpoint, region_name="us-east-1", config=config
        ) as client:
            yield client
        return
    lean = await open_lean_client(
        endpoint_url=endpoint,
        region="us-east-1",
        max_pool_connections=8,
        connect_timeout=5,
        read_timeout=read_timeout,
    )
    async with lean:
        yield lean


async def both(endpoint: str, scenario: Scenario) -> dict[str, Any]:
    results = {}
    for kind in KINDS:
        async with data_plane(kind, endpoint) as client:
            results[kind] = await scenario(client)
    return results


async def new_queue(sqs: Any, *, fifo: bool = False) -> str:
    name = f"contract-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    return str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])


def normal(value: Any) -> Any:
    """A response with what differs per call (ids, handles, times, metadata) blanked."""
    volatile = {
        "MessageId",
        "ReceiptHandle",
        "SentTimestamp",
        "ApproximateFirstReceiveTimestamp",
        "SequenceNumber",
        "SenderId",
        "MessageDeduplicationId",
    }
    if isinstance(value, dict):
        return {
            k: ("*" if k in volatile else normal(v))
            for k, v in value.items()
            if k != "ResponseMetadata"
        }
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


def outcome_of_error(exc: BaseException) -> dict[str, Any]:
    failure = classify_exception(exc)
    out: dict[str, Any] = {"failure": failure, "type": type(exc).__name__}
    if isinstance(exc, ClientError):
        out["type"] = "ClientError"  # the SDK raises modeled subclasses; retry sees ClientError
        out["error"] = exc.response["Error"]
        out["status"] = exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return out


ATTRIBUTES = {
    "s": {"DataType": "String", "StringValue": "value é"},
    "n": {"DataType": "Number", "StringValue": "42"},
    "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff binary"},
    "traceparent": {"DataType": "String", "StringValue": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
}
RECEIVE = {
    "MaxNumberOfMessages": 10,
    "WaitTimeSeconds": 0,
    "VisibilityTimeout": 30,
    "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp", "AWSTraceHeader"],
    "MessageAttributeNames": ["All"],
}


async def receive_all(client: Client, url: str, want: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(20):
        response = await client.receive_message(QueueUrl=url, **RECEIVE)
        messages.extend(response.get("Messages", []))
        if len(messages) >= want:
            break
    return sorted(messages, key=lambda m: m["Body"])


# --- the four calls ------------------------------------------------------------------------


async def test_send_receive_delete_round_trip(moto_endpoint: str, sqs: Any) -> None:
    async def scenario(client: Client) -> Any:
        url = await new_queue(sqs)
        sent = await client.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "0", "MessageBody": '{"a": "é 📞"}', "MessageAttributes": ATTRIBUTES},
                {
                    "Id": "1",
                    "MessageBody": "plain",
                    "DelaySeconds": 0,
                    "MessageSystemAttributes": {
                        "AWSTraceHeader": {
                            "DataType": "String",
                            "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793",
                        }
                    },
                },
            ],
        )
        received = await receive_all(client, url, 2)
        changed = await client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(received)
            ],
        )
        again = await receive_all(client, url, 2)  # visible again at once
        deleted = await client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(again)
            ],
        )
        empty = await client.receive_message(QueueUrl=url, **RECEIVE)
        return normal([sent, received, changed, again, deleted, empty])

    results = await both(moto_endpoint, scenario)
    assert results["lean"] == results["sdk"]
    sent, received, changed, again, deleted, empty = results["lean"]
    assert [e["Id"] for e in sent["Successful"]] == ["0", "1"] and not sent.get("Failed")
    assert [m["Body"] for m in received] == ["plain", '{"a": "é 📞"}']  # sorted by body
    assert received[1]["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\xff binary"
    assert received[1]["MessageAttributes"]["s"]["StringValue"] == "value é"
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in received] == ["1", "1"]
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in again] == ["2", "2"]
    assert len(changed["Successful"]) == 2 and len(deleted["Successful"]) == 2
    assert "Messages" not in empty


async def test_fifo_send_parameters(moto_endpoint: str, sqs: Any) -> None:
    async def scenario(client: Client) -> Any:
        url = await new_queue(sqs, fifo=True)
        entries = [
            {
                "Id": str(i),
                "MessageBody": f"m{i}",
                "MessageGroupId": "conversation-1",
                "MessageDeduplicationId": f"dedup-{i % 2}",  # the third is a duplicate
            }
            for i in range(3)
        ]
        sent = await client.send_message_batch(QueueUrl=url, Entries=entries)
        got = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        )
        bodies = [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in got["Messages"]]
        return normal(sent), bodies, [bool(e.get("SequenceNumber")) for e in sent["Successful"]]

    results = await both(moto_endpoint, scenario)
    assert results["lean"] == results["sdk"]
    _, bodies, sequenced = results["lean"]
    assert bodies == [("m0", "conversation-1"), ("m1", "conversation-1")]
    assert sequenced == [True, True, True]


async def test_partial_batch_failures(moto_endpoint: str, sqs: Any) -> None:
    async def scenario(client: Client) -> Any:
        url = await new_queue(sqs)
        await sqs.send_message(QueueUrl=url, MessageBody="one")
        handle = (await sqs.receive_message(QueueUrl=url, VisibilityTimeout=30))["Messages"][0][
            "ReceiptHandle"
        ]
        visibility = await client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "good", "ReceiptHandle": handle, "VisibilityTimeout": 60},
                {"Id": "bad", "ReceiptHandle": "not-a-receipt-handle", "VisibilityTimeout": 60},
            ],
        )
        deleted = await client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "good", "ReceiptHandle": handle},
                {"Id": "bad", "ReceiptHandle": "not-a-receipt-handle"},
            ],
        )
        return normal([visibility, deleted])

    results = await both(moto_endpoint, scenario)
    assert results["lean"] == results["sdk"]
    for response in results["lean"]:
        assert [e["Id"] for e in response["Successful"]] == ["good"]
        [failed] = response["Failed"]
        # SenderFault: true on moto (and AWS), false on LocalStack; equal for both clients.
        assert failed["Id"] == "bad"
        assert classify_entry(failed).code == "ReceiptHandleIsInvalid"


NON_EXISTENT_CASES = [
    ("receive_message", RECEIVE),
    ("send_message_batch", {"Entries": [{"Id": "0", "MessageBody": "x"}]}),
    ("delete_message_batch", {"Entries": [{"Id": "0", "ReceiptHandle": "x"}]}),
    (
        "change_message_visibility_batch",
        {"Entries": [{"Id": "0", "ReceiptHandle": "x", "VisibilityTimeout": 1}]},
    ),
]


@pytest.mark.parametrize(("operation", "params"), NON_EXISTENT_CASES)
async def test_non_existent_queue(moto_endpoint: str, operation: str, params: Any) -> None:
    url = f"{moto_endpoint}/123456789012/no-such-queue-{uuid.uuid4().hex[:6]}"

    async def scenario(client: Client) -> Any:
        with pytest.raises(ClientError) as info:
            await getattr(client, operation)(QueueUrl=url, **params)
        return outcome_of_error(info.value)

    results = await both(moto_endpoint, scenario)
    assert results["lean"] == results["sdk"]
    assert results["lean"]["error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert results["lean"]["error"]["QueryErrorCode"] == "QueueDoesNotExist"
    assert results["lean"]["status"] == 400
    assert results["lean"]["failure"].retryable is False


async def test_invalid_receive_parameter(moto_endpoint: str, sqs: Any) -> None:
    async def scenario(client: Client) -> Any:
        url = await new_queue(sqs)
        with pytest.raises(ClientError) as info:
            await client.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
        return outcome_of_error(info.value)

    results = await both(moto_endpoint, scenario)
    assert results["lean"] == results["sdk"]
    assert results["lean"]["status"] == 400 and results["lean"]["failure"].retryable is False


# --- through the fault proxy ---------------------------------------------------------------


@dataclass
class Corrupt(FaultRule):
    """Change the first received message's body, or one of its attribute values, on the
    wire, keeping its MD5OfBody and MD5OfMessageAttributes."""

    part: str = "Body"  # or "MessageAttributes"
    operation: str | None = "ReceiveMessage"
    queue: str | None = None
    times: int | None = 1
    hits: int = field(default=0, init=False)

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        reply = await call_next(req)
        payload = reply.parsed()
        if payload and payload.get("Messages"):
            message = payload["Messages"][0]
            if self.part == "Body":
                message["Body"] += " (corrupted)"
            else:
                value = next(iter(message["MessageAttributes"].values()))
                value["StringValue"] += " (corrupted)"
            reply.body = orjson.dumps(payload)
        return reply


# Delays beyond the clients' read timeout (0.5 s here), before and after upstream applied it.
FAULTS = [*sqs_faults(spike_seconds=1.0), Delay(None, 1.0, times=None)]


def _call_outcome(response: Any = None, exc: BaseException | None = None) -> Any:
    if exc is not None:
        return outcome_of_error(exc)
    failed = sorted(response.get("Failed", []), key=lambda e: e["Id"])
    return {
        "successful": sorted(e["Id"] for e in response.get("Successful", [])),
        "failed": [(e["Id"], classify_entry(e)) for e in failed],
    }


@pytest.mark.parametrize("fault", FAULTS, ids=describe)
@pytest.mark.parametrize("operation", ["SendMessageBatch", "DeleteMessageBatch", "ReceiveMessage"])
async def test_fault_outcomes_identical(
    moto_endpoint: str, sqs: Any, fault: FaultRule, operation: str
) -> None:
    if fault.operation is not None and fault.operation != operation:
        pytest.skip(f"{describe(fault)} applies to {fault.operation} only")
    results: dict[str, Any] = {}
    async with FaultProxy(moto_endpoint) as proxy:
        for kind in KINDS:
            url = await new_queue(sqs)
            await sqs.send_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(4)]
            )
            handles = []
            if operation == "DeleteMessageBatch":
                handles = [m["ReceiptHandle"] for m in await receive_all(sqs, url, 4)]
            params: dict[str, Any] = {
                "SendMessageBatch": {
                    "Entries": [{"Id": str(i), "MessageBody": f"n{i}"} for i in range(4)]
                },
                "DeleteMessageBatch": {
                    "Entries": [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
                },
                "ReceiveMessage": {**RECEIVE, "VisibilityTimeout": 0},
            }[operation]
            method = {
                "SendMessageBatch": "send_message_batch",
                "DeleteMessageBatch": "delete_message_batch",
                "ReceiveMessage": "receive_message",
            }[operation]
            proxy.clear()
            proxy.add(type(fault)(**{**_fields(fault), "times": 1}))
            async with short_timeout_client(kind, proxy.url, read_timeout=0.5) as client:
                try:
                    response = await getattr(client, method)(QueueUrl=url, **params)
                except Exception as exc:
                    results[kind] = _call_outcome(exc=exc)
                else:
                    if operation == "ReceiveMessage":
                        results[kind] = {"received": len(response.get("Messages", []))}
                    else:
                        results[kind] = _call_outcome(response)
            assert proxy.rules[0].hits == 1, "the fault was not applied"
    assert results["lean"] == results["sdk"], describe(fault)


def _fields(rule: FaultRule) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule) if f.init}  # type: ignore[arg-type]


async def test_fault_outcomes_are_classified_as_today(moto_endpoint: str, sqs: Any) -> None:
    """Spot checks of what the identical outcomes above are: transient faults retryable."""
    async with FaultProxy(moto_endpoint) as proxy, data_plane("lean", proxy.url) as client:
        url = await new_queue(sqs)
        for fault in sqs_faults():
            if fault.operation not in (None, "SendMessageBatch"):
                continue
            proxy.clear()
            proxy.add(type(fault)(**{**_fields(fault), "times": 1}))
            entries = [{"Id": str(i), "MessageBody": "x"} for i in range(4)]
            try:
                response = await client.send_message_batch(QueueUrl=url, Entries=entries)
            except Exception as exc:
                failure: Failure = classify_exception(exc)
                assert failure.retryable, (describe(fault), failure)
            else:
                codes = {classify_entry(e).code for e in response["Failed"]}
                assert codes == {fault.code}  # type: ignore[attr-defined]


@pytest.mark.parametrize("part", ["Body", "MessageAttributes"])
async def test_md5_mismatch_is_a_retryable_receive_error(
    moto_endpoint: str, sqs: Any, part: str
) -> None:
    url = await new_queue(sqs)
    attributes = {"s": {"DataType": "String", "StringValue": "intact"}}
    await sqs.send_message(QueueUrl=url, MessageBody="intact", MessageAttributes=attributes)
    async with FaultProxy(moto_endpoint) as proxy, data_plane("lean", proxy.url) as client:
        rule = proxy.add(Corrupt(part))
        with pytest.raises(MessageIntegrityError, match=f"MD5Of{part}") as info:
            await client.receive_message(QueueUrl=url, **{**RECEIVE, "VisibilityTimeout": 1})
        assert rule.hits == 1
        failure = classify_exception(info.value)
        assert failure.retryable and failure.code == "MessageIntegrityError"
        # Not processed, not lost: it comes back intact after its visibility timeout.
        await asyncio.sleep(1.2)
        again = await receive_all(client, url, 1)
        assert [(m["Body"], m["MessageAttributes"]) for m in again] == [("intact", attributes)]


# --- golden: what goes on the wire ---------------------------------------------------------


@dataclass
class Captured:
    headers: dict[str, str]
    body: bytes


async def capture_server() -> tuple[web.AppRunner, str, list[Captured]]:
    seen: list[Captured] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(Captured(dict(request.headers), await request.read()))
        return web.Response(body=b"{}", content_type="application/x-amz-json-1.0")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}", seen


GOLDEN_CALLS = [
    (
        "receive_message",
        {
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/source",
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 20,
            "VisibilityTimeout": 60,
            "MessageSystemAttributeNames": [
                "ApproximateReceiveCount",
                "SentTimestamp",
                "AWSTraceHeader",
            ],
            "MessageAttributeNames": ["All"],
        },
    ),
    (
        "send_message_batch",
        {
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/t.fifo",
            "Entries": [
                {
                    "Id": "0",
                    "MessageBody": '{"id": "é 📞"}',
                    "MessageAttributes": ATTRIBUTES,
                    "MessageGroupId": "g",
                    "MessageDeduplicationId": "d",
                    "MessageSystemAttributes": {
                        "AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-a-b"}
                    },
                },
                {"Id": "1", "MessageBody": "x" * 1024, "DelaySeconds": 5},
            ],
        },
    ),
    (
        "delete_message_batch",
        {
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/source",
            "Entries": [{"Id": "0", "ReceiptHandle": "AQEB+/=="}],
        },
    ),
    (
        "change_message_visibility_batch",
        {
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/source",
            "Entries": [{"Id": "0", "ReceiptHandle": "AQEB+/==", "VisibilityTimeout": 120}],
        },
    ),
]
# botocore's own: SDK metrics (invocation id, attempt) and the User-Agent; aiohttp's/
# werkzeug's framing. Signed or not, they carry nothing SQS acts on.
SDK_ONLY = {"amz-sdk-invocation-id", "amz-sdk-request", "user-agent", "accept-encoding", "accept"}
# The date and signature vary; the length follows the body's whitespace (orjson writes compact
# JSON, botocore json.dumps' default separators): the bodies are compared parsed.
VARYING = {"x-amz-date", "authorization", "content-length"}


@pytest.mark.parametrize(("method", "params"), GOLDEN_CALLS, ids=[c[0] for c in GOLDEN_CALLS])
async def test_golden_request_equals_botocore(method: str, params: dict[str, Any]) -> None:
    runner, url, seen = await capture_server()
    try:
        for kind in KINDS:
            async with data_plane(kind, url) as client:
                await getattr(client, method)(**params)
    finally:
        await runner.cleanup()
    sdk, lean = seen
    assert orjson.loads(lean.body) == orjson.loads(sdk.body)
    if "Entries" in params and "MessageAttributes" in params["Entries"][0]:
        sent = orjson.loads(lean.body)["Entries"][0]["MessageAttributes"]["b"]["BinaryValue"]
        assert base64.b64decode(sent) == b"\x00\xff binary"

    def comparable(headers: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in headers.items() if k.lower() not in SDK_ONLY | VARYING}

    assert comparable(lean.headers) == comparable(sdk.headers)
    assert lean.headers["X-Amz-Target"] == "AmazonSQS." + "".join(
        part.title() for part in method.split("_")
    )

    def signed(headers: dict[str, str]) -> list[str]:
        auth = headers["Authorization"]
        names = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
        return [n for n in names if n not in SDK_ONLY]

    assert signed(lean.headers) == signed(sdk.headers)
    credential = "Credential=testing/{}/us-east-1/sqs/aws4_request"
    for request in (sdk, lean):
        auth = request.headers["Authorization"]
        assert credential.format(request.headers["X-Amz-Date"][:8]) in auth

    # The lean signature is the one botocore computes for the same request and time.
    when = datetime.datetime.strptime(lean.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    to_sign = {
        k: v
        for k, v in lean.headers.items()
        if k.lower() in {n.lower() for n in signed(lean.headers)}
    }
    request = AWSRequest(method="POST", url=url + "/", data=lean.body, headers=to_sign)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(Credentials("testing", "testing", "testing"), "sqs", "us-east-1").add_auth(
            request
        )
    assert request.headers["Authorization"] == lean.headers["Authorization"]
