"""worker.py: what the worker hands the DLQ for bad input (no SQS: fake sender and acker)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from fanout.observability.stats import Stats
from fanout.observability.telemetry import Telemetry
from fanout.pipeline.dlq import DeadLetters
from fanout.pipeline.inflight import Received
from fanout.pipeline.routing import Routing
from fanout.pipeline.sender import EVENT_ID_ATTRIBUTE, Copy
from fanout.pipeline.settle import Settler
from fanout.pipeline.worker import Worker
from fanout.rules import load_rules
from tests.support.samples import dumps, sample, simplified

RULES = """
targets:
  all: {queue_url: "http://127.0.0.1:9/all"}
rules:
  - id: all
    condition: "id != ''"
    targets: [all]
"""


class Capture:
    """Every entry submitted to a sender (target or DLQ), and the acker's calls."""

    def __init__(self) -> None:
        self.submitted: list[Copy] = []
        self.deleted: list[Received] = []
        self.abandoned: list[Received] = []

    def sender(self, target: Any, on_settled: Any, *, dlq: bool = False) -> Any:
        capture = self

        class Sender:
            def submit(self, copy: Copy) -> None:
                capture.submitted.append(copy)

        return Sender()


def worker(tmp_path: Path, capture: Capture, rules_text: str = RULES) -> Worker:
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text)
    rules = load_rules(path, env={})
    stats = Stats()
    acker: Any = SimpleNamespace(delete=capture.deleted.append, abandon=capture.abandoned.append)
    dead = DeadLetters("http://127.0.0.1:9/dlq", capture.sender, acker, stats)  # type: ignore[arg-type]
    settler = Settler(acker, dead, stats)
    routing = Routing(rules, {t: capture.sender(t, None) for t in rules.targets.values()})
    return Worker(routing, settler, stats, Telemetry.off(), "source")


def record_of(copy: Copy) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(copy.entry["MessageBody"])
    return record


@pytest.mark.parametrize("kind", ["genesys", "simplified"])
def test_invalid_detail_record_carries_the_event_id(tmp_path: Path, kind: str) -> None:
    if kind == "genesys":
        data = sample("conversation_user_end")
        data["detail"]["eventBody"]["interactingDurationMs"] = "long"
    else:
        data = simplified("high", duration_ms=[1], event_id="evt-bad-detail")
    capture = Capture()
    message = Received("m-1", "rh-1", dumps(data))
    worker(tmp_path, capture).handle(message)
    [copy] = capture.submitted
    record = record_of(copy)
    assert record["reason"] == "invalid_detail"
    assert record["event_id"] == data["id"]
    attrs = copy.entry["MessageAttributes"]
    assert attrs[EVENT_ID_ATTRIBUTE]["StringValue"] == data["id"]


def test_invalid_envelope_and_control_character_ids_carry_none(tmp_path: Path) -> None:
    capture = Capture()
    w = worker(tmp_path, capture)
    w.handle(Received("m-1", "rh-1", dumps(simplified("high", event_id="evt\x01"))))
    w.handle(Received("m-2", "rh-2", dumps({"id": "e", "detail": {}})))
    records = [record_of(c) for c in capture.submitted]
    assert [r["reason"] for r in records] == ["invalid_envelope", "invalid_envelope"]
    assert [r["event_id"] for r in records] == [None, None]
    assert "U+0001" in records[0]["error_message"]
    assert all(EVENT_ID_ATTRIBUTE not in c.entry["MessageAttributes"] for c in capture.submitted)


def test_valid_event_goes_to_its_target(tmp_path: Path) -> None:
    capture = Capture()
    worker(tmp_path, capture).handle(Received("m-1", "rh-1", dumps(simplified("high"))))
    [copy] = capture.submitted
    assert copy.target.name == "all" and copy.entry["MessageBody"] == dumps(simplified("high"))


FIFO_RULES = """
targets:
  all: {queue_url: "http://127.0.0.1:9/all"}
  ordered:
    queue_url: "http://127.0.0.1:9/ordered.fifo"
    fifo: {message_group_id: detail.id}
rules:
  - id: all
    condition: "id != ''"
    targets: [all, ordered]
"""


def test_a_routed_event_keeps_its_ids_and_body_but_not_its_parsed_json(tmp_path: Path) -> None:
    """The parsed JSON is as large as the body: once the copies are built (the FIFO group read
    from it), the message in flight holds the body once, shared by every copy."""
    capture = Capture()
    message = Received("m-1", "rh-1", dumps(simplified("high", event_id="evt-9")))
    worker(tmp_path, capture, FIFO_RULES).handle(message)
    assert message.event is not None
    assert message.event.data == {}
    assert (message.event.id, message.event.detail_type) == ("evt-9", "Interaction Completed")
    assert message.event_id == "evt-9"
    by_target = {c.target.name: c for c in capture.submitted}
    assert by_target["ordered"].entry["MessageGroupId"] == "interaction-evt-9"
    assert all(c.entry["MessageBody"] is message.body for c in capture.submitted)
    assert message.event.body is message.body
