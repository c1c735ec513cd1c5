"""The running service logs the Genesys schema warnings once at start and after each reload,
and routes by the rules all the same."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.support.harness import Harness, conversation, dumps, ids_of

pytestmark = pytest.mark.integration

RULES = """
targets:
  agents: {{queue_url: "{agents}"}}
rules:
  - id: long-calls
    condition: >-
      "detail-type" == 'v2.detail.events.conversation.{{id}}.user.end'
      && detail.eventBody.interactingDurationMS > `600000`
    targets: [agents]
  - id: user-end
    condition: "\\"detail-type\\" == 'v2.detail.events.conversation.{{id}}.user.end'"
    targets: [agents]
"""


async def test_warnings_are_logged_at_start_and_reload_and_never_refuse_rules(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    source, dlq, agents = await h.queue("source"), await h.queue("dlq"), await h.queue("agents")
    path = h.rules(RULES.format(agents=agents))
    settings = h.settings(source, dlq, path)
    event = conversation("user.end")
    caplog.set_level(logging.WARNING)
    service, cm, _ = await h.start(settings)
    run = asyncio.create_task(service.run())
    try:
        await h.send(source, [dumps(event)])
        async with asyncio.timeout(30):
            while service.stats.deleted < 1:
                await asyncio.sleep(0.05)
        assert await service.reloader.reload()  # the same file again: warned again, once
    finally:
        service.stop.set()
        await asyncio.wait_for(run, 30)
        await cm.__aexit__(None, None, None)
    warned = [r.getMessage() for r in caplog.records if "rules schema check" in r.getMessage()]
    assert len(warned) == 2
    assert all("rule 'long-calls'" in w and "interactingDurationMs" in w for w in warned)
    assert ids_of(await h.drain(agents)) == [event["id"]]  # routed by the valid rule
    assert await h.drain(dlq) == []
