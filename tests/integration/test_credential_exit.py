"""An outage of fanout's credentials longer than FANOUT_RETRY_MAX_SECONDS: the copies are left
to come back, never dead-lettered, and ``--exit-when-idle`` waits for them (moto behind the
fault proxy)."""

from __future__ import annotations

import pytest

from fanout.testing.faultproxy import During, FaultProxy, expired_token
from tests.support.harness import Harness, conversation, dumps, ids_of

pytestmark = pytest.mark.integration

RULES = """\
targets:
  calls: {{queue_url: "{target}"}}
rules:
  - id: every-event
    condition: id != null
    targets: [calls]
"""


async def test_an_outage_past_the_budget_comes_back_and_the_drain_waits(
    harness: Harness, moto_endpoint: str
) -> None:
    h = harness
    source, dlq, target = await h.queue("source"), await h.queue("dlq"), await h.queue("calls")
    events = [conversation("user.end", event_id=f"e{i}") for i in range(10)]
    await h.send(source, [dumps(e) for e in events])
    settings = h.settings(
        source,
        dlq,
        h.rules(RULES.format(target=target)),
        visibility_timeout_seconds=2,
        retry_max_attempts=2,
        retry_max_seconds=0.5,  # far shorter than the outage: the copies give up in it
    )
    async with FaultProxy(moto_endpoint) as proxy:
        window = proxy.add(During(expired_token(), duration=3.0))
        stats = await h.run_until_idle(settings, idle=0.5, endpoint=proxy.url, timeout=60)
    assert window.over and window.hits > 0
    assert stats.abandoned > 0  # left to come back: fanout's credentials, not the target
    assert stats.redelivered > 0  # and the drain waited for them instead of exiting
    assert sorted(ids_of(await h.drain(target))) == sorted(e["id"] for e in events)
    assert await h.drain(dlq) == []
    assert await h.depth(source) == (0, 0)
    assert stats.credential_errors["ExpiredToken"] == window.hits
