"""FIFO order on LocalStack: a FIFO source with many message groups, FIFO targets faulted through
the proxy (partial batch failures, throttles, 5xx, resets), in-process and across kill -9 of a
``python -m fanout run`` subprocess. Every group's steps must arrive strictly increasing in
each FIFO target, none lost, none duplicated (redeliveries fall in the dedup window)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fanout.testing.accounting import LOCALSTACK_URL, client, depth, localstack_up
from fanout.testing.faultproxy import ErrorResponse, FailEntries, FaultProxy, RandomFaults, Reset
from fanout.testing.fifo import order_report, ordered_events, publish_fifo, read_fifo

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(900)]

RULES = """\
targets:
  ledger:
    queue_url: "{ledger}"
  by_conversation:
    queue_url: "{by_conversation}"
    fifo:
      message_group_id: detail.eventBody.conversationId
rules:
  - id: everything
    condition: id != null
    targets: [ledger, by_conversation]
"""


def faults() -> list[Any]:
    return [
        FailEntries("SendMessageBatch", "InternalError", False, max_entries=3, times=None),
        FailEntries("SendMessageBatch", "ServiceUnavailable", False, max_entries=1, times=None),
        ErrorResponse("SendMessageBatch", 403, "RequestThrottled", True, times=None),
        ErrorResponse("SendMessageBatch", 400, "ThrottlingException", True, times=None),
        ErrorResponse("SendMessageBatch", 500, "InternalError", times=None),
        Reset("SendMessageBatch", mid_response=True, times=None),
        Reset("SendMessageBatch", mid_response=False, times=None),
    ]


class Queues:
    def __init__(self, sqs: Any, urls: dict[str, str], rules: Path) -> None:
        self.sqs = sqs
        self.urls = urls
        self.rules = rules

    def env(self, endpoint: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "FANOUT_SOURCE_QUEUE_URL": self.urls["source"],
                "FANOUT_DLQ_URL": self.urls["dlq"],
                "FANOUT_ENDPOINT_URL": endpoint,
                "FANOUT_REGION": "us-east-1",
                "FANOUT_RULES": str(self.rules),
                "FANOUT_WAIT_TIME_SECONDS": "1",
                "FANOUT_RETRY_BASE_DELAY_MS": "50",
                "FANOUT_RETRY_MAX_DELAY_MS": "1000",
                "FANOUT_LOG_LEVEL": "WARNING",
                **extra,
            }
        )
        return env


@pytest.fixture
async def queues(tmp_path: Path) -> AsyncIterator[Queues]:
    if not localstack_up():
        pytest.fail(f"LocalStack is not reachable at {LOCALSTACK_URL} (see README)")
    prefix = f"fifo-{uuid.uuid4().hex[:8]}-"
    async with client(LOCALSTACK_URL) as sqs:
        urls: dict[str, str] = {}
        for name, fifo in [("source", True), ("dlq", False), ("ledger", True), ("byconv", True)]:
            response = await sqs.create_queue(
                QueueName=prefix + name + (".fifo" if fifo else ""),
                Attributes={"FifoQueue": "true"} if fifo else {},
            )
            urls[name] = str(response["QueueUrl"])
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(ledger=urls["ledger"], by_conversation=urls["byconv"]))
        try:
            yield Queues(sqs, urls, rules)
        finally:
            for url in urls.values():
                await sqs.delete_queue(QueueUrl=url)


async def _check(queues: Queues, events: list[Any]) -> None:
    records = [orjson.loads(b["Body"]) for b in await _read_all(queues.sqs, queues.urls["dlq"])]
    assert records == [], records[:2]
    visible, hidden = await depth(queues.sqs, queues.urls["source"])
    assert visible + hidden == 0
    for name in ("ledger", "byconv"):
        report = order_report(await read_fifo(queues.sqs, queues.urls[name]), events)
        print("\n" + report.render(name))
        assert report.out_of_order == 0, report.examples
        assert report.wrong_group == 0
        assert report.lost == [] and report.duplicates == 0


async def _read_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        response = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        if not response.get("Messages"):
            return out
        out.extend(response["Messages"])


async def _run_fanout(
    queues: Queues, endpoint: str, log: Path, *args: str, **env: str
) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fanout",
            "run",
            *args,
            env=queues.env(endpoint, **env),
            stdout=out,
            stderr=out,
        )


async def test_fifo_order_under_faults(queues: Queues, tmp_path: Path) -> None:
    events = ordered_events(50, 20)  # 1,000 events in 50 conversations
    await publish_fifo(queues.sqs, queues.urls["source"], events)
    log = tmp_path / "fanout.log"
    async with FaultProxy(LOCALSTACK_URL) as proxy:
        schedule = proxy.add(RandomFaults(faults(), 0.15, seed=7, queue=".fifo"))
        proc = await _run_fanout(
            queues, proxy.url, log, "--exit-when-idle", "5", FANOUT_POLLERS="4"
        )
        assert await asyncio.wait_for(proc.wait(), 600) == 0, log.read_text()[-3000:]
    print(f"\nfaults injected: {dict(schedule.injected)}")
    assert schedule.hits > 20
    await _check(queues, events)


async def test_fifo_order_across_kill_9(queues: Queues, tmp_path: Path) -> None:
    events = ordered_events(40, 25)  # 1,000 events in 40 conversations
    await publish_fifo(queues.sqs, queues.urls["source"], events)
    log = tmp_path / "fanout.log"
    rng = random.Random(9)
    visibility = "4"
    async with FaultProxy(LOCALSTACK_URL) as proxy:
        proxy.add(RandomFaults(faults(), 0.1, seed=9, queue=".fifo"))
        for _ in range(6):
            proc = await _run_fanout(
                queues,
                proxy.url,
                log,
                FANOUT_POLLERS="4",
                FANOUT_VISIBILITY_TIMEOUT_SECONDS=visibility,
            )
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            try:
                proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pytest.fail(f"fanout exited by itself: {log.read_text()[-3000:]}")
            assert await proc.wait() == -signal.SIGKILL
        proc = await _run_fanout(
            queues,
            proxy.url,
            log,
            "--exit-when-idle",
            "10",
            FANOUT_POLLERS="4",
            FANOUT_VISIBILITY_TIMEOUT_SECONDS=visibility,
        )
        assert await asyncio.wait_for(proc.wait(), 600) == 0, log.read_text()[-3000:]
    await _check(queues, events)
