"""retry.py: which failures are retried, full-jitter backoff and the retry loop."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from fanout.aws.retry import (
    Backoff,
    Failure,
    call_with_retry,
    classify_entry,
    classify_exception,
    is_retryable,
)


def client_error(code: str, status: int = 400, message: str = "msg") -> ClientError:
    # The shape botocore parses an SQS error response into (only the keys fanout reads).
    response: Any = {
        "Error": {"Code": code, "Message": message, "Type": "Sender"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "SendMessageBatch")


@pytest.mark.parametrize(
    ("code", "sender_fault", "status", "retryable"),
    [
        ("ThrottlingException", True, None, True),
        ("RequestThrottled", True, 403, True),
        ("KMS.ThrottlingException", True, None, True),
        ("KmsThrottled", True, None, True),
        ("ServiceUnavailable", None, None, True),
        ("InternalError", None, None, True),
        ("SomethingNew", None, 500, True),
        ("SomethingNew", None, 503, True),
        ("SomethingNew", False, None, True),
        ("SomethingNew", True, None, False),
        ("SomethingNew", None, 400, False),
        ("InvalidParameterValue", True, None, False),
        ("AWS.SimpleQueueService.NonExistentQueue", True, 400, False),
    ],
)
def test_is_retryable(
    code: str, sender_fault: bool | None, status: int | None, retryable: bool
) -> None:
    assert is_retryable(code, sender_fault=sender_fault, status=status) is retryable


@pytest.mark.parametrize(
    ("entry", "failure"),
    [
        (
            {"Id": "0", "Code": "ThrottlingException", "SenderFault": True, "Message": "slow"},
            Failure("ThrottlingException", "slow", True),
        ),
        (
            {"Id": "1", "Code": "KmsThrottled", "SenderFault": True},
            Failure("KmsThrottled", "", True),
        ),
        (
            {"Id": "2", "Code": "InternalError", "SenderFault": False, "Message": "oops"},
            Failure("InternalError", "oops", True),
        ),
        (
            {"Id": "3", "Code": "NewServerCode", "SenderFault": False},
            Failure("NewServerCode", "", True),
        ),
        (
            {"Id": "4", "Code": "InvalidParameterValue", "SenderFault": True, "Message": "bad"},
            Failure("InvalidParameterValue", "bad", False),
        ),
        (
            {"Id": "5", "Code": "AWS.SimpleQueueService.NonExistentQueue", "SenderFault": True},
            Failure("AWS.SimpleQueueService.NonExistentQueue", "", False),
        ),
        # No SenderFault: assumed the sender's fault, so an unknown code is not retried.
        ({"Id": "6", "Code": "NewCode"}, Failure("NewCode", "", False)),
        ({"Id": "7"}, Failure("Unknown", "", False)),
    ],
)
def test_classify_entry(entry: dict[str, Any], failure: Failure) -> None:
    assert classify_entry(entry) == failure


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (client_error("ThrottlingException"), "ThrottlingException", True),
        (client_error("RequestThrottled", 403), "RequestThrottled", True),
        (client_error("KMS.ThrottlingException"), "KMS.ThrottlingException", True),
        (client_error("KmsThrottled"), "KmsThrottled", True),
        (client_error("ServiceUnavailable", 503), "ServiceUnavailable", True),
        (client_error("InternalError", 500), "InternalError", True),
        (client_error("NewServerCode", 500), "NewServerCode", True),
        (client_error("NewServerCode", 503), "NewServerCode", True),
        (client_error("InvalidParameterValue"), "InvalidParameterValue", False),
        (
            client_error("AWS.SimpleQueueService.NonExistentQueue"),
            "AWS.SimpleQueueService.NonExistentQueue",
            False,
        ),
        (client_error("AccessDenied", 403), "AccessDenied", False),
        (ClientError({}, "SendMessageBatch"), "Unknown", False),
        (EndpointConnectionError(endpoint_url="https://sqs"), "EndpointConnectionError", True),
        (ReadTimeoutError(endpoint_url="https://sqs"), "ReadTimeoutError", True),
        (ConnectTimeoutError(endpoint_url="https://sqs"), "ConnectTimeoutError", True),
        (TimeoutError("slow"), "TimeoutError", True),
        (ConnectionResetError("reset"), "ConnectionResetError", True),
        (NoCredentialsError(), "NoCredentialsError", False),
        (ParamValidationError(report="bad entry"), "ParamValidationError", False),
        (ValueError("bug"), "ValueError", False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_classify_exception(exc: BaseException, code: str, retryable: bool) -> None:
    failure = classify_exception(exc)
    assert (failure.code, failure.retryable) == (code, retryable)


def test_classify_exception_keeps_the_message() -> None:
    assert classify_exception(client_error("InternalError", 500, "try later")).message == (
        "try later"
    )
    assert (
        "https://sqs"
        in classify_exception(EndpointConnectionError(endpoint_url="https://sqs")).message
    )


def test_backoff_ceiling_doubles_then_caps() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    assert [backoff.ceiling(n) for n in range(7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    )
    assert backoff.ceiling(10_000) == 1.0  # no overflow for absurd attempt numbers


@pytest.mark.parametrize("attempt", [0, 2, 8])
def test_backoff_delay_is_full_jitter(attempt: int) -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    ceiling = backoff.ceiling(attempt)
    delays = [backoff.delay(attempt, random.Random(seed)) for seed in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 400  # jittered, not constant
    assert min(delays) < 0.1 * ceiling and max(delays) > 0.9 * ceiling  # spans [0, ceiling]
    rng_a, rng_b = random.Random(7), random.Random(7)
    assert [backoff.delay(attempt, rng_a) for _ in range(5)] == [
        backoff.delay(attempt, rng_b) for _ in range(5)
    ]


@pytest.mark.parametrize(("attempt", "gives_up"), [(1, False), (2, False), (3, True), (4, True)])
def test_gives_up(attempt: int, gives_up: bool) -> None:
    assert Backoff(max_attempts=3).gives_up(attempt) is gives_up


class FlakyCall:
    """Raises ``errors`` in turn, then returns "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


INSTANT = Backoff(max_attempts=4, base=0.0, cap=0.0)


async def test_call_with_retry_retries_then_succeeds() -> None:
    call = FlakyCall(client_error("ThrottlingException"), EndpointConnectionError(endpoint_url="x"))
    retries: list[tuple[str, int]] = []
    result = await call_with_retry(
        call, INSTANT, random.Random(1), on_retry=lambda f, n: retries.append((f.code, n))
    )
    assert result == "ok"
    assert call.calls == 3
    assert retries == [("ThrottlingException", 1), ("EndpointConnectionError", 2)]


async def test_call_with_retry_reraises_non_retryable_at_once() -> None:
    error = client_error("InvalidParameterValue")
    call = FlakyCall(error)
    with pytest.raises(ClientError) as info:
        await call_with_retry(call, INSTANT, random.Random(1))
    assert info.value is error
    assert call.calls == 1


async def test_call_with_retry_gives_up_after_max_attempts() -> None:
    errors = [client_error("ServiceUnavailable", 503, f"attempt {n}") for n in range(1, 7)]
    call = FlakyCall(*errors)
    with pytest.raises(ClientError) as info:
        await call_with_retry(call, INSTANT, random.Random(1))
    assert call.calls == INSTANT.max_attempts
    assert info.value is errors[INSTANT.max_attempts - 1]  # the last error, not the first


async def test_call_with_retry_does_not_swallow_cancellation() -> None:
    call = FlakyCall(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await call_with_retry(call, INSTANT, random.Random(1))
    assert call.calls == 1


async def test_call_with_retry_waits_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    backoff = Backoff(max_attempts=4, base=1.0, cap=3.0)
    call = FlakyCall(*[client_error("ThrottlingException")] * 3)
    assert await call_with_retry(call, backoff, random.Random(3)) == "ok"
    ceilings = [1.0, 2.0, 3.0]  # attempt n waits up to min(cap, base * 2**(n-1))
    assert len(slept) == 3 and all(0 <= s <= c for s, c in zip(slept, ceilings, strict=True))
    rng = random.Random(3)  # the same seed draws the same delays, in order
    assert slept == [backoff.delay(n, rng) for n in range(3)]


@pytest.mark.parametrize(
    ("attempt", "elapsed", "gives_up"),
    [(1, 0.0, False), (3, 5.0, False), (10, 9.9, False), (3, 10.0, True), (2, 60.0, False)],
)
def test_gives_up_with_a_time_budget(attempt: int, elapsed: float, gives_up: bool) -> None:
    # Both the attempts and the budget must be spent: a throttled target is waited out.
    backoff = Backoff(max_attempts=3).with_budget(10.0)
    assert backoff.gives_up(attempt, elapsed) is gives_up


@pytest.mark.parametrize(
    "code", ["ReceiptHandleIsInvalid", "InvalidParameterValue", "InvalidParameterValueException"]
)
def test_an_expired_receipt_is_never_retried(code: str) -> None:
    # LocalStack reports it with SenderFault false; retrying cannot bring the receipt back.
    failure = classify_entry({"Id": "0", "Code": code, "SenderFault": False, "Message": "gone"})
    assert not failure.retryable
