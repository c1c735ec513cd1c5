"""Bad input: a corpus of broken bodies, each ending in the DLQ with a specific reason while the
service keeps routing good events (moto on 127.0.0.1), plus the same corpus on the pure path.

What each body produces, and why (docs/operations/index.md, "What happens to a failed event"):

- not JSON of any kind (empty, invalid UTF-8 or lone surrogates, a BOM, raw NUL or other
  control characters in a string, 1e400 which is no IEEE double, NaN, nesting deeper than
  ~1000 levels, trailing garbage) -> ``invalid_json``;
- a key twice in one object -> ``invalid_json`` too: orjson would keep the last value, other
  parsers the first, so the forwarded copy could be read differently from what was matched
  (I-JSON, RFC 7493, forbids it; EventBridge never sends one);
- JSON that is not an envelope (scalar, array, no ``detail``, ``detail`` not an object, no
  ``id``) -> ``invalid_envelope``;
- a modelled field of the wrong type (``duration_ms: "120001"``) -> ``invalid_detail``;
- an unmodelled field a rule compares with the wrong type (``"high" > 5``) -> ``rule_error``
  naming the rule, and no event value in the message (values can be phone numbers);
- escaped NUL (``\\u0000``) in a value, a 10,000-element array in a list field, a 500 KB string
  -> valid events, routed byte for byte.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from fanout.aws.retry import Backoff
from fanout.events import Event, InvalidEvent, parse_event
from fanout.observability.stats import Stats
from fanout.observability.telemetry import Telemetry
from fanout.pipeline.acker import Acker
from fanout.pipeline.dlq import DeadLetters
from fanout.pipeline.inflight import InFlight, Received
from fanout.pipeline.routing import Routing
from fanout.pipeline.settle import Settler
from fanout.pipeline.worker import Worker
from fanout.rules import RuleError, RuleSet, load_rules
from tests.support.harness import Harness, conversation, dumps, ids_of, simplified

RULES = """
targets:
  critical: {{queue_url: "{critical}"}}
  scored: {{queue_url: "{scored}"}}
  listed: {{queue_url: "{listed}"}}
rules:
  - id: critical
    condition: detail.tags.priority == 'critical'
    targets: [critical]
  - id: scored
    condition: source == 'custom.app' && detail.score > `5`
    targets: [scored]
  - id: caller
    condition: source == 'custom.app' && starts_with(detail.caller, '+1')
    targets: [scored]
  - id: listed
    condition: length(detail.eventBody.conversationExternalContactIds || `[]`) > `0`
    targets: [listed]
"""

PHONE = "+15550100999"  # a distinctive marker: must never show up in a reason


def envelope(detail: str, *, source: str = "genesys.cloud", event_id: str | None = None) -> str:
    """An envelope around a raw JSON ``detail`` text (to build what orjson would refuse)."""
    head = {"id": event_id or str(uuid.uuid4()), "detail-type": "Interaction Completed"}
    return dumps(head)[:-1] + f', "source": "{source}", "detail": {detail}}}'


def custom(**detail: Any) -> str:
    return dumps(
        {"id": str(uuid.uuid4()), "detail-type": "t", "source": "custom.app", "detail": detail}
    )


def nested(depth: int) -> str:
    return '{"x": ' * depth + "1" + "}" * depth


@dataclass(frozen=True)
class Bad:
    id: str
    body: str
    reason: str
    mentions: str  # in the DLQ record's error_message
    sqs: bool = True  # False: SQS cannot carry this body (the pure path still sees it)


CORPUS = [
    Bad("empty", "", "invalid_json", "empty"),
    Bad("whitespace", "  \n ", "invalid_json", "body is not JSON"),
    Bad(
        "not-utf8",
        b'{"id": "\xff\xfe"}'.decode("utf-8", "surrogateescape"),
        "invalid_json",
        "not valid UTF-8",
        sqs=False,  # SQS bodies are Unicode text: such a body cannot be sent at all
    ),
    Bad("lone-surrogate-escape", envelope('{"a": "\\udc80"}'), "invalid_json", "surrogate"),
    Bad("byte-order-mark", "\ufeff" + dumps(simplified("critical")), "invalid_json", "BOM"),
    Bad("not-json", "{not json", "invalid_json", "body is not JSON"),
    Bad("trailing-garbage", envelope("{}") + " x", "invalid_json", "after document"),
    Bad("scalar-number", "42", "invalid_envelope", "JSON number"),
    Bad("scalar-string", '"event"', "invalid_envelope", "JSON string"),
    Bad("scalar-null", "null", "invalid_envelope", "JSON null"),
    Bad("array", '[{"id": "e"}]', "invalid_envelope", "JSON array"),
    Bad("array-10000", "[" + ",".join(["1"] * 10_000) + "]", "invalid_envelope", "JSON array"),
    Bad(
        "no-detail",
        '{"id": "e", "source": "genesys.cloud", "detail-type": "t"}',
        "invalid_envelope",
        "detail: field required",
    ),
    Bad("detail-string", envelope('"{}"'), "invalid_envelope", "detail: must be a JSON object"),
    Bad("detail-array", envelope("[]"), "invalid_envelope", "not array"),
    Bad(
        "duration-as-string",
        dumps(simplified("high", duration_ms="120001")),
        "invalid_detail",
        "detail.duration_ms: Input should be a valid number",
    ),
    Bad(
        "priority-as-number",
        envelope('{"tags": {"priority": 1}}'),
        "invalid_detail",
        "detail.tags.priority",
    ),
    Bad(
        "genesys-duration-as-string",
        dumps(conversation("user.end", interactingDurationMs="long")),
        "invalid_detail",
        "detail.eventBody.interactingDurationMs",
    ),
    Bad(
        "unmodelled-compare-string-with-number",
        custom(score="high"),
        "rule_error",
        "rule 'scored': values of the wrong type",
    ),
    Bad(
        "function-gets-number-not-string",
        custom(caller=int(PHONE[1:])),
        "rule_error",
        "rule 'caller': starts_with() expects string, got number",
    ),
    Bad(
        "list-of-10000-numbers-for-strings",
        dumps(conversation("user.end", conversationExternalContactIds=list(range(10_000)))),
        "invalid_detail",
        "detail.eventBody.conversationExternalContactIds.0",
    ),
    Bad("nested-100000", "[" * 100_000 + "]" * 100_000, "invalid_json", "depth limit exceeded"),
    Bad("detail-nested-100000", envelope(nested(100_000)), "invalid_json", "depth limit"),
    Bad("number-1e400", envelope('{"duration_ms": 1e400}'), "invalid_json", "infinity"),
    Bad("number-nan", envelope('{"duration_ms": NaN}'), "invalid_json", "body is not JSON"),
    Bad(
        "duplicate-key",
        envelope('{"tags": {"priority": "low", "priority": "critical"}}'),
        "invalid_json",
        "duplicate key 'priority'",
    ),
    Bad(
        "duplicate-top-level-key",
        envelope("{}").replace('"id"', '"detail": {}, "id"', 1),
        "invalid_json",
        "duplicate key 'detail'",
    ),
    Bad("raw-nul", envelope('{"channel": "a\x00b"}'), "invalid_json", "control character"),
    Bad("raw-control-char", envelope('{"channel": "a\x07b"}'), "invalid_json", "control"),
]


# Valid, if odd: routed like any other event.
ODD_BUT_VALID = {
    "escaped-nul": dumps(simplified("critical")).replace('"voice"', '"vo\\u0000ice"'),
    "big-list-of-strings": dumps(
        conversation("user.end", conversationExternalContactIds=[f"c{i}" for i in range(10_000)])
    ),
    "huge-string": envelope(dumps({"tags": {"priority": "critical"}, "notes": "n" * 500_000})),
    "nested-500": envelope(
        dumps({"tags": {"priority": "critical"}})[:-1] + ', "n": ' + nested(500) + "}"
    ),
    "big-integer": envelope(
        '{"tags": {"priority": "critical"}, "n": 123456789012345678901234567890}'
    ),
}


def rules_for(tmp_path: Path, urls: dict[str, str] | None = None) -> RuleSet:
    urls = urls or {n: f"http://127.0.0.1:9/{n}" for n in ("critical", "scored", "listed")}
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(**urls))
    return load_rules(path, env={})


def route(rules: RuleSet, body: str) -> tuple[str, str]:
    """The worker's pure path: (reason, message) of what would go to the DLQ, or ("", "")."""
    try:
        event = parse_event(body)
        rules.match(event.data)
    except InvalidEvent as exc:
        return exc.reason, exc.detail
    except RuleError as exc:
        return "rule_error", str(exc)
    return "", ""


@pytest.mark.parametrize("bad", CORPUS, ids=[b.id for b in CORPUS])
def test_pure_path_names_the_reason(tmp_path: Path, bad: Bad) -> None:
    reason, message = route(rules_for(tmp_path), bad.body)
    assert reason == bad.reason
    assert bad.mentions in message
    assert PHONE[1:] not in message


@pytest.mark.parametrize("name", ODD_BUT_VALID)
def test_odd_but_valid_bodies_are_events(tmp_path: Path, name: str) -> None:
    body = ODD_BUT_VALID[name]
    event = parse_event(body)
    assert isinstance(event, Event) and event.body is body
    assert route(rules_for(tmp_path), body) == ("", "")


# --- through the service, against moto ----------------------------------------------------


@pytest.mark.integration
async def test_corpus_ends_in_dlq_with_reasons_and_good_events_flow(harness: Harness) -> None:
    h = harness
    urls = {n: await h.queue(n) for n in ("source", "dlq", "critical", "scored", "listed")}
    settings = h.settings(urls["source"], urls["dlq"], h.rules(RULES.format(**urls)))
    corpus = [b for b in CORPUS if b.sqs]
    before, after = simplified("critical"), simplified("critical")
    odd = list(ODD_BUT_VALID.values())
    await h.send(urls["source"], [dumps(before)])
    for bad in corpus:  # one by one: some bodies are large
        await h.send(urls["source"], [bad.body])
    await h.send(urls["source"], odd)
    await h.send(urls["source"], [dumps(after)])

    stats = await h.run_until_idle(settings, timeout=120)

    records = {}
    for message in await h.drain(urls["dlq"]):
        record = orjson.loads(message["Body"])
        assert record["body"] not in records, "one DLQ record per bad body"
        records[record["body"]] = (record, message["MessageAttributes"])
    assert len(records) == len(corpus)
    for bad in corpus:
        record, attributes = records[bad.body]  # the original body, for redrive
        assert (record["reason"], bad.id) == (bad.reason, bad.id)
        assert bad.mentions in record["error_message"], (bad.id, record["error_message"])
        assert attributes["fanout.reason"]["StringValue"] == bad.reason
    # The service kept going: the good event sent after the whole corpus was routed, and so
    # were the odd-but-valid ones, byte for byte.
    critical = await h.drain(urls["critical"])
    assert {before["id"], after["id"]} <= set(ids_of(critical))
    delivered = {m["Body"] for m in critical} | {m["Body"] for m in await h.drain(urls["listed"])}
    assert set(odd) <= delivered
    assert await h.depth(urls["source"]) == (0, 0)
    assert stats.deleted == len(corpus) + len(odd) + 2
    assert sum(stats.dlq.values()) == len(corpus)
    assert stats.errors == {}


@pytest.mark.integration
async def test_one_mebibyte_bodies(harness: Harness) -> None:
    """SQS (and moto) accept bodies up to 1 MiB (1,048,576 bytes) since 2025. A valid 1 MiB
    event is routed intact. An invalid one cannot be dead-lettered: its record (body plus
    reason) is larger than the DLQ accepts, so it stays in the source queue and comes back,
    for the source queue's redrive policy (docs/operations/index.md); it is never truncated or
    deleted."""
    h = harness
    urls = {n: await h.queue(n) for n in ("source", "dlq", "critical", "scored", "listed")}
    settings = h.settings(urls["source"], urls["dlq"], h.rules(RULES.format(**urls)))
    limit = 1_048_576
    valid = envelope(dumps({"tags": {"priority": "critical"}, "notes": ""}))
    valid = valid.replace('"notes":""', '"notes":"' + "n" * (limit - len(valid)) + '"')
    invalid = "{" + "x" * (limit - 1)
    # The largest bad body whose DLQ record still fits, with room for the record's fields.
    largest_bad = "{" + "y" * (limit - 2048)
    assert len(valid.encode()) == len(invalid.encode()) == limit
    for body in (valid, invalid, largest_bad):
        await h.send(urls["source"], [body])
    stats = await h.run_until_idle(settings, timeout=120)
    [copy] = await h.drain(urls["critical"])
    assert copy["Body"] == valid
    [dead] = await h.drain(urls["dlq"])
    assert orjson.loads(dead["Body"])["body"] == largest_bad
    assert stats.dlq == {"invalid_json": 1}
    assert stats.errors == {"dlq_write:MessageTooLarge": 1}  # checked before sending
    assert stats.deleted == 2 and stats.abandoned == 1
    assert await h.depth(urls["source"]) == (0, 1)  # the 1 MiB bad body: kept, comes back


async def test_a_worker_survives_a_message_it_cannot_even_dead_letter(tmp_path: Path) -> None:
    """A body with lone surrogates (SQS cannot carry one, but a bug or a proxy could hand one
    over) cannot be serialised into a DLQ record: the message is left for redelivery and the
    worker goes on to the next one instead of dying with the exception."""
    stats = Stats()
    inflight = InFlight(10)
    # No SQS call happens here: the one message that settles is abandoned (no call).
    acker = Acker(
        None,  # type: ignore[arg-type]
        "http://127.0.0.1:9/source",
        inflight=inflight,
        stats=stats,
        backoff=Backoff(),
        rng=random.Random(1),
        linger=0.0,
        visibility_timeout=30,
    )
    submitted: list[Any] = []

    class Sender:
        def __init__(self, target: Any, on_settled: Any, *, dlq: bool = False) -> None:
            self.submit = submitted.append

    dead_letters = DeadLetters("http://127.0.0.1:9/dlq", Sender, acker, stats)  # type: ignore[arg-type]
    settler = Settler(acker, dead_letters, stats)
    rules = rules_for(tmp_path)
    routing = Routing(rules, {t: Sender(t, None) for t in rules.targets.values()})  # type: ignore[misc]
    worker = Worker(routing, settler, stats, Telemetry.off(), "source")
    work: asyncio.Queue[Received] = asyncio.Queue()
    poison = Received("m-1", "rh-1", '{"a": "\udc80"}')
    after = Received("m-2", "rh-2", "not json")
    for message in (poison, after):
        inflight._reserved += 1
        inflight.admit(message)
        work.put_nowait(message)
    task = asyncio.create_task(worker.run(work))
    try:
        await asyncio.wait_for(work.join(), 5)
        assert not task.done()  # still serving
    finally:
        task.cancel()
    assert stats.abandoned == 1 and len(inflight) == 1  # the poison one: left to come back
    [record_copy] = submitted  # the next message still got its DLQ record
    assert orjson.loads(record_copy.entry["MessageBody"])["body"] == "not json"


def test_rule_error_messages_carry_no_event_values(tmp_path: Path) -> None:
    rules = rules_for(tmp_path)
    for detail in ({"caller": int(PHONE[1:])}, {"caller": [PHONE]}, {"score": PHONE}):
        with pytest.raises(RuleError) as info:
            rules.match(orjson.loads(custom(**detail)))
        assert info.value.rule_id in ("caller", "scored")
        assert PHONE[1:] not in str(info.value)
