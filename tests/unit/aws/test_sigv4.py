"""The lean signer against botocore's SigV4Auth, byte for byte, for fixed inputs."""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fanout.aws.sigv4 import SigV4Signer, canonical_host

FIXED = datetime.datetime(2024, 5, 17, 13, 45, 7, tzinfo=datetime.UTC)
TIMESTAMP = "20240517T134507Z"
BODY = b'{"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/123456789012/q","Entries":[]}'


def botocore_headers(
    url: str, region: str, body: bytes, headers: dict[str, str], token: str | None
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
        SigV4Auth(credentials, "sqs", region).add_auth(request)
    return dict(request.headers.items())


def lean_headers(
    url: str, region: str, body: bytes, headers: dict[str, str], token: str | None
) -> dict[str, str]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname is not None
    signed = {"Host": canonical_host(parts.scheme, parts.hostname, parts.port), **headers}
    SigV4Signer("sqs").sign(
        signed,
        method="POST",
        path=parts.path,
        body=body,
        region=region,
        timestamp=TIMESTAMP,
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token=token,
    )
    del signed["Host"]  # botocore computes it while signing but leaves it to the HTTP layer
    return signed


JSON_HEADERS = {
    "X-Amz-Target": "AmazonSQS.SendMessageBatch",
    "Content-Type": "application/x-amz-json-1.0",
    "x-amzn-query-mode": "true",
}


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEBYaDH//session+token=="])
@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/", "eu-west-1"),
        ("https://sqs.eu-west-1.amazonaws.com:443/", "eu-west-1"),
        ("http://127.0.0.1:4566/", "us-east-1"),
        ("http://LocalHost:8080", "us-east-1"),
        ("https://sqs-fips.us-gov-west-1.amazonaws.com/", "us-gov-west-1"),
        ("https://[::1]:9324/", "us-east-1"),
    ],
)
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"User-Agent": "fanout lean", "amz-sdk-request": "attempt=1", "X-Test": "  a   b "},
    ],
)
def test_same_headers_as_botocore(
    url: str, region: str, token: str | None, extra: dict[str, str]
) -> None:
    headers = {**JSON_HEADERS, **extra}
    expected = botocore_headers(url, region, BODY, dict(headers), token)
    assert expected["X-Amz-Date"] == TIMESTAMP  # the clock was really fixed
    assert lean_headers(url, region, BODY, dict(headers), token) == expected


@pytest.mark.parametrize("body", [b"", b"{}", "été 📞".encode(), bytes(range(256))])
def test_payloads(body: bytes) -> None:
    url = "https://sqs.ap-southeast-2.amazonaws.com/"
    expected = botocore_headers(url, "ap-southeast-2", body, dict(JSON_HEADERS), "tok")
    assert lean_headers(url, "ap-southeast-2", body, dict(JSON_HEADERS), "tok") == expected


def test_signing_key_is_cached_per_date_and_region() -> None:
    signer = SigV4Signer("sqs")
    first = signer.signing_key("secret", "20240517", "eu-west-1")
    assert signer.signing_key("secret", "20240517", "eu-west-1") is first
    assert signer.signing_key("secret", "20240518", "eu-west-1") != first
    assert signer.signing_key("secret", "20240517", "us-east-1") != first
    assert signer.signing_key("rotated", "20240517", "eu-west-1") != first


def test_aws_documented_example_key() -> None:
    # The derived key of AWS's SigV4 documentation example (General Reference, "Examples of
    # how to derive a signing key"): an oracle independent of botocore.
    key = SigV4Signer("iam").signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1"
    )
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
