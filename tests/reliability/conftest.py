"""What the fault scenarios share: a fresh fleet of queues per test, on moto for the ``fast``
profile (``make test``) or on LocalStack for ``long`` (``make test-reliability``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fanout.testing.accounting import LOCALSTACK_URL, Fleet, fleet_on, localstack_up


@pytest.fixture
async def fleet(
    request: pytest.FixtureRequest, profile: Any, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """The test's queues (source, DLQ, targets), deleted afterwards; ``profile`` is the test's
    parameter (a ``name`` of ``fast`` or ``long``)."""
    if profile.name == "long":
        if not localstack_up():
            pytest.fail(f"LocalStack is not reachable at {LOCALSTACK_URL} (see README)")
        endpoint = LOCALSTACK_URL
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
    name = request.node.name.split("[")[0].removeprefix("test_")[:24]
    async with fleet_on(endpoint, tmp_path, name) as fleet:
        yield fleet
