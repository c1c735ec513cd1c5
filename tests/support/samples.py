"""Sample events for the unit tests: Genesys events as JSON files here, simplified ones built."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fanout.events import InvalidEvent, parse_event
from fanout.pipeline.inflight import Received

DATA = Path(__file__).resolve().parents[1] / "data"
GENESYS_SAMPLES = ("conversation_user_end", "audit", "presence")


@cache
def _raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((DATA / f"{name}.json").read_bytes())
    return data


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/data/<name>.json`` (callers may mutate it)."""
    return copy.deepcopy(_raw(name))


def simplified(
    priority: str = "normal",
    *,
    duration_ms: Any = 1000,
    channel: str = "voice",
    outcome: str = "completed",
    event_id: str = "evt-1",
) -> dict[str, Any]:
    """The original design's ``Interaction Completed`` event."""
    return {
        "id": event_id,
        "source": "genesys.cloud",
        "detail-type": "Interaction Completed",
        "detail": {
            "id": f"interaction-{event_id}",
            "channel": channel,
            "outcome": outcome,
            "duration_ms": duration_ms,
            "tags": {"priority": priority},
        },
    }


def dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def received(
    body: str, *, attributes: dict[str, Any] | None = None, receive_count: int = 1
) -> Received:
    """A source message as the poller hands it on, with its event parsed when it is valid."""
    message = Received(
        message_id="msg-1",
        receipt_handle="rh-1",
        body=body,
        receive_count=receive_count,
        message_attributes=attributes or {},
    )
    try:
        message.event = parse_event(body)
    except InvalidEvent:
        message.event = None
    return message
