"""The two baselines, each run as its own process on the same queues and events as fanout.

* ``sync``: the original design's algorithm. Synchronous boto3; one ReceiveMessage of 10; per
  message, rules evaluated with jmespath on the envelope (the original evaluated its
  ``detail.``-prefixed paths on the detail object and so matched nothing: here they see the
  envelope, so the baseline does the real work), one SendMessage per matched target, then one
  DeleteMessage.
* ``naive``: a plain asyncio consumer. P pollers; per receive, the copies are grouped into one
  SendMessageBatch per target (split only at 10 entries / 1 MiB) and the receive is acknowledged
  with one DeleteMessageBatch; nothing is coalesced across receives.

    python -m bench.baselines sync|naive --endpoint-url URL --source-queue-url URL \
        --rules rules.yaml --targets-json '{"critical": "http://..."}' [--max-events N]

prints one JSON line: processed, window seconds, SQS calls by operation, failed entries.
API calls are counted with a botocore ``before-call`` hook, so retries count too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jmespath
import yaml

SQS_MAX_BYTES = 1_048_576


@dataclass(frozen=True)
class BaselineTarget:
    name: str
    url: str
    group: Any  # compiled JMESPath for FIFO MessageGroupId, or None for a standard queue


@dataclass(frozen=True)
class BaselineRule:
    condition: Any
    targets: tuple[BaselineTarget, ...]


def truthy(value: Any) -> bool:
    return not (
        value is None or value is False or (isinstance(value, (str, list, dict)) and not value)
    )


def load(rules_path: str, urls: dict[str, str]) -> list[BaselineRule]:
    with open(rules_path) as f:
        raw = yaml.safe_load(f)
    targets = {}
    for name, spec in raw["targets"].items():
        fifo = spec.get("fifo")
        group = None
        if fifo is not None or urls[name].endswith(".fifo"):
            group = jmespath.compile((fifo or {}).get("message_group_id") or "`null`")
        targets[name] = BaselineTarget(name, urls[name], group)
    return [
        BaselineRule(jmespath.compile(r["condition"]), tuple(targets[t] for t in r["targets"]))
        for r in raw["rules"]
    ]


def matched_targets(rules: list[BaselineRule], envelope: Any) -> list[BaselineTarget]:
    out: dict[str, BaselineTarget] = {}
    for rule in rules:
        if truthy(rule.condition.search(envelope)):
            for t in rule.targets:
                out.setdefault(t.name, t)
    return list(out.values())


def entry(target: BaselineTarget, body: str, envelope: Any, system: str) -> dict[str, Any]:
    e: dict[str, Any] = {"MessageBody": body}
    if target.group is not None:
        e["MessageGroupId"] = str(target.group.search(envelope) or target.name)
        key = f"{system}:{envelope.get('id')}:{target.name}".encode()
        e["MessageDeduplicationId"] = hashlib.sha256(key).hexdigest()
    return e


class Counting:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def hook(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1


def run_sync(
    args: argparse.Namespace, rules: list[BaselineRule], counting: Counting
) -> dict[str, Any]:
    import boto3

    client = boto3.client("sqs", endpoint_url=args.endpoint_url, region_name="us-east-1")
    client.meta.events.register("before-call.sqs", counting.hook)
    processed = failed = empty = 0
    first = last = None
    while processed < args.max_events and empty < args.idle_receives:
        resp = client.receive_message(
            QueueUrl=args.source_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages = resp.get("Messages", [])
        if not messages:
            empty += 1
            continue
        empty = 0
        first = first or time.time()
        for m in messages:
            envelope = json.loads(m["Body"])
            for target in matched_targets(rules, envelope):
                try:
                    client.send_message(
                        QueueUrl=target.url, **entry(target, m["Body"], envelope, "sync")
                    )
                except Exception:
                    failed += 1
            client.delete_message(QueueUrl=args.source_queue_url, ReceiptHandle=m["ReceiptHandle"])
            processed += 1
        last = time.time()
    return {"processed": processed, "failed_entries": failed, "first": first, "last": last}


async def run_naive(
    args: argparse.Namespace, rules: list[BaselineRule], counting: Counting
) -> dict[str, Any]:
    import aioboto3
    from aiobotocore.config import AioConfig

    state = {"processed": 0, "failed": 0, "first": None, "last": None}
    config = AioConfig(max_pool_connections=max(10, args.pollers * 8))
    session = aioboto3.Session()
    async with session.client(
        "sqs", endpoint_url=args.endpoint_url, region_name="us-east-1", config=config
    ) as client:
        client.meta.events.register("before-call.sqs", counting.hook)

        async def send(url: str, entries: list[dict[str, Any]]) -> None:
            batches: list[list[dict[str, Any]]] = [[]]
            size = 0
            for e in entries:
                n = len(e["MessageBody"].encode())
                if batches[-1] and (len(batches[-1]) == 10 or size + n > SQS_MAX_BYTES):
                    batches.append([])
                    size = 0
                batches[-1].append(e)
                size += n
            for batch in batches:
                for i, e in enumerate(batch):
                    e["Id"] = str(i)
                resp = await client.send_message_batch(QueueUrl=url, Entries=batch)
                state["failed"] += len(resp.get("Failed", []))

        async def poller() -> None:
            empty = 0
            while empty < args.idle_receives and state["processed"] < args.max_events:
                resp = await client.receive_message(
                    QueueUrl=args.source_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                messages = resp.get("Messages", [])
                if not messages:
                    empty += 1
                    continue
                empty = 0
                state["first"] = state["first"] or time.time()
                groups: dict[str, list[dict[str, Any]]] = {}
                for m in messages:
                    envelope = json.loads(m["Body"])
                    for target in matched_targets(rules, envelope):
                        groups.setdefault(target.url, []).append(
                            entry(target, m["Body"], envelope, "naive")
                        )
                await asyncio.gather(*(send(url, es) for url, es in groups.items()))
                await client.delete_message_batch(
                    QueueUrl=args.source_queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
                state["processed"] += len(messages)
                state["last"] = time.time()

        await asyncio.gather(*(poller() for _ in range(args.pollers)))
    return {
        "processed": state["processed"],
        "failed_entries": state["failed"],
        "first": state["first"],
        "last": state["last"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="baseline consumers for the bench")
    parser.add_argument("system", choices=("sync", "naive"))
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--source-queue-url", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--targets-json", required=True, help="target name -> queue URL")
    parser.add_argument("--max-events", type=int, default=10**12)
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--idle-receives", type=int, default=2, help="empty receives to stop")
    args = parser.parse_args(argv)
    rules = load(args.rules, json.loads(args.targets_json))
    counting = Counting()
    if args.system == "sync":
        result = run_sync(args, rules, counting)
    else:
        result = asyncio.run(run_naive(args, rules, counting))
    result["calls"] = dict(counting.calls)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
