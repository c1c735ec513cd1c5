"""Reliability scenarios: queues, seeded traffic, running fanout through the fault proxy, and
the accounting that proves nothing was lost.

Every scenario publishes a known set of event ids, lets fanout run (in-process, or as a real
subprocess for the crash and stop tests), then reads every target and the DLQ back and checks,
for each (event, target) pair the real ``RuleSet.match`` expects, that the target has the event
or the DLQ has a record of it naming that target. Duplicates are counted, never hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioboto3
import orjson
from botocore.config import Config

from fanout.aws.checks import check_queues
from fanout.aws.client import create_clients
from fanout.config import Settings
from fanout.events import InvalidEvent, parse_event
from fanout.local.synthetic import GenesysEventGenerator, Mix
from fanout.observability.stats import Stats
from fanout.rules import RuleSet, load_rules
from fanout.service import Service
from fanout.testing.faultproxy import FaultProxy, Reply, SqsRequest

LOCALSTACK_URL = os.environ.get(
    "LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566"
)  # as `make` exports it
FIFO_TARGET = "ledger"

# Every event matches `all`; the others split traffic so that each target gets a different
# subset and the FIFO target gets every conversation event (most of the traffic).
RULES = """\
match: all
targets:
  all: {{queue_url: "{all}"}}
  voice: {{queue_url: "{voice}"}}
  agents: {{queue_url: "{agents}"}}
  ledger:
    queue_url: "{ledger}"
    fifo:
      message_group_id: detail.eventBody.conversationId
rules:
  - id: every-event
    condition: id != null
    targets: [all]
  - id: voice
    condition: detail.eventBody.mediaType == 'VOICE' || detail.channel == 'voice'
    targets: [voice]
  - id: agent-legs
    condition: contains("detail-type", '.user.') || contains("detail-type", 'presence')
    targets: [agents]
  - id: conversations
    condition: starts_with("detail-type", 'v2.detail.events.conversation.')
    targets: [ledger]
"""
TARGETS = ("all", "voice", "agents", FIFO_TARGET)


def localstack_up(url: str = LOCALSTACK_URL) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as resp:
            return bool(
                orjson.loads(resp.read())["services"].get("sqs") in {"available", "running"}
            )
    except (OSError, ValueError, KeyError):
        return False


def client(endpoint: str) -> Any:
    """A plain client for setup and ground truth (bypasses the proxy)."""
    return aioboto3.Session().client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}, read_timeout=30),
    )


# --------------------------------------------------------------------------------------------
# Queues and traffic
# --------------------------------------------------------------------------------------------


@dataclass
class Fleet:
    """One scenario's queues (uniquely named: LocalStack is shared) and its rules file."""

    sqs: Any
    endpoint: str
    prefix: str
    source: str
    dlq: str
    targets: dict[str, str]
    rules_path: Path
    rules: RuleSet
    profile: str = "fast"  # or "long" (LocalStack)

    @property
    def all_queues(self) -> list[str]:
        return [self.source, self.dlq, *self.targets.values()]

    def settings(self, endpoint: str | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "source_queue_url": self.source,
            "dlq_url": self.dlq,
            "endpoint_url": endpoint or self.endpoint,
            "region": "us-east-1",
            "rules": self.rules_path,
            "wait_time_seconds": 1,
            "visibility_timeout_seconds": 3,
            "linger_ms": 10,
            "delete_linger_ms": 20,
            "retry_base_delay_ms": 20,
            "retry_max_delay_ms": 300,
            "shutdown_timeout_seconds": 10,
        }
        if self.profile == "fast":
            # moto: concurrent receives can hand out a message twice; pollers stay at the
            # floor (``pollers``) unless a test raises the ceiling.
            values["max_pollers"] = 1
        values.update(overrides)
        return Settings(**values)

    def env(self, endpoint: str, **overrides: Any) -> dict[str, str]:
        """The environment for ``python -m fanout run`` with these queues."""
        settings = self.settings(endpoint, **overrides)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
        for name, value in settings.model_dump().items():
            if value is not None:
                env[f"FANOUT_{name.upper()}"] = str(value)
        return env

    async def delete(self) -> None:
        for url in self.all_queues:
            with contextlib.suppress(Exception):
                await self.sqs.delete_queue(QueueUrl=url)


async def make_fleet(sqs: Any, endpoint: str, tmp_path: Path, name: str) -> Fleet:
    prefix = f"rel1-{name}-{uuid.uuid4().hex[:8]}-"

    async def create(queue: str, fifo: bool = False) -> str:
        attributes = {"FifoQueue": "true"} if fifo else {}
        response = await sqs.create_queue(
            QueueName=prefix + queue + (".fifo" if fifo else ""), Attributes=attributes
        )
        return str(response["QueueUrl"])

    source = await create("source")
    dlq = await create("dlq")
    targets = {t: await create(t, fifo=t == FIFO_TARGET) for t in TARGETS}
    rules_path = tmp_path / f"{name}-rules.yaml"
    rules_path.write_text(RULES.format(**targets))
    return Fleet(sqs, endpoint, prefix, source, dlq, targets, rules_path, load_rules(rules_path))


@contextlib.asynccontextmanager
async def fleet_on(endpoint: str, tmp_path: Path, name: str) -> AsyncIterator[Fleet]:
    """A fresh fleet of queues at ``endpoint`` (moto or LocalStack), deleted on exit."""
    async with client(endpoint) as sqs:
        fleet = await make_fleet(sqs, endpoint, tmp_path, name)
        try:
            yield fleet
        finally:
            await fleet.delete()


@dataclass(frozen=True)
class Published:
    event_id: str
    body: str


def make_events(count: int, seed: int) -> list[Published]:
    # Unique ids per run: the shared LocalStack and the FIFO dedup window outlive one test.
    generator = GenesysEventGenerator(seed, Mix(malformed=0.0))
    salt = uuid.uuid4().hex[:8]
    events: list[Published] = []
    for _ in range(count):
        event = generator.event()
        event["id"] = f"{salt}-{len(events):06d}-{event['id']}"
        events.append(Published(str(event["id"]), orjson.dumps(event).decode()))
    assert len({e.event_id for e in events}) == count
    return events


async def publish(
    sqs: Any, url: str, events: Iterable[Published], *, rate: float | None = None
) -> int:
    """SendMessageBatch in tens, optionally paced at ``rate`` events/s; returns how many."""
    batch: list[Published] = []
    sent = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    for event in events:
        batch.append(event)
        if len(batch) == 10:
            sent += await _send(sqs, url, batch)
            batch = []
            if rate:
                await asyncio.sleep(max(0.0, started + sent / rate - loop.time()))
    if batch:
        sent += await _send(sqs, url, batch)
    return sent


async def _send(sqs: Any, url: str, batch: list[Published]) -> int:
    response = await sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "MessageBody": e.body} for i, e in enumerate(batch)],
    )
    assert not response.get("Failed"), response["Failed"]
    return len(batch)


async def depth(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, not visible) messages."""
    response = await sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    attrs = response["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


async def read_all(sqs: Any, url: str) -> list[str]:
    """Every body in ``url`` (received and deleted): the ground truth after a run."""
    bodies: list[str] = []
    empty = 0
    while empty < 3:
        response = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        )
        messages = response.get("Messages", [])
        if not messages:
            visible, hidden = await depth(sqs, url)
            empty = empty + 1 if visible + hidden == 0 else 0
            if visible + hidden:
                await asyncio.sleep(0.2)
            continue
        bodies.extend(m["Body"] for m in messages)
        await sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return bodies


async def wait_settled(
    sqs: Any, url: str, *, quiet: float, timeout: float, ready: Callable[[], bool] = lambda: True
) -> None:
    """Until the source queue stayed empty (nothing visible, nothing in flight) ``quiet`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    empty_since: float | None = None
    while loop.time() < deadline:
        visible, hidden = await depth(sqs, url)
        now = loop.time()
        if visible + hidden == 0 and ready():
            empty_since = empty_since or now
            if now - empty_since >= quiet:
                return
        else:
            empty_since = None
        await asyncio.sleep(0.25)
    raise TimeoutError(f"source queue not settled after {timeout:.0f}s: {visible}+{hidden}")


def accepted_sends(into: Counter[str]) -> Callable[[SqsRequest, Reply], None]:
    """A Tap callback counting the event ids a SendMessageBatch reply says were accepted
    (for a target that is deleted mid-run: its queue cannot be read afterwards)."""

    def on_reply(req: SqsRequest, reply: Reply) -> None:
        payload = reply.parsed() or {}
        entries = {e["Id"]: e for e in req.body.get("Entries", [])}
        for ok in payload.get("Successful") or []:
            into[orjson.loads(entries[ok["Id"]]["MessageBody"])["id"]] += 1

    return on_reply


# --------------------------------------------------------------------------------------------
# Running fanout in-process through the proxy
# --------------------------------------------------------------------------------------------


async def run_service(
    fleet: Fleet,
    proxy: FaultProxy,
    *,
    until: Callable[[], Any],
    timeout: float,
    started: Callable[[], None] | None = None,
    stats: Stats | None = None,
    **overrides: Any,
) -> Stats:
    """Run a Service against ``proxy`` until the coroutine ``until()`` returns, then stop it.
    ``started`` is called once the start-up queue check passed (e.g. to open a fault window);
    ``stats``: the run's counters, to watch while it runs."""
    settings = fleet.settings(proxy.url, **overrides)
    async with create_clients(settings) as (sdk, sqs):  # data plane: FANOUT_SQS_CLIENT
        limits = await check_queues(sdk, settings, fleet.rules)
        if started is not None:
            started()
        service = Service(
            settings, fleet.rules, sqs, queue_limits=limits, checks_client=sdk, stats=stats
        )
        runner = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(timeout):
                waiter = asyncio.ensure_future(until())
                done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if runner in done:
                    waiter.cancel()
                    raise AssertionError(f"fanout stopped by itself: {runner.exception()!r}")
                waiter.result()
        finally:
            service.stop.set()
            stats = await runner
    return stats


# --------------------------------------------------------------------------------------------
# Accounting
# --------------------------------------------------------------------------------------------


@dataclass
class Accounting:
    scenario: str
    published: int
    expected_pairs: int = 0
    delivered: Counter[str] = field(default_factory=Counter)  # distinct ids per target
    duplicates: Counter[str] = field(default_factory=Counter)  # extra copies per target
    fully_delivered: int = 0  # events that reached every expected target
    dlq_events: int = 0  # distinct events with a DLQ record
    dlq_pairs: int = 0  # (event, target) pairs covered only by a DLQ record
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    dlq_records: list[dict[str, Any]] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)  # (event id, target)
    misrouted: list[tuple[str, str]] = field(default_factory=list)
    source_left: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def duplicated(self) -> int:
        return sum(self.duplicates.values())

    def render(self) -> str:
        lines = [
            f"== accounting: {self.scenario} ==",
            f"published {self.published} events, {self.expected_pairs} (event, target) pairs",
            "delivered per target (distinct): "
            + ", ".join(f"{t}={n}" for t, n in sorted(self.delivered.items())),
            f"fully delivered events {self.fully_delivered}; DLQ'd events {self.dlq_events} "
            f"({dict(self.dlq_reasons)}), pairs covered by the DLQ {self.dlq_pairs}",
            f"duplicated copies {self.duplicated} "
            + str({t: n for t, n in sorted(self.duplicates.items()) if n}),
            f"lost {len(self.lost)}; misrouted {len(self.misrouted)}; "
            f"left in source {self.source_left}",
        ]
        lines += [f"{k}: {v}" for k, v in self.notes.items()]
        return "\n".join(lines)

    def check(self, *, fifo: Iterable[str] = (FIFO_TARGET,)) -> None:
        print("\n" + self.render())
        assert not self.lost, f"lost {len(self.lost)}: {self.lost[:5]}"
        assert not self.misrouted, f"misrouted {len(self.misrouted)}: {self.misrouted[:5]}"
        assert self.source_left == 0, f"{self.source_left} messages left in the source queue"
        for target in fifo:
            assert self.duplicates[target] == 0, f"duplicates in FIFO target {target}"


def expected_targets(rules: RuleSet, body: str) -> set[str] | None:
    """What the real matcher routes ``body`` to; None if fanout must dead-letter it."""
    try:
        event = parse_event(body)
    except InvalidEvent:
        return None
    return {t.name for t in rules.match(event.data).targets}


async def account(
    scenario: str,
    fleet: Fleet,
    events: list[Published],
    *,
    unreadable: Mapping[str, Counter[str]] | None = None,
) -> Accounting:
    """Read every target and the DLQ (deleting what is read) and account for each event.

    ``unreadable``: targets whose queue is gone, with the ids their sends were accepted for."""
    unreadable = unreadable or {}
    result = Accounting(scenario, len(events))
    visible, hidden = await depth(fleet.sqs, fleet.source)
    result.source_left = visible + hidden
    got: dict[str, Counter[str]] = {}
    for name, url in fleet.targets.items():
        if name in unreadable:
            got[name] = unreadable[name]
            continue
        got[name] = Counter(str(orjson.loads(b)["id"]) for b in await read_all(fleet.sqs, url))
    records = [orjson.loads(b) for b in await read_all(fleet.sqs, fleet.dlq)]
    result.dlq_records = records
    dlq_targets: dict[str, set[str]] = {}
    whole_event: set[str] = set()
    for record in records:
        event_id = str(record.get("event_id") or orjson.loads(record["body"]).get("id"))
        result.dlq_reasons[f"{record['reason']}:{record['error_code']}"] += 1
        if record["failed_targets"]:
            dlq_targets.setdefault(event_id, set()).update(record["failed_targets"])
        else:
            whole_event.add(event_id)
    result.dlq_events = len(set(dlq_targets) | whole_event)

    published = {e.event_id for e in events}
    for event in events:
        expected = expected_targets(fleet.rules, event.body)
        if expected is None:
            expected = set()
            if event.event_id not in whole_event:
                result.lost.append((event.event_id, "DLQ"))
        complete = True
        for target in expected:
            result.expected_pairs += 1
            count = got[target][event.event_id]
            if count:
                result.delivered[target] += 1
                result.duplicates[target] += count - 1
                continue
            complete = False
            covered = event.event_id in whole_event or target in dlq_targets.get(event.event_id, ())
            if covered:
                result.dlq_pairs += 1
            else:
                result.lost.append((event.event_id, target))
        result.fully_delivered += complete
        for target, ids in got.items():
            if ids[event.event_id] and target not in expected:
                result.misrouted.append((event.event_id, target))
    for target, ids in got.items():
        result.misrouted += [(i, target) for i in ids if i not in published]
    return result
