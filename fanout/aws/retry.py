"""Retry decisions (pure): which SQS failures are worth another attempt, and how long to wait.

The SDK's own retries are switched off (see ``fanout.aws.client``) so that every retry is
decided here, once, with the same classification for whole calls and for ``Failed`` batch entries.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    MetadataRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    RefreshWithMFAUnsupportedError,
    SSOError,
    TokenRetrievalError,
    UnknownCredentialError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

if TYPE_CHECKING:
    from fanout.config import Settings

T = TypeVar("T")

# Throttling arrives as ThrottlingException, or RequestThrottled with HTTP 403; KMS throttling
# on SSE-KMS queues as KMS.ThrottlingException / KmsThrottled. They are retryable even though
# SQS marks them SenderFault: the sender did nothing wrong but go too fast.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "KMS.ThrottlingException",
        "KmsThrottled",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
RETRYABLE_CODES = THROTTLING_CODES | TRANSIENT_CODES
NON_EXISTENT_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)
# Errors about fanout's own credentials or clock, not about the queue or an entry: every call
# of the process fails alike until the credentials are refreshed (a web-identity or assumed-role
# credential that expired before its refresh landed) or the clock is fixed. Never a target's
# fault: held and retried (fanout.aws.outage), never dead-lettered, never split per entry.
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "RequestExpired",  # the request's timestamp is too old: a skewed clock
        "RequestTimeTooSkewed",
    }
)
# Raised by botocore's provider chain while resolving or refreshing credentials (IMDS, ECS/EKS
# container endpoint, STS, SSO): no request was even signed.
CREDENTIAL_EXCEPTIONS: tuple[type[BotoCoreError], ...] = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    UnknownCredentialError,
    MetadataRetrievalError,
    RefreshWithMFAUnsupportedError,
    TokenRetrievalError,
    SSOError,
)
# STS/SSO calls the provider chain makes: their ClientErrors (AccessDenied for an
# AssumeRole, ExpiredTokenException for a web identity token) are credential errors too.
CREDENTIAL_OPERATIONS = frozenset(
    {
        "AssumeRole",
        "AssumeRoleWithWebIdentity",
        "AssumeRoleWithSAML",
        "GetRoleCredentials",
        "GetSessionToken",
        "CreateToken",
    }
)
# Errors about the queue itself, not one entry: splitting a batch to isolate a culprit is futile.
# KMS errors of an SSE-KMS queue (KMS.AccessDeniedException: our role may not use that queue's
# key; a key disabled, deleted or not usable) are about that one queue's key, not about our
# credentials: a refresh cannot fix them and the other queues work, so the copies go to the DLQ
# naming that target (target_rejected), once, without a per-entry split.
QUEUE_WIDE_CODES = (
    NON_EXISTENT_QUEUE_CODES
    | CREDENTIAL_CODES
    | frozenset(
        {
            "AccessDenied",
            "AccessDeniedException",
            "KMS.DisabledException",
            "KmsDisabled",
            "KMS.AccessDeniedException",
            "KmsAccessDenied",
            "KMS.NotFoundException",
            "KmsNotFound",
            "KMS.InvalidStateException",
            "KmsInvalidState",
            "KMS.InvalidKeyUsageException",
            "KmsInvalidKeyUsage",
        }
    )
)
# A receipt handle that timed out: the message is visible again and will come back; not fatal,
# and never worth a retry (LocalStack answers InvalidParameterValueException, SenderFault false:
# retried, those entries clogged the visibility heartbeat during a 60 s throttle).
EXPIRED_RECEIPT_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "InvalidParameterValue", "InvalidParameterValueException"}
)


# Connection failures and timeouts, as classify_exception names them (the exception's class).
CONNECTION_ERROR_CODES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ProxyConnectionError",
        "HTTPClientError",
        "TimeoutError",
    }
)


def ends_by_itself(failure: Failure) -> bool:
    """A failure that passes without anyone fixing anything (credentials refreshed, a throttle
    or an outage over, a connection back): a message left to come back for it will be
    delivered then, so ``--exit-when-idle`` waits for it (fanout.service)."""
    return (
        failure.credentials
        or failure.code in RETRYABLE_CODES
        or failure.code in CONNECTION_ERROR_CODES
    )


class MessageIntegrityError(Exception):
    """A received message whose body does not match its MD5OfBody (corrupted on the way).

    Raised by the lean client (``fanout.aws.lean``) for the whole receive, so no message of it
    is processed; retryable: the messages come back after their visibility timeout."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed call or batch entry, classified. ``credentials``: fanout's own credentials
    or clock failed (CREDENTIAL_CODES, CREDENTIAL_EXCEPTIONS): held and retried by the batch
    calls of the pipeline (fanout.aws.outage), never the target's fault."""

    code: str
    message: str
    retryable: bool
    credentials: bool = False


def is_retryable(code: str, *, sender_fault: bool | None = None, status: int | None = None) -> bool:
    if code in RETRYABLE_CODES:
        return True
    if code in EXPIRED_RECEIPT_CODES:
        return False
    if status is not None and status >= 500:
        return True
    # A batch entry failed on the server's side with a code we do not know: try again.
    return sender_fault is False


def classify_entry(entry: Mapping[str, Any]) -> Failure:
    """A ``Failed`` entry of a SendMessageBatch, DeleteMessageBatch or visibility batch call."""
    code = str(entry.get("Code") or "Unknown")
    credentials = code in CREDENTIAL_CODES
    return Failure(
        code=code,
        message=str(entry.get("Message") or ""),
        retryable=not credentials
        and is_retryable(code, sender_fault=bool(entry.get("SenderFault", True))),
        credentials=credentials,
    )


def classify_exception(exc: BaseException) -> Failure:
    """A whole call that raised: AWS error responses, connection errors and timeouts."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "")
        if code in CREDENTIAL_CODES or exc.operation_name in CREDENTIAL_OPERATIONS:
            # Not retryable on its own (a plain retry signs with the same credentials): the
            # pipeline's batch calls refresh them and hold (Failure.credentials).
            return Failure(code=code, message=message, retryable=False, credentials=True)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return Failure(
            code=code,
            message=message,
            retryable=is_retryable(code, status=status if isinstance(status, int) else None),
        )
    if isinstance(exc, CREDENTIAL_EXCEPTIONS):
        return Failure(code=type(exc).__name__, message=str(exc), retryable=False, credentials=True)
    if isinstance(
        exc, (BotoConnectionError, HTTPClientError, TimeoutError, OSError, MessageIntegrityError)
    ):
        return Failure(code=type(exc).__name__, message=str(exc), retryable=True)
    if isinstance(exc, BotoCoreError):
        return Failure(code=type(exc).__name__, message=str(exc), retryable=False)
    return Failure(code=type(exc).__name__, message=str(exc), retryable=False)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
    Jitter"): attempt ``n`` waits uniformly in ``[0, min(cap, base * 2**n)]``.

    Gives up once ``max_attempts`` are spent **and** ``max_seconds`` have passed since the
    first attempt: with a time budget (the senders': FANOUT_RETRY_MAX_SECONDS) a throttled or
    failing target is waited out for that long, at one try per ``cap`` at most; without one
    (0, the default: deletes, visibility changes, start-up checks) only attempts count."""

    max_attempts: int = 6
    base: float = 0.1
    cap: float = 5.0
    max_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        """FANOUT_RETRY_MAX_ATTEMPTS, FANOUT_RETRY_BASE_DELAY_MS, FANOUT_RETRY_MAX_DELAY_MS."""
        return cls(
            max_attempts=settings.retry_max_attempts,
            base=settings.retry_base_delay_ms / 1000,
            cap=settings.retry_max_delay_ms / 1000,
        )

    def ceiling(self, attempt: int) -> float:
        return min(self.cap, math.ldexp(self.base, min(attempt, 62)))

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(attempt))

    def with_budget(self, seconds: float) -> Backoff:
        return Backoff(self.max_attempts, self.base, self.cap, seconds)

    def gives_up(self, attempt: int, elapsed: float = 0.0) -> bool:
        """``attempt`` counts from 1: the call that just failed was attempt number ``attempt``;
        ``elapsed``: seconds since the first attempt."""
        return attempt >= self.max_attempts and elapsed >= self.max_seconds


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    rng: random.Random,
    *,
    on_retry: Callable[[Failure, int], None] | None = None,
) -> T:
    """Run ``call``; retry retryable failures with async backoff; re-raise the last error."""
    attempt = 1
    while True:
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = classify_exception(exc)
            if not failure.retryable or backoff.gives_up(attempt):
                raise
            if on_retry is not None:
                on_retry(failure, attempt)
            await asyncio.sleep(backoff.delay(attempt - 1, rng))
            attempt += 1
