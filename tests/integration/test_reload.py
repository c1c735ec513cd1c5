"""Rules hot reload on moto: the swap, a broken file, SIGHUP to a real process, a ConfigMap swap."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fanout.testing.faultproxy import Delay, FaultProxy
from tests.support.harness import Harness, dumps, ids_of, simplified

pytestmark = pytest.mark.integration

# Every event is a high-priority voice call: `route` sends it to `old` (before) or `new`
# (after the reload); `keep` sends it to `other` under both rule sets.
RULES = """
targets:
  {route}: {{queue_url: "{route_url}"}}
  other: {{queue_url: "{other}"}}
rules:
  - id: route
    condition: {condition}
    targets: [{route}]
  - id: keep
    condition: detail.tags.priority == 'high'
    targets: [other]
"""


def rules_text(
    urls: dict[str, str], route: str, condition: str = "detail.channel == 'voice'"
) -> str:
    return RULES.format(
        route=route, route_url=urls[route], other=urls["other"], condition=condition
    )


async def queues(h: Harness) -> dict[str, str]:
    return {n: await h.queue(n) for n in ("source", "dlq", "old", "new", "other")}


def events(n: int) -> list[dict[str, Any]]:
    return [simplified("high", channel="voice") for _ in range(n)]


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def test_reload_swaps_routing_for_later_events(harness: Harness, moto_endpoint: str) -> None:
    """Events matched before the swap go to `old` (its copies still pending at the swap: a
    slow target), events received after it go to `new`; each event goes to exactly one of
    them and to `other`, none to the DLQ."""
    h = harness
    urls = await queues(h)
    path = h.rules(rules_text(urls, "old"))
    settings = h.settings(urls["source"], urls["dlq"], path)
    before, around, after = events(20), events(20), events(20)
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(Delay("SendMessageBatch", 1.0, queue="-old", times=None))
        service, cm, _ = await h.start(settings, endpoint=proxy.url)
        run = asyncio.create_task(service.run())
        try:
            await h.send(urls["source"], [dumps(e) for e in before])
            await until(lambda: service.stats.processed >= 20)
            old_sender = service.routing.sender(service.rules.targets["old"])
            assert old_sender.batcher.busy  # copies matched under the old rules still pending
            path.write_text(rules_text(urls, "new"))
            await h.send(urls["source"], [dumps(e) for e in around])  # in flight at the swap
            assert await service.reloader.reload()
            assert old_sender in service.routing.senders  # kept until drained
            await h.send(urls["source"], [dumps(e) for e in after])
            await until(lambda: service.stats.deleted >= 60)
        finally:
            service.stop.set()
            await asyncio.wait_for(run, 30)
            await cm.__aexit__(None, None, None)
    old = ids_of(await h.drain(urls["old"]))
    new = ids_of(await h.drain(urls["new"]))
    other = ids_of(await h.drain(urls["other"]))
    everything = {e["id"] for e in before + around + after}
    assert len(old) == len(set(old)) and len(new) == len(set(new))  # no duplicates
    assert set(old).isdisjoint(new)  # never routed under both rule sets
    assert set(old) | set(new) == everything  # none lost
    assert {e["id"] for e in before} <= set(old)
    assert {e["id"] for e in after} <= set(new)
    assert sorted(other) == sorted(everything)
    assert await h.drain(urls["dlq"]) == []
    assert service.stats.reloads == {"ok": 1}
    assert service.stats.summary()["rules_reloads"] == {"ok": 1}


async def test_broken_reload_keeps_routing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    urls = await queues(h)
    path = h.rules(rules_text(urls, "old"))
    settings = h.settings(urls["source"], urls["dlq"], path)
    service, cm, _ = await h.start(settings)
    run = asyncio.create_task(service.run())
    first, second = events(5), events(5)
    try:
        await h.send(urls["source"], [dumps(e) for e in first])
        await until(lambda: service.stats.deleted >= 5)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fanout.reload"):
            # A JMESPath syntax error, then a new target whose queue does not exist.
            path.write_text(rules_text(urls, "new", condition="detail.duration_ms > 120000"))
            assert not await service.reloader.reload()
            urls["new"] = urls["new"] + "-gone"
            path.write_text(rules_text(urls, "new"))
            assert not await service.reloader.reload()
        await h.send(urls["source"], [dumps(e) for e in second])
        await until(lambda: service.stats.deleted >= 10)
    finally:
        service.stop.set()
        await asyncio.wait_for(run, 30)
        await cm.__aexit__(None, None, None)
    lines = [r.getMessage() for r in caplog.records if r.name == "fanout.reload"]
    assert len(lines) == 2, lines
    syntax, missing = lines
    assert "running rules stay in force" in syntax and str(path) in syntax
    assert "rule 'route'" in syntax and "JMESPath syntax error" in syntax and "(fix:" in syntax
    assert "target 'new'" in missing and "does not exist" in missing and "(fix:" in missing
    assert all("\n" not in line for line in lines)
    assert service.stats.reloads == {"error": 2}
    expected = sorted(e["id"] for e in first + second)
    assert sorted(ids_of(await h.drain(urls["old"]))) == expected
    assert sorted(ids_of(await h.drain(urls["other"]))) == expected
    assert await h.depth(urls["new"].removesuffix("-gone")) == (0, 0)


def configmap(root: Path, version: str, text: str) -> None:
    """What the kubelet does: write a new timestamped directory, then atomically repoint the
    ``..data`` symlink at it; the mounted ``rules.yaml`` is a symlink to ``..data/rules.yaml``."""
    directory = root / f"..{version}"
    directory.mkdir()
    (directory / "rules.yaml").write_text(text)
    tmp = root / "..data_tmp"
    tmp.symlink_to(directory.name)
    os.replace(tmp, root / "..data")
    if not (root / "rules.yaml").is_symlink():
        (root / "rules.yaml").symlink_to("..data/rules.yaml")


async def test_watch_follows_a_configmap_symlink_swap(harness: Harness) -> None:
    h = harness
    urls = await queues(h)
    root = h.tmp_path / "config"
    root.mkdir()
    configmap(root, "2026_01_01_a", rules_text(urls, "old"))
    path = root / "rules.yaml"
    settings = h.settings(
        urls["source"],
        urls["dlq"],
        path,
        watch_rules=True,
        rules_watch_interval_seconds=0.1,
    )
    service, cm, _ = await h.start(settings)
    run = asyncio.create_task(service.run())
    first, second = events(5), events(5)
    try:
        await h.send(urls["source"], [dumps(e) for e in first])
        await until(lambda: service.stats.deleted >= 5)
        await asyncio.sleep(0.5)  # several polls of an unchanged file: no reload
        assert service.stats.reloads == {}
        configmap(root, "2026_01_01_b", rules_text(urls, "new"))
        await until(lambda: service.stats.reloads.get("ok", 0) >= 1, timeout=10)
        await h.send(urls["source"], [dumps(e) for e in second])
        await until(lambda: service.stats.deleted >= 10)
        await asyncio.sleep(0.5)
        assert service.stats.reloads == {"ok": 1}  # one swap, one reload
    finally:
        service.stop.set()
        await asyncio.wait_for(run, 30)
        await cm.__aexit__(None, None, None)
    assert sorted(ids_of(await h.drain(urls["old"]))) == sorted(e["id"] for e in first)
    assert sorted(ids_of(await h.drain(urls["new"]))) == sorted(e["id"] for e in second)


async def test_sighup_reloads_a_running_process(harness: Harness, moto_endpoint: str) -> None:
    h = harness
    urls = await queues(h)
    path = h.rules(rules_text(urls, "old"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fanout",
        "run",
        "--rules",
        str(path),
        "--source-queue-url",
        urls["source"],
        "--dlq-url",
        urls["dlq"],
        "--endpoint-url",
        moto_endpoint,
        "--region",
        "us-east-1",
        "--pollers",
        "1",
        "--wait-time-seconds",
        "1",
        "--linger-ms",
        "5",
        env={**os.environ, "FANOUT_MAX_POLLERS": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    log: list[str] = []

    async def wait_for_line(text: str, timeout: float = 30) -> None:
        assert proc.stderr is not None
        async with asyncio.timeout(timeout):
            while not any(text in line for line in log):
                line = await proc.stderr.readline()
                assert line, f"fanout exited before logging {text!r}: {log}"
                log.append(line.decode())

    first, second = events(5), events(5)
    try:
        await wait_for_line("fanout started")
        await h.send(urls["source"], [dumps(e) for e in first])
        await until(lambda: _visible(h, urls["old"], 5))
        path.write_text(rules_text(urls, "new"))
        proc.send_signal(signal.SIGHUP)
        await wait_for_line("rules reloaded")
        await h.send(urls["source"], [dumps(e) for e in second])
        await until(lambda: _visible(h, urls["new"], 5))
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, "".join(log) + err.decode()
    assert "rules reloads ok=1" in out.decode()
    assert sorted(ids_of(await h.drain(urls["old"]))) == sorted(e["id"] for e in first)
    assert sorted(ids_of(await h.drain(urls["new"]))) == sorted(e["id"] for e in second)


async def _visible(h: Harness, url: str, count: int) -> bool:
    return (await h.depth(url))[0] >= count
