"""Test harness: unique queues on the shared moto server, event builders, run-until-idle."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from fanout.aws.checks import check_queues
from fanout.aws.client import create_clients
from fanout.config import Settings
from fanout.observability.stats import Stats
from fanout.rules import RuleSet, load_rules
from fanout.service import Service

GENESYS_SOURCE = "aws.partner/genesys.com/cloud/3b03b67a-2349-4a03-8b28-c8ac5c26c49a/prod"


def simplified(
    priority: str = "normal",
    *,
    channel: str = "voice",
    outcome: str = "completed",
    duration_ms: Any = 1000,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The original design's shape."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Interaction Completed",
        "source": "genesys.cloud",
        "account": "123456789012",
        "time": "2026-11-28T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "id": str(uuid.uuid4()),
            "channel": channel,
            "outcome": outcome,
            "duration_ms": duration_ms,
            "tags": {"priority": priority},
        },
    }


def conversation(step: str, *, event_id: str | None = None, **body: Any) -> dict[str, Any]:
    """A Genesys conversation detail event as EventBridge delivers it."""
    conversation_id = body.setdefault("conversationId", str(uuid.uuid4()))
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": f"v2.detail.events.conversation.{{id}}.{step}",
        "source": GENESYS_SOURCE,
        "account": "123456789012",
        "time": "2026-11-28T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "topicName": f"v2.detail.events.conversation.{conversation_id}.{step}",
            "version": "2",
            "eventBody": {"eventTime": 1795000000000, **body},
            "metadata": {"CorrelationId": str(uuid.uuid4())},
            "timestamp": "2026-11-28T03:00:00.123Z",
        },
    }


# Distinctive personal data (phone numbers, SIP addresses, a name, an e-mail) the PII tests
# look for in every output: spans, metrics, logs, summaries.
PII = {
    "ani": "tel:+4915199887766",
    "dnis": "tel:+4930112233445",
    "addressFrom": "sip:piimarker.from@example.org",
    "addressTo": "tel:+4940998877661",
    "customerName": "Ottilie Piimarker",
    "customerEmail": "ottilie.piimarker@example.org",
}


def pii_event(**body: Any) -> dict[str, Any]:
    """A conversation event that carries every value of ``PII``."""
    return conversation("user.end", mediaType="VOICE", **PII, **body)


def dumps(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


class Harness:
    def __init__(self, sqs: Any, endpoint: str, tmp_path: Path) -> None:
        self.sqs = sqs
        self.endpoint = endpoint
        self.tmp_path = tmp_path
        self.prefix = f"t{uuid.uuid4().hex[:10]}-"

    async def queue(self, name: str, *, fifo: bool = False, **attributes: str) -> str:
        if fifo:
            attributes["FifoQueue"] = "true"
        response = await self.sqs.create_queue(
            QueueName=f"{self.prefix}{name}" + (".fifo" if fifo else ""), Attributes=attributes
        )
        return str(response["QueueUrl"])

    def rules(self, text: str, name: str = "rules.yaml") -> Path:
        path = self.tmp_path / name
        path.write_text(text)
        return path

    def settings(self, source: str, dlq: str | None, rules: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "source_queue_url": source,
            "dlq_url": dlq,
            "endpoint_url": self.endpoint,
            "region": "us-east-1",
            "rules": rules,
            "wait_time_seconds": 1,
            # moto's ReceiveMessage has no lock: concurrent receives can hand out the same
            # message twice (at-least-once, as SQS allows). One poller keeps counts exact;
            # tests about concurrency raise it and compare sets of ids.
            "pollers": 1,
            "max_pollers": 1,  # no growth past ``pollers`` either (tests raise both)
            "linger_ms": 5,
            "retry_base_delay_ms": 5,
            "retry_max_delay_ms": 50,
            "shutdown_timeout_seconds": 10,
        }
        values.update(overrides)
        return Settings(**values)

    async def send(self, url: str, bodies: list[str], **extra: Any) -> None:
        for start in range(0, len(bodies), 10):
            chunk = bodies[start : start + 10]
            response = await self.sqs.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "MessageBody": body, **extra} for i, body in enumerate(chunk)
                ],
            )
            assert not response.get("Failed"), response["Failed"]

    async def drain(self, url: str, *, delete: bool = True) -> list[dict[str, Any]]:
        """Everything currently visible in ``url`` (with all attributes)."""
        messages: list[dict[str, Any]] = []
        while True:
            response = await self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            if not batch:
                if (await self.depth(url))[0] == 0:
                    return messages
                continue  # a receive can come back empty while messages are visible
            messages.extend(batch)
            if delete:
                await self.sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(batch)
                    ],
                )

    async def depth(self, url: str) -> tuple[int, int]:
        """(visible, not visible) messages."""
        response = await self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        attrs = response["Attributes"]
        return (
            int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        )

    async def start(
        self,
        settings: Settings,
        rules: RuleSet | None = None,
        endpoint: str | None = None,
        **service_options: Any,
    ) -> tuple[Service, Any, Any]:
        """Build a Service on fresh fanout clients (the data-plane one as FANOUT_SQS_CLIENT
        chooses); returns (service, clients cm, data-plane client)."""
        if endpoint is not None:
            settings = settings.model_copy(update={"endpoint_url": endpoint})
        rules = rules or load_rules(settings.rules)
        cm = create_clients(settings)
        sdk, client = await cm.__aenter__()
        limits = await check_queues(sdk, settings, rules)
        service = Service(
            settings, rules, client, queue_limits=limits, checks_client=sdk, **service_options
        )
        return service, cm, client

    async def run_until_idle(
        self,
        settings: Settings,
        *,
        idle: float = 1.0,
        endpoint: str | None = None,
        timeout: float = 60,
        **service_options: Any,
    ) -> Stats:
        service, cm, _ = await self.start(settings, endpoint=endpoint, **service_options)
        try:
            return await asyncio.wait_for(service.run(exit_when_idle=idle), timeout)
        finally:
            await cm.__aexit__(None, None, None)

    async def run_sampling_in_flight(
        self, settings: Settings, *, endpoint: str | None = None, idle: float = 1.0
    ) -> tuple[Service, Stats, int]:
        """``run_until_idle``, plus the most messages in flight at once (sampled every 5 ms)."""
        service, cm, _ = await self.start(settings, endpoint=endpoint)
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, len(service.inflight))
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        try:
            stats = await asyncio.wait_for(service.run(exit_when_idle=idle), 60)
        finally:
            sampler.cancel()
            await cm.__aexit__(None, None, None)
        return service, stats, peak


def bodies_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [orjson.loads(m["Body"]) for m in messages]


def ids_of(messages: list[dict[str, Any]]) -> list[str]:
    return [str(orjson.loads(m["Body"])["id"]) for m in messages]


async def run_fanout_cli(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> tuple[int, str, str]:
    """``python -m fanout <args>`` in its own process with exactly ``env``: (exit code, stdout,
    stderr). Killed if it outlives ``timeout`` (the test then fails on the TimeoutError)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fanout",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
