"""Outages of fanout's credentials, moto behind the fault proxy: past
FANOUT_CREDENTIAL_GRACE_SECONDS receiving pauses and /readyz fails; longer than
FANOUT_RETRY_MAX_SECONDS, the copies are left to come back, never dead-lettered, and
``--exit-when-idle`` waits for them."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from fanout.testing.faultproxy import During, FaultProxy, Tap, expired_token
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


async def test_past_the_grace_receiving_pauses_and_readiness_fails_then_both_resume(
    harness: Harness, moto_endpoint: str
) -> None:
    """While every send is refused for longer than FANOUT_CREDENTIAL_GRACE_SECONDS, the pollers
    make no receive and /readyz answers 503; once the window is over both come back."""
    h = harness
    source, dlq, target = await h.queue("source"), await h.queue("dlq"), await h.queue("calls")
    events = [conversation("user.end", event_id=f"p{i}") for i in range(30)]
    await h.send(source, [dumps(e) for e in events])
    settings = h.settings(
        source,
        dlq,
        h.rules(RULES.format(target=target)),
        credential_grace_seconds=0.5,
        visibility_timeout_seconds=10,
        http_port=0,
        http_host="127.0.0.1",
    )
    receives: list[float] = []  # when each ReceiveMessage reached the proxy
    paused: list[tuple[float, float]] = []  # (from, to) of each pause
    readiness: list[int] = []
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(Tap("ReceiveMessage", on_request=lambda _: receives.append(time.monotonic())))
        window = proxy.add(During(expired_token(), duration=4.0))
        service, cm, _ = await h.start(settings, endpoint=proxy.url)
        try:
            runner = asyncio.create_task(service.run(exit_when_idle=1.0))

            async def watch() -> None:
                since: float | None = None
                while not runner.done():
                    now = time.monotonic()
                    if service.outage.paused and since is None:
                        since = now
                        assert service.health is not None and service.health.port is not None
                        async with (
                            aiohttp.ClientSession() as session,
                            session.get(f"http://127.0.0.1:{service.health.port}/readyz") as r,
                        ):
                            readiness.append(r.status)
                    elif not service.outage.paused and since is not None:
                        paused.append((since, now))
                        since = None
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            stats = await asyncio.wait_for(runner, 60)
            await watcher
        finally:
            await cm.__aexit__(None, None, None)
    assert window.over and paused, "receiving never paused"
    assert readiness and set(readiness) == {503}
    # A receive out when the pause began may finish (1 s polls); none starts during it (until
    # the window is over: the pause ends, a little later, with the first call answered).
    window_end = window.t0 + window.start + window.duration
    assert not [t for t in receives for a, _ in paused if a + 0.5 < t < window_end]
    assert sorted(ids_of(await h.drain(target))) == sorted(e["id"] for e in events)
    assert await h.drain(dlq) == []
    assert sum(stats.dlq.values()) == 0
