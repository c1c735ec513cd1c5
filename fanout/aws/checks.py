"""Start-up checks: every queue fanout will touch exists, is reachable and allowed, before any
message is received. A problem is one line naming the queue, where its URL came from, and the fix.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from fanout.aws.limits import MAX_MESSAGE_BYTES
from fanout.aws.retry import NON_EXISTENT_QUEUE_CODES, Backoff, Failure, call_with_retry
from fanout.config import Settings
from fanout.errors import StartupError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

    from fanout.rules import RuleSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueRef:
    """A queue to check at start, with where its URL came from (for the error message)."""

    label: str
    url: str
    origin: str


def queues_to_check(settings: Settings, rules: RuleSet) -> list[QueueRef]:
    assert settings.source_queue_url is not None
    refs = [QueueRef("source queue", settings.source_queue_url, "FANOUT_SOURCE_QUEUE_URL")]
    if settings.dlq_url:
        refs.append(QueueRef("DLQ", settings.dlq_url, "FANOUT_DLQ_URL"))
    for target in rules.targets.values():
        refs.append(QueueRef(f"target '{target.name}'", target.queue_url, rules.path))
    return refs


async def check_queues(client: SQSClient, settings: Settings, rules: RuleSet) -> dict[str, int]:
    """Fail the start with one clear line if any queue is missing, denied or unreachable.

    Returns each queue's MaximumMessageSize: copies over a target's limit go to the DLQ
    without a doomed send (older queues still have the former 256 KiB default)."""
    source_has_redrive = False
    limits: dict[str, int] = {}
    for ref in queues_to_check(settings, rules):
        attributes = await _check_queue(client, settings, ref)
        limits[ref.url] = int(attributes.get("MaximumMessageSize", MAX_MESSAGE_BYTES))
        if ref.label == "source queue":
            source_has_redrive = "RedrivePolicy" in attributes
    if not settings.dlq_url and not source_has_redrive:
        log.warning(
            "no DLQ configured (FANOUT_DLQ_URL) and the source queue has no redrive policy: "
            "events that cannot be delivered will be received again and again"
        )
    return limits


async def check_new_targets(
    client: SQSClient, settings: Settings, rules: RuleSet, known: Container[str]
) -> dict[str, int]:
    """On a rules reload: check the target queues not checked before (URL not in ``known``);
    StartupError names the first missing, denied or unreachable one. Returns their limits."""
    limits: dict[str, int] = {}
    for target in rules.targets.values():
        if target.queue_url in known or target.queue_url in limits:
            continue
        ref = QueueRef(f"target '{target.name}'", target.queue_url, rules.path)
        attributes = await _check_queue(client, settings, ref)
        limits[ref.url] = int(attributes.get("MaximumMessageSize", MAX_MESSAGE_BYTES))
    return limits


def queue_problem(exc: BaseException) -> str | None:
    """One phrase for a queue that is missing, denied or unreachable; None otherwise."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in NON_EXISTENT_QUEUE_CODES:
            return "does not exist"
        if "AccessDenied" in code:
            return "access denied (see docs/deploying/iam.md: the IAM actions per queue)"
        return None
    if isinstance(exc, (BotoCoreError, OSError)):
        return f"is unreachable: {exc}"
    return None


async def _check_queue(client: SQSClient, settings: Settings, ref: QueueRef) -> dict[str, str]:
    """GetQueueAttributes on one queue; a problem raises StartupError naming it."""
    # Transient errors (throttling, 5xx, a dropped connection) are retried like any call: they
    # say nothing about the configuration, so they must not end the start with exit 2.
    backoff = Backoff.from_settings(settings)
    rng = random.Random()  # noqa: S311 - jitter, not cryptography

    def retrying(failure: Failure, attempt: int) -> None:
        log.warning("checking %s: %s (attempt %d), retrying", ref.label, failure.code, attempt)

    try:
        response = await call_with_retry(
            functools.partial(
                client.get_queue_attributes,
                QueueUrl=ref.url,
                AttributeNames=["RedrivePolicy", "MaximumMessageSize"],
            ),
            backoff,
            rng,
            on_retry=retrying,
        )
    except NoCredentialsError:
        raise StartupError(
            "no AWS credentials found by the standard provider chain "
            "(env, ~/.aws, SSO, instance role); configure one"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        problem = queue_problem(exc) or f"failed: {error.get('Code')} {error.get('Message', '')}"
        raise StartupError(f"{ref.label} {ref.url} {problem} (set in {ref.origin})") from None
    except (BotoCoreError, OSError) as exc:
        raise StartupError(
            f"{ref.label} {ref.url} {queue_problem(exc)} (set in {ref.origin}; "
            f"endpoint {settings.endpoint_url or 'AWS'})"
        ) from None
    attributes = {str(k): v for k, v in response.get("Attributes", {}).items()}
    return attributes
