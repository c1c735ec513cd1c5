"""The Genesys topic catalog: generated from the SDK, shipped as data, driving validation."""

from __future__ import annotations

import copy
import importlib.util
import random
from typing import Any

import orjson
import pytest

from fanout.events import InvalidEvent, parse_event
from fanout.genesys import generate
from fanout.genesys.catalog import Catalog, Topic
from fanout.genesys.sample import sample_body, shape_problems
from fanout.outcomes import DlqReason

CATALOG = Catalog.packaged()
TOPICS = {t.pattern: t for t in CATALOG.topics}
SDK = importlib.util.find_spec(generate.SDK_PACKAGE) is not None
needs_sdk = pytest.mark.skipif(
    not SDK, reason="purecloudplatformclientv2 (dev extra) not installed: pip install -e '.[dev]'"
)
SOURCE = "aws.partner/genesys.com/cloud/3d1b7a52-6e1f-4b8e-9a3c-0c2d4e6f8a10/fanout-events"


def envelope(topic: Topic, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "c0ffee00-0000-4000-8000-000000000001",
        "detail-type": topic.pattern,
        "source": SOURCE,
        "account": "123456789012",
        "time": "2026-11-28T03:00:01Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "topicName": topic.pattern.replace("{id}", "1fb4748c-d7b4-5621-853a-709f1cc44011"),
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": "d00dfeed-1234-4abc-8def-0123456789ab"},
            "timestamp": "2026-11-28T03:00:00.300Z",
        },
    }


# --- the catalog and its generator ----------------------------------------------------------


@needs_sdk
def test_committed_catalog_has_the_generators_topics() -> None:
    fresh = generate.build_catalog()
    committed = orjson.loads(generate.CATALOG_PATH.read_bytes())

    def listing(doc: dict[str, Any]) -> list[tuple[str, str]]:
        return [(t["pattern"], t["model"]) for t in doc["topics"]]

    assert listing(committed) == listing(fresh), "run: python -m fanout.genesys.generate"
    # And the fields: the file is exactly what the generator writes.
    assert generate.render(fresh) == generate.CATALOG_PATH.read_bytes()


def test_generator_check_without_the_sdk_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(generate.importlib.util, "find_spec", lambda name: None)
    assert generate.main(["--check"]) == 2
    assert "pip install -e '.[dev]'" in capsys.readouterr().err


def test_provenance_and_coverage() -> None:
    prov = CATALOG.provenance
    assert prov["sdk"] == "purecloudplatformclientv2" and prov["sdk_version"] == "269.0.0"
    assert prov["license"].startswith("MIT")
    assert prov["generated_by"] == "python -m fanout.genesys.generate"
    families = {t.family for t in CATALOG.topics}
    assert families == {
        "conversation detail events",
        "audits",
        "users",
        "user conversations",
        "queue conversations",
        "analytics",
    }
    detail = [p for p in TOPICS if p.startswith("v2.detail.events.conversation.{id}.")]
    assert len(detail) == 16
    for needed in (
        "v2.audits.entitytype.{id}.entityid.{id}",
        "v2.users.{id}.presence",
        "v2.users.{id}.routingStatus",
        "v2.routing.queues.{id}.conversations",
        "v2.users.{id}.conversations",
        "v2.analytics.conversation.{id}.metrics",
    ):
        assert needed in TOPICS
    for topic in CATALOG.topics:
        assert topic.fields and topic.confidence in ("high", "medium", "low")
        assert topic.confidence == "high" or topic.note  # inferred mappings say how


def test_fields_types_and_enums_from_the_sdk() -> None:
    acd_end = TOPICS["v2.detail.events.conversation.{id}.acd.end"]
    assert acd_end.fields["acdOutcome"].enum == ("UNKNOWN", "ABANDON", "ANSWERED", "FLOW_OUT")
    assert {"STANDARD", "BULLSEYE"} <= set(acd_end.fields["usedRouting"].enum)
    assert acd_end.fields["connectedDurationMs"].type == "integer"
    # The fields the issue found unchecked are integers in the SDK.
    user_end = TOPICS["v2.detail.events.conversation.{id}.user.end"]
    for name in ("contactingDurationMs", "dialingDurationMs", "interactingDurationMs"):
        assert user_end.fields[name].type == "integer"
    assert (
        TOPICS["v2.detail.events.conversation.{id}.flow.outcome"]
        .fields["flowOutcomeStartTime"]
        .numeric
    )
    # Fields differ by topic.
    assert "divisionId" not in TOPICS["v2.detail.events.conversation.{id}.acw"].fields
    assert "queueId" not in TOPICS["v2.detail.events.conversation.{id}.customer.end"].fields
    audit = TOPICS["v2.audits.entitytype.{id}.entityid.{id}"]
    assert {"userId", "username.id", "clientId.id", "propertyChanges[].property"} <= set(
        audit.fields
    )
    assert "status" not in audit.fields
    assert audit.fields["eventTime"].format == "date-time"


def test_topic_lookup_by_pattern_and_concrete_name() -> None:
    presence = TOPICS["v2.users.{id}.presence"]
    assert CATALOG.topic("v2.users.{id}.presence") is presence
    assert CATALOG.topic("v2.users.0f5b1a4e-3c55-4d3c-9a55-1f3e5e2c1b11.presence") is presence
    assert CATALOG.topic("v2.users.{id}.presence.extra") is None
    assert CATALOG.topic("Interaction Completed") is None
    found = CATALOG.search("routingStatus")
    assert found and found[0].pattern == "v2.users.{id}.routingStatus"


# --- validation driven by the catalog --------------------------------------------------------


def _numeric_paths(obj: Any, topic: Topic, prefix: str = "") -> list[tuple[list[Any], str]]:
    """(JSON pointer as keys, catalog path) of every numeric value in a sample body."""
    out: list[tuple[list[Any], str]] = []
    for key, value in obj.items():
        path = prefix + key
        info = topic.fields.get(path)
        if info is None:
            continue
        if info.numeric:
            out.append(([key], path))
        elif isinstance(value, dict):
            out += [([key, *k], p) for k, p in _numeric_paths(value, topic, path + ".")]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            sub = _numeric_paths(value[0], topic, path + "[].")
            out += [([key, 0, *k], p) for k, p in sub]
    return out


@pytest.mark.parametrize("pattern", sorted(TOPICS))
def test_every_topic_validates_and_its_numbers_are_strict(pattern: str) -> None:
    topic = TOPICS[pattern]
    body = sample_body(topic, random.Random(pattern))
    assert shape_problems(topic, body) == []
    event = envelope(topic, body)
    assert parse_event(orjson.dumps(event).decode()).data == event  # no false dead-letter
    numeric = _numeric_paths(body, topic)
    if not numeric:  # presence, activity, audits: then the catalog has none either
        assert not any(f.numeric for f in topic.fields.values())
    for keys, _path in numeric:
        bad = copy.deepcopy(event)
        slot = bad["detail"]["eventBody"]
        for k in keys[:-1]:
            slot = slot[k]
        slot[keys[-1]] = str(slot[keys[-1]])
        with pytest.raises(InvalidEvent) as caught:
            parse_event(orjson.dumps(bad).decode())
        shown = "detail.eventBody." + ".".join(str(k) for k in keys)
        assert caught.value.reason == DlqReason.INVALID_DETAIL
        assert caught.value.detail.startswith(f"{shown}: Input should be a valid ")
        assert caught.value.event_id == event["id"]


def test_unknown_fields_and_topics_are_accepted() -> None:
    topic = TOPICS["v2.detail.events.conversation.{id}.user.end"]
    body = sample_body(topic, random.Random(1))
    body["aFieldGenesysAddsNextYear"] = "x"
    body["anotherNumberMaybe"] = "12"
    parse_event(orjson.dumps(envelope(topic, body)).decode())
    event = envelope(topic, {"durationMs": "12"})
    event["detail-type"] = "v2.some.future.topic.{id}"
    parse_event(orjson.dumps(event).decode())


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("contactingDurationMs", "3000", "integer"),
        ("dialingDurationMs", True, "integer"),
        ("interactingDurationMs", {"ms": 1}, "integer"),
    ],
)
def test_the_fields_the_issue_found_unchecked_are_strict(field: str, value: Any, kind: str) -> None:
    topic = TOPICS["v2.detail.events.conversation.{id}.user.end"]
    with pytest.raises(
        InvalidEvent, match=f"detail.eventBody.{field}: Input should be a valid {kind}"
    ):
        parse_event(orjson.dumps(envelope(topic, {field: value})).decode())
