"""The lean client's pure parts: endpoints per queue, error shapes, integrity check."""

from __future__ import annotations

import base64
import copy
import hashlib

import pytest
from aiobotocore.session import AioSession
from botocore.regions import EndpointResolver

from fanout.aws.credentials import CredentialSource
from fanout.aws.lean import EndpointTable, LeanSQSClient, _error, attributes_md5
from fanout.aws.retry import MessageIntegrityError, classify_exception


@pytest.fixture(scope="module")
def resolver() -> EndpointResolver:
    return EndpointResolver(AioSession().get_data("endpoints"))


def table(resolver: EndpointResolver, **options: bool) -> EndpointTable:
    return EndpointTable(
        endpoint_url=None, default_region="eu-west-1", resolver=resolver, **options
    )


def test_each_queue_at_its_own_region(resolver: EndpointResolver) -> None:
    endpoints = table(resolver)
    dr = endpoints("https://sqs.us-west-2.amazonaws.com/123456789012/dr-copy")
    home = endpoints("https://sqs.eu-west-1.amazonaws.com/123456789012/source")
    china = endpoints("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q")
    assert (dr.url, dr.host, dr.region) == (
        "https://sqs.us-west-2.amazonaws.com/",
        "sqs.us-west-2.amazonaws.com",
        "us-west-2",
    )
    assert (home.host, home.region) == ("sqs.eu-west-1.amazonaws.com", "eu-west-1")
    assert china.region == "cn-north-1" and china.host.endswith(".amazonaws.com.cn")
    # A URL without a region: the configured one.
    assert endpoints("https://example.internal/q").region == "eu-west-1"


def test_fips_and_dualstack(resolver: EndpointResolver) -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    assert table(resolver, use_fips=True)(url).host == "sqs-fips.us-east-1.amazonaws.com"
    assert table(resolver, use_dualstack=True)(url).host == "sqs.us-east-1.api.aws"


def test_override_wins_and_signs_for_configured_region() -> None:
    endpoints = EndpointTable(endpoint_url="http://127.0.0.1:4566", default_region="us-east-1")
    found = endpoints("https://sqs.eu-west-1.amazonaws.com/000000000000/q")
    assert (found.url, found.host, found.region) == (
        "http://127.0.0.1:4566/",
        "127.0.0.1:4566",
        "us-east-1",
    )


def test_region_newer_than_botocore_table(resolver: EndpointResolver) -> None:
    found = table(resolver)("https://sqs.xx-new-1.amazonaws.com/1/q")
    assert (found.host, found.region) == ("sqs.xx-new-1.amazonaws.com", "xx-new-1")


def test_error_with_legacy_query_code() -> None:
    body = b'{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"}'
    headers = {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"}
    error = _error(400, body, headers, {})["Error"]
    assert error == {
        "Code": "AWS.SimpleQueueService.NonExistentQueue",
        "Message": "gone",
        "QueryErrorCode": "QueueDoesNotExist",
        "Type": "Sender",
    }


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "message"),
    [
        (400, b'{"__type":"com.amazonaws.sqs#ThrottlingException"}', {}, "ThrottlingException", ""),
        (
            403,
            b'{"__type":"X","message":"m"}',
            {"x-amzn-query-error": "RequestThrottled;Sender"},
            "RequestThrottled",
            "m",
        ),
        (400, b'{"__type":"A#B","Message":"cap"}', {"x-amzn-query-error": ";Sender"}, "B", "cap"),
        (503, b"<html>busy</html>", {}, "503", "Service Unavailable"),
        (500, b"", {}, "500", "Internal Server Error"),
        (502, b"not json", {}, "502", "not json"),
    ],
)
def test_error_shapes_as_botocore(
    status: int, body: bytes, headers: dict[str, str], code: str, message: str
) -> None:
    error = _error(status, body, headers, {})["Error"]
    assert (error["Code"], error["Message"]) == (code, message)


def test_md5_mismatch_raises_retryable() -> None:
    client = LeanSQSClient(
        CredentialSource(None), EndpointTable(endpoint_url=None, default_region="x")
    )
    body = "héllo"
    good = {"MessageId": "1", "Body": body, "MD5OfBody": hashlib.md5(body.encode()).hexdigest()}
    client._verify(good)
    with pytest.raises(MessageIntegrityError) as info:
        client._verify({**good, "Body": body + "!"})
    assert classify_exception(info.value).retryable


def test_binary_attributes_become_bytes() -> None:
    client = LeanSQSClient(
        CredentialSource(None), EndpointTable(endpoint_url=None, default_region="x")
    )
    message = {"MessageAttributes": {"b": {"DataType": "Binary", "BinaryValue": "AP8="}}}
    client._verify(message)
    assert message["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\xff"


ATTRIBUTES = {
    "traceparent": {"DataType": "String", "StringValue": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
    "n": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
    "custom": {"DataType": "String.json", "StringValue": '{"é": "📞"}'},
}


def test_attributes_md5_equals_the_server_side_one() -> None:
    """The reference: moto's SQS computes MD5OfMessageAttributes as SQS documents it."""
    from moto.sqs.models import Message

    message = Message("id", "body")
    message.message_attributes = ATTRIBUTES
    reference = message.attribute_md5
    assert attributes_md5(ATTRIBUTES) == reference
    shuffled = dict(reversed(list(ATTRIBUTES.items())))  # order-independent (sorted by name)
    assert attributes_md5(shuffled) == reference


def test_attributes_md5_mismatch_raises_retryable() -> None:
    client = LeanSQSClient(
        CredentialSource(None), EndpointTable(endpoint_url=None, default_region="x")
    )
    wire = {  # as the JSON protocol carries it: binary as base64
        **ATTRIBUTES,
        "blob": {"DataType": "Binary", "BinaryValue": base64.b64encode(b"\x00\xff\x10").decode()},
    }
    good = {"MessageId": "1", "MessageAttributes": wire, "MD5OfMessageAttributes": ""}
    good["MD5OfMessageAttributes"] = attributes_md5(ATTRIBUTES)
    client._verify(copy.deepcopy(good))
    bad = copy.deepcopy(good)
    bad["MessageAttributes"]["n"]["StringValue"] = "43"
    with pytest.raises(MessageIntegrityError, match="MD5OfMessageAttributes") as info:
        client._verify(bad)
    assert classify_exception(info.value).retryable
