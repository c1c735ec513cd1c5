"""The embedded local run (`make run`): its own moto server, synthetic traffic, real routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanout.config import Settings
from fanout.local.run import LocalOptions, run_local

pytestmark = pytest.mark.integration

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"


async def test_local_run_routes_synthetic_traffic_and_dead_letters_malformed() -> None:
    settings = Settings(rules=SHIPPED_RULES, linger_ms=5)
    options = LocalOptions(rate=400, events=300, malformed=0.05, seed=3, progress=False)
    stats = await run_local(settings, options, exit_when_idle=1.0)
    # moto may hand a message to two concurrent receives (at-least-once), never fewer.
    assert stats.received >= 300
    assert stats.deleted == stats.received  # all settled: routed, unmatched or dead-lettered
    assert sum(stats.dlq.values()) >= 5  # ~15 malformed bodies expected at 5%
    assert set(stats.dlq) <= {"invalid_json", "invalid_envelope", "invalid_detail"}
    assert len(stats.per_target) >= 4  # the shipped rules route to most targets
    assert sum(stats.per_target.values()) > 0 and stats.unmatched < 300
