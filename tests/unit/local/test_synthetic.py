"""Tests for the seeded synthetic Genesys/EventBridge event generator."""

from __future__ import annotations

import re
import statistics
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import jmespath
import orjson
import pytest

from fanout.local.synthetic import (
    BASE_TIME,
    DEFAULT_MIX,
    DEMO_MIX,
    DIVISIONS,
    MALFORMED_KINDS,
    QUEUES,
    WRAPUP_CODES,
    GenesysEventGenerator,
    Mix,
    stamp,
    uuid4_from_bits,
)

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
UUID_ANY = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ENVELOPE_KEYS = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}
GENESYS_DETAIL_KEYS = {"topicName", "version", "eventBody", "metadata", "timestamp"}
ISO_S = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
GENESYS_SOURCE = re.compile(rf"aws\.partner/genesys\.com/cloud/({UUID_ANY})/genesys-prod-events")
MEDIA_TYPES = {"VOICE", "CHAT", "EMAIL", "CALLBACK", "MESSAGE"}
CONVERSATION_ONLY = Mix(conversation=1, audit=0, presence=0, simplified=0)
ONLY: dict[str, Mix] = {
    "conversation": CONVERSATION_ONLY,
    "audit": Mix(conversation=0, audit=1, presence=0, simplified=0),
    "presence": Mix(conversation=0, audit=0, presence=1, simplified=0),
    "simplified": Mix(conversation=0, audit=0, presence=0, simplified=1),
}


def family_of(env: dict[str, Any]) -> str:
    if env["source"] == "genesys.cloud":
        return "simplified"
    dt = env["detail-type"]
    if dt.startswith("v2.detail.events.conversation."):
        return "conversation"
    if dt.startswith("v2.audits."):
        return "audit"
    if dt.startswith("v2.users.") and dt.endswith(".presence"):
        return "presence"
    raise AssertionError(f"unknown family for {dt!r}")


def is_malformed(body: str) -> bool:
    """What the consumer's validate stage must reject (mirrors the DLQ cases we generate)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(data, dict) or not isinstance(data.get("detail"), dict):
        return True
    eb = data["detail"].get("eventBody")
    if isinstance(eb, dict) and "interactingDurationMs" in eb:
        return type(eb["interactingDurationMs"]) is not int
    return False


def parsed(gen: GenesysEventGenerator, n: int) -> list[dict[str, Any]]:
    return [orjson.loads(b) for b in gen.bodies(n)]


# ------------------------------------------------------------------------------ ids & pools


def test_uuid4_from_bits_matches_uuid_module() -> None:
    gen = GenesysEventGenerator(seed=9)
    samples = [0, 2**128 - 1, 1 << 76, *(gen._bits(128) for _ in range(500))]
    for bits in samples:
        assert uuid4_from_bits(bits) == str(uuid.UUID(int=bits, version=4))


def test_pools_are_fixed_unique_and_exposed() -> None:
    a, b = GenesysEventGenerator(seed=1), GenesysEventGenerator(seed=2)
    assert len(a.queue_ids) == 20 and len(set(a.queue_ids)) == 20
    assert len(a.wrapup_codes) == 15 and len(set(a.wrapup_codes)) == 15
    assert len(a.division_ids) == 5 and len(set(a.division_ids)) == 5
    # Stable across seeds so rule files can hard-code them.
    assert (a.queue_ids, a.wrapup_codes, a.division_ids) == (
        b.queue_ids,
        b.wrapup_codes,
        b.division_ids,
    )
    assert a.queue_ids == tuple(q for _, q in QUEUES)
    assert a.wrapup_codes == tuple(w for _, w in WRAPUP_CODES)
    assert a.division_ids == tuple(d for _, d in DIVISIONS)
    assert all(re.fullmatch(UUID_ANY, i) for i in a.queue_ids + a.wrapup_codes + a.division_ids)
    assert a.user_ids != b.user_ids  # agents are per-seed


# ------------------------------------------------------------------------------ reproducibility


def test_same_seed_gives_byte_identical_bodies() -> None:
    first = GenesysEventGenerator(seed=42, mix=DEMO_MIX).bodies(3000)
    second = GenesysEventGenerator(seed=42, mix=DEMO_MIX).bodies(3000)
    assert first == second
    e1 = [GenesysEventGenerator(seed=7).event() for _ in range(3)]
    e2 = [GenesysEventGenerator(seed=7).event() for _ in range(3)]
    assert e1 == e2


def test_different_seed_gives_different_bodies() -> None:
    a = GenesysEventGenerator(seed=1).bodies(200)
    b = GenesysEventGenerator(seed=2).bodies(200)
    assert sum(x != y for x, y in zip(a, b, strict=True)) == 200
    assert not set(a) & set(b)


def test_padded_and_malformed_output_is_reproducible_too() -> None:
    mix = Mix(malformed=0.3)
    a = GenesysEventGenerator(seed=3, mix=mix, pad_to=5000).bodies(300)
    b = GenesysEventGenerator(seed=3, mix=mix, pad_to=5000).bodies(300)
    assert a == b


# ------------------------------------------------------------------------------ shapes


def test_valid_bodies_are_json_envelopes() -> None:
    gen = GenesysEventGenerator(seed=11)
    for body in gen.bodies(3000):
        env = orjson.loads(body)
        assert set(env) == ENVELOPE_KEYS
        assert env["version"] == "0"
        assert re.fullmatch(UUID4, env["id"])
        assert re.fullmatch(r"\d{12}", env["account"])
        assert ISO_S.fullmatch(env["time"])
        assert env["region"] == "us-east-1"
        assert env["resources"] == []
        assert isinstance(env["detail"], dict)
        assert not is_malformed(body)


def _genesys_checks(env: dict[str, Any], gen: GenesysEventGenerator) -> dict[str, Any]:
    m = GENESYS_SOURCE.fullmatch(env["source"])
    assert m is not None and m.group(1) == gen.org_id
    detail = env["detail"]
    assert set(detail) == GENESYS_DETAIL_KEYS
    assert detail["version"] == "2"
    assert ISO_MS.fullmatch(detail["timestamp"])
    assert re.fullmatch(UUID4, detail["metadata"]["CorrelationId"])
    assert "{id}" in env["detail-type"]
    assert "{id}" not in detail["topicName"]
    body: dict[str, Any] = detail["eventBody"]
    return body


def test_conversation_event_shapes() -> None:
    gen = GenesysEventGenerator(seed=5, mix=CONVERSATION_ONLY)
    steps: Counter[str] = Counter()
    for env in parsed(gen, 4000):
        eb = _genesys_checks(env, gen)
        dt = env["detail-type"]
        assert dt.startswith("v2.detail.events.conversation.{id}.")
        step = dt.removeprefix("v2.detail.events.conversation.{id}.")
        steps[step] += 1
        assert env["detail"]["topicName"] == dt.replace("{id}", eb["conversationId"])
        assert type(eb["eventTime"]) is int and eb["eventTime"] > 1_700_000_000_000
        ids = ("conversationId", "participantId")
        if step != "attributes":  # the SDK's attributes event has no sessionId
            ids += ("sessionId",)
        for key in ids:
            assert re.fullmatch(UUID4, eb[key])
        if step != "attributes":
            assert eb["mediaType"] in MEDIA_TYPES
            assert eb["direction"] in ("INBOUND", "OUTBOUND")
            assert isinstance(eb["provider"], str)
        if eb.get("mediaType") == "MESSAGE":
            assert eb["messageType"] in {
                "SMS",
                "WEBMESSAGING",
                "WHATSAPP",
                "FACEBOOK",
                "OPEN",
                "INSTAGRAM",
            }
        if "queueId" in eb:
            assert eb["queueId"] in gen.queue_ids
        if "divisionId" in eb:
            assert eb["divisionId"] in gen.division_ids
        if step in ("wrapup", "acw"):
            assert eb["wrapupCode"] in gen.wrapup_codes
            assert type(eb["wrapupDurationMs"]) is int
        if step == "acd.end":
            assert eb["acdOutcome"] in ("ANSWERED", "ABANDON", "FLOW_OUT")
            assert type(eb["connectedDurationMs"]) is int
            assert type(eb["routingPriority"]) is int
        if step == "user.end":
            assert re.fullmatch(UUID4, eb["userId"])
            for key in ("interactingDurationMs", "heldDurationMs", "alertingDurationMs"):
                assert type(eb[key]) is int and eb[key] >= 0
        if step.endswith(".end"):
            assert eb["disconnectType"] in {
                "ENDPOINT",
                "CLIENT",
                "PEER",
                "TRANSFER",
                "SYSTEM",
                "ERROR",
                "TRANSPORT_FAILURE",
            }
        if step in ("acd.start", "acd.end", "acw", "contact"):
            assert all(re.fullmatch(UUID4, x) for x in eb["conversationExternalContactIds"])
    expected = {"customer.start", "customer.end", "user.start", "user.end", "acd.start"}
    expected |= {"acd.end", "acw", "wrapup", "outbound", "contact", "attributes"}
    assert set(steps) == expected
    # Voice-heavy media mix.
    media = Counter(e["detail"]["eventBody"].get("mediaType") for e in parsed(gen, 2000))
    assert media["VOICE"] > 2 * media["MESSAGE"] > 0


def test_conversation_lifecycles_are_coherent() -> None:
    gen = GenesysEventGenerator(seed=8, mix=CONVERSATION_ONLY)
    by_conv: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for env in parsed(gen, 6000):
        step = env["detail-type"].rsplit("{id}.", 1)[1]
        eb = env["detail"]["eventBody"]
        by_conv[eb["conversationId"]].append((step, eb))
    complete = 0
    for events in by_conv.values():
        steps = [s for s, _ in events]
        assert steps[0] in ("customer.start", "outbound")
        assert len(steps) == len(set(steps))  # each lifecycle step happens once
        media = {eb["mediaType"] for _, eb in events if "mediaType" in eb}
        assert len(media) == 1
        queues = {eb["queueId"] for _, eb in events if "queueId" in eb}
        assert len(queues) <= 1
        acd_end = next((eb for s, eb in events if s == "acd.end"), None)
        if acd_end is not None and acd_end["acdOutcome"] == "ABANDON":
            assert "user.start" not in steps
        if acd_end is not None and acd_end["acdOutcome"] == "ANSWERED":
            users = {eb["userId"] for s, eb in events if s in ("user.start", "user.end")}
            assert users <= {acd_end["answeredUserId"]}
        if "customer.end" in steps and steps[0] == "customer.start":
            complete += 1
    assert complete > 200


def test_audit_event_shape() -> None:
    gen = GenesysEventGenerator(seed=6, mix=ONLY["audit"])
    for env in parsed(gen, 500):
        eb = _genesys_checks(env, gen)
        assert env["detail-type"] == "v2.audits.entitytype.{id}.entityid.{id}"
        assert env["detail"]["topicName"] == (
            f"v2.audits.entitytype.{eb['entityType']}.entityid.{eb['entity']['id']}"
        )
        # The SDK's shape (AuditTopicAuditLogMessage), as Genesys' public sample event.
        for key in ("id", "userId", "username", "action", "entity", "entityType", "eventTime"):
            assert key in eb
        for key in ("serviceName", "level", "propertyChanges"):
            assert key in eb
        assert "user" not in eb and "client" not in eb and "status" not in eb
        assert ISO_MS.fullmatch(eb["eventTime"])
        assert re.fullmatch(UUID4, eb["userId"]) and eb["username"] == {"id": eb["userId"]}
        if "clientId" in eb:
            assert set(eb["clientId"]) == {"id"}
        change = eb["propertyChanges"][0]
        assert set(change) == {"property", "oldValues", "newValues"}
        if eb["entityType"] == "Queue":
            assert eb["entity"]["id"] in gen.queue_ids


def test_presence_event_shape() -> None:
    gen = GenesysEventGenerator(seed=6, mix=ONLY["presence"])
    seen: Counter[str] = Counter()
    for env in parsed(gen, 1000):
        eb = _genesys_checks(env, gen)
        assert env["detail-type"] == "v2.users.{id}.presence"
        m = re.fullmatch(rf"v2\.users\.({UUID4})\.presence", env["detail"]["topicName"])
        assert m is not None and m.group(1) in gen.user_ids
        assert eb["source"] == "PURECLOUD" and eb["primary"] is True
        assert ISO_MS.fullmatch(eb["modifiedDate"])
        seen[eb["presenceDefinition"]["systemPresence"]] += 1
    assert set(seen) == {"AVAILABLE", "BUSY", "AWAY", "ON_QUEUE", "BREAK", "MEAL", "OFFLINE"}


def test_simplified_event_shape_and_priority_distribution() -> None:
    gen = GenesysEventGenerator(seed=6, mix=ONLY["simplified"])
    prio: Counter[str] = Counter()
    for env in parsed(gen, 5000):
        assert env["source"] == "genesys.cloud"
        assert env["detail-type"] == "Interaction Completed"
        d = env["detail"]
        assert set(d) == {"id", "channel", "outcome", "duration_ms", "tags"}
        assert d["channel"] in ("voice", "chat", "email")
        assert d["outcome"] in ("completed", "abandoned", "transferred")
        assert type(d["duration_ms"]) is int and d["duration_ms"] > 0
        prio[d["tags"]["priority"]] += 1
    assert 0 < prio["critical"] < 0.05 * 5000
    assert 0.07 * 5000 < prio["high"] < 0.13 * 5000
    assert prio["normal"] > prio["low"] > prio["high"]


def test_family_mix_is_honoured_and_labels_match() -> None:
    gen = GenesysEventGenerator(seed=21)
    n = 10000
    counts: Counter[str] = Counter()
    for _ in range(n):
        fam, body = gen.labelled_body()
        assert family_of(orjson.loads(body)) == fam
        counts[fam] += 1
    total = DEFAULT_MIX.conversation + DEFAULT_MIX.audit
    total += DEFAULT_MIX.presence + DEFAULT_MIX.simplified
    for fam in ("conversation", "audit", "presence", "simplified"):
        expected = getattr(DEFAULT_MIX, fam) / total * n
        assert abs(counts[fam] - expected) < 0.15 * expected + 30, fam
    assert counts["malformed"] == 0


# ------------------------------------------------------------------------------ time


def test_virtual_clock_starts_at_base_and_orders_timestamps() -> None:
    gen = GenesysEventGenerator(seed=4, mix=CONVERSATION_ONLY)
    envs = parsed(gen, 2000)
    times = [datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for e in envs]
    assert times == sorted(times)
    assert BASE_TIME <= times[0] < times[-1]
    for e, t in zip(envs, times, strict=True):
        ts = datetime.strptime(e["detail"]["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        ts_ms = int(ts.replace(tzinfo=UTC).timestamp() * 1000)
        assert e["detail"]["eventBody"]["eventTime"] < ts_ms
        assert ts_ms // 1000 <= int(t.timestamp())


def test_clock_makes_timestamps_current() -> None:
    now = 1_900_000_000.75
    gen = GenesysEventGenerator(seed=4, clock=lambda: now)
    expected = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for env in parsed(gen, 200):
        assert env["time"] == expected
        if family_of(env) == "conversation":
            assert env["detail"]["eventBody"]["eventTime"] < now * 1000


# ------------------------------------------------------------------------------ sizes


def test_conversation_event_sizes_are_realistic() -> None:
    gen = GenesysEventGenerator(seed=13, mix=CONVERSATION_ONLY)
    sizes = [len(b.encode()) for b in gen.bodies(4000)]
    in_band = sum(800 <= s <= 1400 for s in sizes) / len(sizes)
    assert in_band >= 0.9
    assert 900 <= statistics.median(sizes) <= 1300


@pytest.mark.parametrize("target", [4096, 65536, 900_000])
@pytest.mark.parametrize("family", sorted(ONLY))
def test_pad_to_reaches_target_size(family: str, target: int) -> None:
    gen = GenesysEventGenerator(seed=17, mix=ONLY[family], pad_to=target)
    n = 5 if target > 100_000 else 40
    for body in gen.bodies(n):
        size = len(body.encode())
        assert abs(size - target) <= 0.05 * target
        env = orjson.loads(body)
        assert family_of(env) == family
        assert not is_malformed(body)
    env = gen.event()
    assert abs(len(orjson.dumps(env)) - target) <= 0.05 * target


def test_pad_to_uses_realistic_fields() -> None:
    gen = GenesysEventGenerator(seed=2, mix=CONVERSATION_ONLY, pad_to=20_000)
    for env in parsed(gen, 200):
        eb = env["detail"]["eventBody"]
        # wrapup/acw carry real notes; other topics get participant data (attributes).
        text = eb["wrapupNotes"] if "wrapupCode" in eb else eb["attributes"]["crm.caseNotes"]
        assert len(text) > 15_000
        assert re.fullmatch(r"[A-Za-z0-9 .,;:$#\-]+", text)


def test_pad_to_below_natural_size_changes_nothing() -> None:
    assert GenesysEventGenerator(seed=5, pad_to=200).bodies(300) == (
        GenesysEventGenerator(seed=5).bodies(300)
    )


# ------------------------------------------------------------------------------ malformed


def test_default_mix_never_malformed_and_event_never_malformed() -> None:
    assert all(not is_malformed(b) for b in GenesysEventGenerator(seed=1).bodies(3000))
    gen = GenesysEventGenerator(seed=1, mix=Mix(malformed=1.0))
    assert all(is_malformed(b) for b in gen.bodies(200))
    for _ in range(200):
        assert not is_malformed(orjson.dumps(gen.event()).decode())


@pytest.mark.parametrize("ratio", [0.02, 0.1, 0.5])
def test_malformed_ratio_is_roughly_honoured(ratio: float) -> None:
    gen = GenesysEventGenerator(seed=99, mix=Mix(malformed=ratio))
    n = 8000
    flagged = 0
    for _ in range(n):
        fam, body = gen.labelled_body()
        bad = is_malformed(body)
        assert bad == (fam == "malformed")
        flagged += bad
    assert abs(flagged / n - ratio) < max(0.01, 0.15 * ratio)


def test_each_malformed_kind() -> None:
    gen = GenesysEventGenerator(seed=31)
    for kind in MALFORMED_KINDS:
        for _ in range(30):
            body = gen.malformed_body(kind)
            assert is_malformed(body), kind
            if kind in ("not_json", "truncated"):
                with pytest.raises(orjson.JSONDecodeError):
                    orjson.loads(body)
                continue
            data = orjson.loads(body)
            if kind == "array":
                assert isinstance(data, list) and all("detail" in e for e in data)
            elif kind == "missing_detail":
                assert isinstance(data, dict) and "detail" not in data and "source" in data
            elif kind == "detail_string":
                assert isinstance(data["detail"], str)
                assert isinstance(orjson.loads(data["detail"]), dict)
            else:
                eb = data["detail"]["eventBody"]
                assert data["detail-type"].endswith(".user.end")
                assert isinstance(eb["interactingDurationMs"], str)
                assert eb["interactingDurationMs"].isdigit()
    kinds: Counter[str] = Counter()
    for _ in range(600):
        body = gen.malformed_body()
        assert is_malformed(body)
        kinds[body[:1]] += 1
    assert kinds["{"] and kinds["["]  # the seeded pick spreads over kinds


# ------------------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    "expression",
    [
        "detail.tags.priority == 'critical'",
        "detail.duration_ms > `120000`",
        "detail.eventBody.acdOutcome == 'ABANDON'",
        "detail.eventBody.interactingDurationMs > `120000`"
        " && detail.eventBody.mediaType == 'VOICE'",
    ],
)
def test_rule_conditions_match_some_events(expression: str) -> None:
    compiled = jmespath.compile(expression)
    envs = parsed(GenesysEventGenerator(seed=2026), 20000)
    hits = [e for e in envs if compiled.search(e) is True]
    assert 0 < len(hits) < len(envs) // 2
    # The matching events are what the rule writer means, not accidents of another family.
    families = {family_of(e) for e in hits}
    assert len(families) == 1


def test_some_voice_user_end_are_long() -> None:
    gen = GenesysEventGenerator(seed=12, mix=CONVERSATION_ONLY)
    durations = [
        e["detail"]["eventBody"]["interactingDurationMs"]
        for e in parsed(gen, 6000)
        if e["detail-type"].endswith(".user.end")
        and e["detail"]["eventBody"]["mediaType"] == "VOICE"
    ]
    long_share = sum(d > 120_000 for d in durations) / len(durations)
    assert 0.3 < long_share < 0.98  # skewed: many long calls, but not all
    assert max(durations) > 5 * statistics.median(durations)


# ------------------------------------------------------------------------------ misc API


def test_stamp_inserts_top_level_member() -> None:
    gen = GenesysEventGenerator(seed=1)
    body = gen.body()
    stamped = stamp(body, "sent_ns", 123456789)
    data = orjson.loads(stamped)
    assert next(iter(data)) == "sent_ns" and data["sent_ns"] == 123456789
    del data["sent_ns"]
    assert data == orjson.loads(body)
    assert orjson.loads(stamp("{}", "k", [1, "x"])) == {"k": [1, "x"]}
    assert stamp("[1,2]", "k", 1) == "[1,2]"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conversation": -1.0},
        {"malformed": 1.5},
        {"audit": float("nan")},
        {"conversation": 0, "audit": 0, "presence": 0, "simplified": 0},
    ],
)
def test_mix_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Mix"):
        Mix(**kwargs)


def test_generator_argument_validation() -> None:
    with pytest.raises(ValueError, match="pad_to"):
        GenesysEventGenerator(pad_to=0)
    with pytest.raises(ValueError, match="rate"):
        GenesysEventGenerator(rate=0)
    custom = GenesysEventGenerator(
        org_id="00000000-0000-4000-8000-000000000001", mix=CONVERSATION_ONLY
    )
    assert "/cloud/00000000-0000-4000-8000-000000000001/" in orjson.loads(custom.body())["source"]


def test_the_local_runs_events_validate_and_fit_their_catalog_topic() -> None:
    # `fanout run --local` draws from DEMO_MIX: every catalog topic appears, every Genesys
    # event validates and has only the fields, types and enum values of its topic.
    from fanout.events import parse_event
    from fanout.genesys.catalog import Catalog
    from fanout.genesys.sample import shape_problems

    catalog = Catalog.packaged()
    gen = GenesysEventGenerator(seed=7, mix=DEMO_MIX)
    seen: set[str] = set()
    problems: list[str] = []
    for _ in range(6000):
        env = gen.event()
        parse_event(orjson.dumps(env).decode())
        if env["source"] == "genesys.cloud":
            continue
        topic = catalog.topic(env["detail-type"])
        assert topic is not None, env["detail-type"]
        assert env["detail-type"] == topic.pattern and isinstance(env["detail"]["version"], str)
        seen.add(topic.pattern)
        problems += shape_problems(topic, env["detail"]["eventBody"])
    assert problems == []
    assert seen == {t.pattern for t in catalog.topics}
