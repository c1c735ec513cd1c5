"""End to end on LocalStack: Genesys events -> EventBridge PutEvents -> rule -> SQS -> fanout.

fanout runs as an operator runs it (``python -m fanout run`` with the shipped rules.yaml and its
``${VAR}`` queue URLs from the environment) until the source queue is drained. A second target
of the EventBridge rule, a "tap" queue, keeps a copy of every envelope exactly as EventBridge
delivered it: the expected routing of each event is computed from those envelopes with the real
rule set, and a few events carry hand-written expectations as well.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import yaml

from fanout.local.synthetic import GenesysEventGenerator, MalformedKind, Mix
from fanout.rules import load_rules, load_rules_unresolved
from tests.e2e.conftest import MakeQueue, RouteToQueues
from tests.support.harness import Harness, bodies_of, conversation, simplified

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules.yaml"

BILLING_QUEUE = "1fb4748c-d7b4-5621-853a-709f1cc44011"
ESCALATED_TO_TIER_2 = "ced2d6d0-9708-5e47-8c8d-8f1432f2ca6e"
GENERATED = 400


def target_env_vars() -> dict[str, str]:
    """{target name: the environment variable its queue_url names} from the shipped rules.yaml."""
    targets = yaml.safe_load(RULES.read_text())["targets"]
    return {
        name: spec["queue_url"].removeprefix("${").removesuffix("}")
        for name, spec in targets.items()
    }


def correlation_id(envelope: dict[str, Any]) -> str:
    return str(envelope["detail"]["metadata"]["CorrelationId"])


async def put_events(events_client: Any, bus: str, envelopes: list[dict[str, Any]]) -> None:
    """PutEvents as the Genesys partner source does: source, detail-type and detail only
    (EventBridge assigns id, time, account and region)."""
    for start in range(0, len(envelopes), 10):
        response = await events_client.put_events(
            Entries=[
                {
                    "EventBusName": bus,
                    "Source": env["source"],
                    "DetailType": env["detail-type"],
                    "Detail": orjson.dumps(env["detail"]).decode(),
                }
                for env in envelopes[start : start + 10]
            ]
        )
        assert response["FailedEntryCount"] == 0, response["Entries"]


async def wait_for_depth(harness: Harness, url: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (visible := (await harness.depth(url))[0]) < count:
        assert time.monotonic() < deadline, f"only {visible} of {count} events arrived in {url}"
        await asyncio.sleep(0.2)


async def run_fanout(
    endpoint: str, source: str, dlq: str, env: dict[str, str], tmp_path: Path
) -> dict[str, Any]:
    """``python -m fanout run`` until the source queue stayed empty 2 s; returns its summary."""
    summary = tmp_path / "summary.json"
    command = [
        sys.executable, "-m", "fanout", "run",
        "--rules", str(RULES),
        "--source-queue-url", source,
        "--dlq-url", dlq,
        "--endpoint-url", endpoint,
        "--region", "us-east-1",
        "--wait-time-seconds", "1",
        "--exit-when-idle", "2",
        "--log-level", "WARNING",
        "--summary-json", str(summary),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    result: dict[str, Any] = orjson.loads(summary.read_bytes())
    return result


def ids_per_target(messages: dict[str, list[dict[str, Any]]]) -> dict[str, Counter[str]]:
    return {name: Counter(str(b["id"]) for b in bodies_of(msgs)) for name, msgs in messages.items()}


async def test_genesys_events_are_routed_through_eventbridge_to_their_targets(
    localstack_endpoint: str,
    ls_events: Any,
    ls_harness: Harness,
    make_queue: MakeQueue,
    route_genesys_events: RouteToQueues,
    tmp_path: Path,
) -> None:
    h = ls_harness
    unresolved = load_rules_unresolved(RULES)
    source, dlq, tap = await make_queue("source"), await make_queue("dlq"), await make_queue("tap")
    urls = {
        name: await make_queue(name, fifo=target.fifo is not None)
        for name, target in unresolved.targets.items()
    }
    assert any(t.fifo for t in unresolved.targets.values()), "rules.yaml has a FIFO target"
    env = {var: urls[name] for name, var in target_env_vars().items()}
    rules = load_rules(RULES, env=env)
    bus = await route_genesys_events([source, tap])

    generator = GenesysEventGenerator(
        seed=2026, mix=Mix(conversation=0.8, audit=0.08, presence=0.12, simplified=0)
    )
    generated = [generator.event() for _ in range(GENERATED)]
    # Hand-written expectations: (event, targets by the rules' text, not by RuleSet.match).
    by_hand = [
        (
            conversation("acd.end", mediaType="VOICE", acdOutcome="ABANDON", queueId=BILLING_QUEUE),
            {"supervisors", "team-billing"},
        ),
        (
            conversation(
                "acd.end", mediaType="VOICE", acdOutcome="ANSWERED", queueId=BILLING_QUEUE
            ),
            {"team-billing"},
        ),
        (
            conversation("user.end", mediaType="VOICE", interactingDurationMs=600_001),
            {"supervisors", "quality"},
        ),
        (conversation("user.end", mediaType="VOICE", interactingDurationMs=600_000), set()),
        (
            conversation("acw", mediaType="VOICE", wrapupCode=ESCALATED_TO_TIER_2),
            {"quality", "wrapup-ledger"},
        ),
        (
            conversation("wrapup", mediaType="CHAT", wrapupCode=ESCALATED_TO_TIER_2),
            {"wrapup-ledger"},
        ),
    ]
    # A compared field of the wrong type: EventBridge accepts it, fanout dead-letters it.
    wrong_type = conversation("user.end", mediaType="VOICE", interactingDurationMs="700000")
    # Not from the Genesys partner source: the EventBridge rule must not deliver these.
    foreign = [simplified("critical"), simplified("high")]
    genesys = [*generated, *(event for event, _ in by_hand), wrong_type]
    await put_events(ls_events, bus, [*genesys, *foreign])
    await wait_for_depth(h, tap, len(genesys))
    await wait_for_depth(h, source, len(genesys))

    summary = await run_fanout(localstack_endpoint, source, dlq, env, tmp_path)

    assert await h.depth(source) == (0, 0), "fanout left messages in the source queue"
    delivered = bodies_of(await h.drain(tap))
    copies = {name: await h.drain(url) for name, url in urls.items()}
    records = bodies_of(await h.drain(dlq))
    per_target = ids_per_target(copies)

    # EventBridge delivered every Genesys event once and filtered the foreign ones out.
    by_correlation = {correlation_id(env): env for env in delivered if "metadata" in env["detail"]}
    assert len(delivered) == len(genesys) == len(by_correlation)
    assert set(by_correlation) == {correlation_id(e) for e in genesys}
    assert all(env["source"].startswith("aws.partner/genesys.com") for env in delivered)

    # Invalid: the wrong-typed event is in the DLQ, with a reason naming the field.
    bad_id = by_correlation[correlation_id(wrong_type)]["id"]
    assert [orjson.loads(r["body"])["id"] for r in records] == [bad_id]
    assert records[0]["reason"] == "invalid_detail"
    assert "interactingDurationMs" in records[0]["error_message"]
    assert all(bad_id not in ids for ids in per_target.values())

    # Every valid event is in exactly the targets the real rule set gives for its envelope.
    expected = {
        env["id"]: {t.name for t in rules.match(env).targets}
        for env in delivered
        if env["id"] != bad_id
    }
    for event_id, targets in expected.items():
        got = {name for name, ids in per_target.items() if event_id in ids}
        assert got == targets, f"event {event_id}: expected {sorted(targets)}, got {sorted(got)}"
    for event, targets in by_hand:
        event_id = by_correlation[correlation_id(event)]["id"]
        assert expected[event_id] == targets
    assert sum(1 for t in expected.values() if not t) == summary["unmatched"]
    assert sum(1 for t in expected.values() if t) >= 30, "the workload routes enough events"
    assert set().union(*per_target.values()) <= set(expected), "copies of unknown events"
    # The original design's targets only take "genesys.cloud" events, which this rule drops.
    assert not per_target["critical"] and not per_target["high"] and not per_target["standard"]

    # Nothing lost, duplicates only where a source message was received again (at-least-once);
    # the FIFO target deduplicates even then.
    redelivered = summary["received"] - len(genesys)
    assert summary["deleted"] == len(genesys) and summary["dlq_total"] == 1
    assert summary["per_target"] == {n: c.total() for n, c in per_target.items() if c}
    for name, ids in per_target.items():
        extra = ids.total() - len(ids)
        limit = 0 if unresolved.targets[name].fifo else redelivered
        assert extra <= limit, f"{name}: {extra} duplicate copies, {redelivered} redeliveries"

    # FIFO copies are grouped per conversation and carry a deduplication id.
    ledger = copies["wrapup-ledger"]
    assert ledger
    for message in ledger:
        body = orjson.loads(message["Body"])
        group = message["Attributes"]["MessageGroupId"]
        assert group == body["detail"]["eventBody"]["conversationId"]
        assert message["Attributes"]["MessageDeduplicationId"]


async def test_bodies_that_are_not_valid_events_end_in_the_dlq_with_a_reason(
    localstack_endpoint: str,
    ls_harness: Harness,
    make_queue: MakeQueue,
    tmp_path: Path,
) -> None:
    """Bodies EventBridge itself would refuse, sent straight to the source queue."""
    h = ls_harness
    unresolved = load_rules_unresolved(RULES)
    source, dlq = await make_queue("source"), await make_queue("dlq")
    urls = {
        name: await make_queue(name, fifo=target.fifo is not None)
        for name, target in unresolved.targets.items()
    }
    env = {var: urls[name] for name, var in target_env_vars().items()}
    generator = GenesysEventGenerator(seed=5)
    reasons: dict[MalformedKind, str] = {
        "not_json": "invalid_json",
        "truncated": "invalid_json",
        "array": "invalid_envelope",
        "missing_detail": "invalid_envelope",
        "detail_string": "invalid_envelope",
        "bad_duration": "invalid_detail",
    }
    bodies = {generator.malformed_body(kind): reason for kind, reason in reasons.items()}
    assert len(bodies) == len(reasons)
    await h.send(source, list(bodies))

    summary = await run_fanout(localstack_endpoint, source, dlq, env, tmp_path)

    assert await h.depth(source) == (0, 0)
    records = bodies_of(await h.drain(dlq))
    assert sorted(r["body"] for r in records) == sorted(bodies)
    for record in records:
        assert record["reason"] == bodies[record["body"]], record
        assert record["error_message"]
    assert summary["dlq"] == dict(Counter(bodies.values()))
    for name, url in urls.items():
        assert await h.drain(url) == [], f"target {name} got a copy of an invalid body"
