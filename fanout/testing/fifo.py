"""FIFO order scenarios: ordered traffic in many message groups, and the read-back that counts
out-of-order steps per group (shared by tests/integration, tests/reliability and bench).

Each event is a Genesys conversation event whose id carries its group and step
(``<salt>-<group>-<step>``), published to a FIFO source queue with ``MessageGroupId`` = the
conversation, in step order per group (groups interleaved).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

GENESYS_SOURCE = "aws.partner/genesys.com/cloud/3b03b67a-2349-4a03-8b28-c8ac5c26c49a/prod"
STEPS = ("acd.start", "acd.end", "user.start", "user.end", "acw", "wrapup")


@dataclass(frozen=True)
class OrderedEvent:
    group: str
    step: int
    event_id: str
    body: str


def conversation_event(event_id: str, conversation_id: str, step: int) -> dict[str, Any]:
    topic = STEPS[step % len(STEPS)]
    return {
        "version": "0",
        "id": event_id,
        "detail-type": f"v2.detail.events.conversation.{{id}}.{topic}",
        "source": GENESYS_SOURCE,
        "account": "123456789012",
        "time": "2026-11-28T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "topicName": f"v2.detail.events.conversation.{conversation_id}.{topic}",
            "version": "2",
            "eventBody": {
                "conversationId": conversation_id,
                "eventTime": 1795000000000 + step,
                "mediaType": "VOICE",
            },
            "metadata": {"CorrelationId": event_id},
            "timestamp": "2026-11-28T03:00:00.123Z",
        },
    }


def ordered_events(groups: int, per_group: int, *, salt: str | None = None) -> list[OrderedEvent]:
    """``groups`` x ``per_group`` events, round-robin across groups, in step order per group.
    Unique ids per call (a shared LocalStack and the FIFO dedup window outlive a run)."""
    salt = salt or uuid.uuid4().hex[:8]
    events: list[OrderedEvent] = []
    for step in range(per_group):
        for g in range(groups):
            group = f"conv-{salt}-{g:04d}"
            event_id = f"{salt}-{g:04d}-{step:05d}"
            body = orjson.dumps(conversation_event(event_id, group, step)).decode()
            events.append(OrderedEvent(group, step, event_id, body))
    return events


async def publish_fifo(sqs: Any, url: str, events: list[OrderedEvent]) -> None:
    """SendMessageBatch in tens, in list order, each with its group and a dedup id."""
    for start in range(0, len(events), 10):
        chunk = events[start : start + 10]
        response = await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": e.body,
                    "MessageGroupId": e.group,
                    "MessageDeduplicationId": e.event_id,
                }
                for i, e in enumerate(chunk)
            ],
        )
        assert not response.get("Failed"), response["Failed"]


async def read_fifo(sqs: Any, url: str, *, empty_polls: int = 3) -> list[tuple[str, str]]:
    """Every message of a FIFO queue as (MessageGroupId, event id), in the order SQS hands
    them out (received and deleted batch by batch: per group, the queue's order)."""
    got: list[tuple[str, str]] = []
    empty = 0
    while empty < empty_polls:
        response = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=30,
            MessageSystemAttributeNames=["MessageGroupId", "SequenceNumber"],
        )
        messages = response.get("Messages", [])
        if not messages:
            empty += 1
            continue
        empty = 0
        for m in messages:
            group = str(m.get("Attributes", {}).get("MessageGroupId"))
            got.append((group, str(orjson.loads(m["Body"])["id"])))
        await sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return got


@dataclass
class OrderReport:
    """Per-group order of one FIFO target against what was published."""

    published: int
    delivered: int = 0
    out_of_order: int = 0  # steps that came after a later step of their group
    wrong_group: int = 0  # copies whose MessageGroupId is not their conversation
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def render(self, name: str) -> str:
        return (
            f"FIFO {name}: published {self.published}, delivered {self.delivered}, "
            f"out-of-order steps {self.out_of_order}, wrong group {self.wrong_group}, "
            f"duplicates {self.duplicates}, lost {len(self.lost)}"
            + (f"; e.g. {self.examples[:3]}" if self.examples else "")
        )


class ReceiveRecorder:
    """Wraps an SQS client and records the event ids of each ReceiveMessage answer, in order:
    the order fanout received them in (what a FIFO target's groups must follow). Everything else
    is passed through unchanged (only the client's public methods are used)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.received: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def receive_message(self, **kwargs: Any) -> Any:
        response = await self._client.receive_message(**kwargs)
        for message in response.get("Messages", []):
            try:
                self.received.append(str(orjson.loads(message["Body"])["id"]))
            except (ValueError, KeyError, TypeError):
                continue
        return response

    def rank(self) -> dict[str, int]:
        """Event id -> position of its first receive."""
        ranks: dict[str, int] = {}
        for position, event_id in enumerate(self.received):
            ranks.setdefault(event_id, position)
        return ranks


def order_report(
    read: list[tuple[str, str]],
    events: list[OrderedEvent],
    *,
    dead_lettered: Collection[str] = frozenset(),
    rank: Mapping[str, int] | None = None,
) -> OrderReport:
    """Check that each group's steps arrive strictly increasing, none lost (unless
    ``dead_lettered``), none duplicated. ``rank``: the order to check against instead of the
    published steps (e.g. the order fanout received a standard source's messages in)."""
    by_id = {e.event_id: e for e in events}
    if rank is not None:
        by_id = {
            i: OrderedEvent(e.group, rank.get(i, -1), e.event_id, e.body) for i, e in by_id.items()
        }
    report = OrderReport(len(events))
    counts = Counter(event_id for _, event_id in read)
    last: dict[str, int] = defaultdict(lambda: -1)
    for group, event_id in read:
        event = by_id.get(event_id)
        if event is None:
            continue
        if counts[event_id] > 1 and last[event.group] == event.step:
            continue  # a duplicate right behind itself (counted below, not an order step)
        if group != event.group:
            report.wrong_group += 1
        if event.step <= last[event.group]:
            report.out_of_order += 1
            report.examples.append(f"{event.group}: {event.step} after {last[event.group]}")
        last[event.group] = max(last[event.group], event.step)
    report.delivered = len(counts)
    report.duplicates = sum(n - 1 for n in counts.values())
    report.lost = [
        e.event_id for e in events if e.event_id not in counts and e.event_id not in dead_lettered
    ]
    return report
