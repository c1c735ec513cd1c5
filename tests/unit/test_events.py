"""events.py: parse_event accepts the event shapes fanout routes and names what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from fanout.events import InvalidEvent, parse_event
from tests.support.samples import GENESYS_SAMPLES, dumps, sample, simplified


def body_of(name: str) -> dict[str, Any]:
    return simplified("high") if name == "simplified" else sample(name)


@pytest.mark.parametrize("name", ["simplified", *GENESYS_SAMPLES])
def test_valid_event(name: str) -> None:
    data = body_of(name)
    data["x-unknown"] = {"kept": [1, 2]}
    data["detail"]["futureField"] = "kept too"
    body = dumps(data)
    event = parse_event(body)
    assert event.id == data["id"]
    assert event.detail_type == data["detail-type"]
    assert event.source == data["source"]
    assert event.data == data
    assert event.data["x-unknown"] == {"kept": [1, 2]}
    assert event.data["detail"]["futureField"] == "kept too"
    assert event.body is body


def test_body_is_the_exact_input_string() -> None:
    # Whitespace, key order, escapes and non-ASCII survive: the copy is never re-serialised.
    body = (
        '{ "detail" : {"id": "i", "tags": {"priority": "caf\\u00e9"}, "note": "ünï"},\n'
        '  "source": "genesys.cloud", "detail-type": "Interaction Completed", "id": "e-1" }'
    )
    event = parse_event(body)
    assert event.body == body
    assert event.data["detail"]["tags"]["priority"] == "café"
    assert event.data["detail"]["note"] == "ünï"


def test_genesys_event_fields_are_readable() -> None:
    event = parse_event(dumps(sample("conversation_user_end")))
    assert event.source.startswith("aws.partner/genesys.com/cloud/")
    assert event.data["detail"]["metadata"]["CorrelationId"].startswith("c0ffee00")
    assert event.data["detail"]["eventBody"]["interactingDurationMs"] == 654_321


Edit = Callable[[dict[str, Any]], None]


def parent(data: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The mapping holding ``path`` ("detail/eventBody/x") and the last key."""
    *parents, last = path.split("/")
    for key in parents:
        data = data[key]
    return data, last


def setting(path: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        holder, key = parent(data, path)
        holder[key] = value

    return edit


def dropping(path: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        holder, key = parent(data, path)
        del holder[key]

    return edit


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        ("{not json", "invalid_json", "body is not JSON"),
        ("", "invalid_json", "body is not JSON"),
        ('[{"id": "e"}]', "invalid_envelope", "body is a JSON array, not an object"),
        ("42", "invalid_envelope", "body is a JSON number, not an object"),
        ('"event"', "invalid_envelope", "body is a JSON string, not an object"),
        ("true", "invalid_envelope", "body is a JSON boolean, not an object"),
        ("null", "invalid_envelope", "body is a JSON null, not an object"),
    ],
)
def test_invalid_body(body: str, reason: str, detail: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(body)
    assert info.value.reason == reason
    assert info.value.detail.startswith(detail)
    assert str(info.value) == f"{reason}: {info.value.detail}"


@pytest.mark.parametrize(
    ("name", "edit", "reason", "detail"),
    [
        ("simplified", dropping("detail"), "invalid_envelope", "detail: field required"),
        (
            "simplified",
            setting("detail", "{}"),
            "invalid_envelope",
            "detail: must be a JSON object, not string",
        ),
        ("simplified", setting("detail", None), "invalid_envelope", "detail: must be a JSON"),
        ("simplified", dropping("id"), "invalid_envelope", "id: Field required"),
        ("simplified", setting("id", ""), "invalid_envelope", "id: String should have at least"),
        ("simplified", dropping("source"), "invalid_envelope", "source: Field required"),
        ("simplified", setting("detail-type", 7), "invalid_envelope", "detail-type: "),
        ("audit", setting("time", "yesterday"), "invalid_envelope", "time: "),
        (
            "simplified",
            setting("detail/duration_ms", "120000"),
            "invalid_detail",
            "detail.duration_ms: Input should be a valid number",
        ),
        (
            "simplified",
            setting("detail/duration_ms", True),
            "invalid_detail",
            "detail.duration_ms: Input should be a valid number",
        ),
        (
            "simplified",
            setting("detail/tags/priority", 1),
            "invalid_detail",
            "detail.tags.priority: ",
        ),
        (
            "conversation_user_end",
            setting("detail/eventBody/interactingDurationMs", "654321"),
            "invalid_detail",
            "detail.eventBody.interactingDurationMs: Input should be a valid integer",
        ),
        (
            "conversation_user_end",
            setting("detail/eventBody/eventTime", "2026-11-28T02:59:59Z"),
            "invalid_detail",
            "detail.eventBody.eventTime: Input should be a valid integer",
        ),
        (
            "conversation_user_end",
            dropping("detail/eventBody"),
            "invalid_detail",
            "detail.eventBody: Field required",
        ),
        ("presence", dropping("detail/topicName"), "invalid_detail", "detail.topicName: Field"),
        ("audit", setting("detail/timestamp", "soon"), "invalid_detail", "detail.timestamp: "),
        (
            "audit",
            setting("detail/eventBody/eventTime", "not a time"),
            "invalid_detail",
            "detail.eventBody.eventTime: ",
        ),
    ],
)
def test_invalid_event(name: str, edit: Edit, reason: str, detail: str) -> None:
    data = body_of(name)
    edit(data)
    with pytest.raises(InvalidEvent) as info:
        parse_event(dumps(data))
    assert info.value.reason == reason
    assert info.value.detail.startswith(detail)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        # Durations are numbers: integers and floats both count.
        ("simplified", setting("detail/duration_ms", 120_000.5)),
        ("conversation_user_end", setting("detail/eventBody/interactingDurationMs", 1.5)),
        # Every detail field is optional; absent fields simply never match a rule.
        ("simplified", setting("detail", {})),
        ("conversation_user_end", setting("detail/eventBody", {})),
        # Other sources are routed without detail checks.
        ("simplified", setting("source", "custom.app")),
        # Genesys topics fanout does not model only need the common detail fields.
        ("presence", setting("detail/eventBody/modifiedDate", 12)),
    ],
)
def test_tolerated_variations(name: str, edit: Edit) -> None:
    data = body_of(name)
    edit(data)
    assert parse_event(orjson.dumps(data).decode()).data == data


@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\t", "\n", "\r", "\x1f", "\x7f", "\x85", "\uffff"]
)
def test_event_id_with_a_control_character_is_an_invalid_envelope(char: str) -> None:
    # SQS refuses most of these in the fanout.event_id attribute every copy carries: the
    # event must fail at validation, naming the field, not as a doomed send per target.
    data = simplified("high", event_id=f"evt{char}1")
    with pytest.raises(InvalidEvent) as caught:
        parse_event(dumps(data))
    assert caught.value.reason == "invalid_envelope"
    assert caught.value.detail.startswith(f"id: contains control character U+{ord(char):04X}")
    assert "position 3" in caught.value.detail
    assert caught.value.event_id is None  # not carried into the DLQ record's attribute either


@pytest.mark.parametrize("event_id", ["évt-ü-1", "a b", "id-\u2028", "😀"])
def test_event_id_with_printable_unicode_is_accepted(event_id: str) -> None:
    assert parse_event(dumps(simplified("high", event_id=event_id))).id == event_id


def test_invalid_detail_carries_the_envelope_event_id() -> None:
    data = sample("conversation_user_end")
    data["detail"]["eventBody"]["interactingDurationMs"] = "120000"
    with pytest.raises(InvalidEvent) as caught:
        parse_event(dumps(data))
    assert caught.value.reason == "invalid_detail"
    assert caught.value.event_id == data["id"]
    simple = simplified("high", duration_ms="slow", event_id="evt-simple")
    with pytest.raises(InvalidEvent) as caught:
        parse_event(dumps(simple))
    assert (caught.value.reason, caught.value.event_id) == ("invalid_detail", "evt-simple")


def test_invalid_envelope_has_no_event_id() -> None:
    data = simplified("high")
    del data["source"]
    with pytest.raises(InvalidEvent) as caught:
        parse_event(dumps(data))
    assert (caught.value.reason, caught.value.event_id) == ("invalid_envelope", None)


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_duplicate_keys_are_rejected_compact_or_not(spaced: bool) -> None:
    """Compact bodies take the re-serialization fast path, others the stdlib scan: both find
    a repeated key, at the top level and nested."""
    compact = dumps(sample("conversation_user_end"))
    nested = compact.replace('"eventBody":{', '"eventBody":{"x":1,"x":2,', 1)
    top = compact.replace('"id":', '"source":"s","id":', 1)
    assert nested != compact and top != compact
    for body, key in ((nested, "x"), (top, "source")):
        if spaced:
            body = body.replace(",", ", ")
        with pytest.raises(InvalidEvent) as caught:
            parse_event(body)
        assert caught.value.reason == "invalid_json"
        assert f"duplicate key {key!r}" in str(caught.value)
    # And the same bodies without the repeat pass both ways.
    assert parse_event(compact.replace(",", ", ") if spaced else compact).body
