"""What the integration tests that run fanout over a fleet of queues share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fanout.testing.accounting import Fleet, fleet_on


@pytest.fixture
async def fleet(
    request: pytest.FixtureRequest, moto_endpoint: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """The test's queues on moto (source, DLQ, the shipped rules' targets), named after the test
    and deleted afterwards."""
    name = request.node.name.split("[")[0].removeprefix("test_")[:24]
    async with fleet_on(moto_endpoint, tmp_path, name) as fleet:
        yield fleet
