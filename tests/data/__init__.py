"""Sample events for the unit tests: Genesys events as JSON files here, simplified ones built."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import orjson

DATA = Path(__file__).parent
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
