"""``fanout run --processes N`` on moto: children share the queue, the summary sums their
counters, SIGTERM drains, a killed child is restarted and nothing is lost; the host health,
readiness and metrics endpoints merge the children's."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from fanout.testing.accounting import (
    Fleet,
    account,
    make_events,
    publish,
    wait_settled,
)

pytestmark = pytest.mark.integration

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start(log: Path, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanout", "run", *args, env=env, stdout=out, stderr=out
        )


async def get(port: int, path: str) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(5)) as r,
        ):
            return r.status, await r.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, repr(exc)


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def child_pids(healthz: str) -> dict[int, int]:
    return {int(i): int(p) for i, p in re.findall(r"child (\d+): pid (\d+) running", healthz)}


async def test_two_children_drain_one_queue_and_summaries_add_up(
    fleet: Fleet, tmp_path: Path
) -> None:
    events = make_events(300, seed=31)
    await publish(fleet.sqs, fleet.source, events)
    summary_path = tmp_path / "summary.json"
    log = tmp_path / "fanout.log"
    proc = await start(
        log,
        "--processes", "2", "--exit-when-idle", "5", "--summary-json", str(summary_path),
        env=fleet.env(fleet.endpoint, pollers=1, log_level="INFO"),
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 120) == 0, log.read_text()[-3000:]
    summary = orjson.loads(summary_path.read_bytes())
    result = await account("--processes 2 drain (moto)", fleet, events)
    result.check()
    assert (summary["processes"], summary["child_summaries"], summary["restarts"]) == (2, 2, 0)
    # moto may hand one message to two receivers (at-least-once): never fewer than published.
    assert summary["received"] >= len(events)
    assert summary["deleted"] == summary["received"]
    # Each child's copies are in the merged per-target counts: at least one per expected pair.
    assert sum(summary["per_target"].values()) >= result.expected_pairs
    text = log.read_text()
    assert "[0]" in text and "[1]" in text  # both children worked and logged as themselves
    assert "fanout summary" in text and "processes    2 (2 child summaries merged)" in text


async def test_killed_child_is_restarted_sigterm_drains_nothing_lost(
    fleet: Fleet, tmp_path: Path
) -> None:
    events = make_events(150, seed=32)
    port = free_port()
    log = tmp_path / "fanout.log"
    summary_path = tmp_path / "summary.json"
    env = fleet.env(
        fleet.endpoint, pollers=1, visibility_timeout_seconds=4, shutdown_timeout_seconds=5
    )
    env.update(OTEL_METRICS_EXPORTER="prometheus", OTEL_TRACES_EXPORTER="none")
    proc = await start(
        log, "--processes", "2", "--http-port", str(port), "--summary-json", str(summary_path),
        env=env,
    )  # fmt: skip
    try:
        publisher = asyncio.create_task(publish(fleet.sqs, fleet.source, events, rate=50))

        async def ready() -> bool:
            return (await get(port, "/readyz"))[0] == 200

        await until(ready, 60, "the host /readyz")
        _, healthz = await get(port, "/healthz")
        pids = child_pids(healthz)
        assert set(pids) == {0, 1}, healthz

        # One host /metrics: every family once, samples from each child told apart.
        status, metrics = await get(port, "/metrics")
        assert status == 200
        assert 'fanout_process="0"' in metrics and 'fanout_process="1"' in metrics
        assert 'fanout_process_index="1"' in metrics  # the OTLP resource attribute (target_info)

        # SIGKILL one child mid-stream: the supervisor restarts it, readiness comes back.
        await asyncio.sleep(1.0)
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)

        async def restarted() -> bool:
            now = child_pids((await get(port, "/healthz"))[1])
            return 0 in now and now[0] != victim

        await until(restarted, 30, "child 0 restarted")
        _, metrics = await get(port, "/metrics")
        assert 'fanout_child_restarts_total{fanout_process="0"} 1.0' in metrics, metrics[-2000:]
        await until(ready, 60, "the host /readyz after the restart")
        await publisher
        # The killed child's messages come back after their visibility timeout and are handled.
        await wait_settled(fleet.sqs, fleet.source, quiet=10, timeout=240)

        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        took = time.monotonic() - signalled
        text = log.read_text()
        assert code == 0, text[-3000:]
        assert took <= 5 + 5, f"shutdown took {took:.1f}s"
        assert "child 0 (pid" in text and "died (signal SIGKILL)" in text
        summary = orjson.loads(summary_path.read_bytes())
        # The killed child wrote no summary; its successor and the other child did.
        assert (summary["processes"], summary["restarts"], summary["child_summaries"]) == (2, 1, 2)
        assert summary["deleted"] == summary["received"] > 0
    except BaseException:
        print(log.read_text()[-6000:])  # what the supervisor and children said
        proc.kill()
        raise
    result = await account("--processes 2, one child killed (moto)", fleet, events)
    result.check()


async def test_local_run_with_two_processes_shares_one_moto(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    log = tmp_path / "fanout.log"
    proc = await start(
        log,
        "--local", "--processes", "2", "--rules", str(SHIPPED_RULES), "--events", "80",
        "--rate", "200", "--malformed", "0.05", "--exit-when-idle", "2",
        "--summary-json", str(summary_path),
        env={k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")},
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 120) == 0, log.read_text()[-3000:]
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["processes"] == 2 and summary["child_summaries"] == 2
    assert summary["received"] >= 80  # at-least-once on moto
    assert summary["deleted"] == summary["received"]
    assert sum(summary["per_target"].values()) > 0


async def test_bad_config_with_processes_is_one_line(tmp_path: Path, moto_endpoint: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "targets:\n  a: {queue_url: 'http://127.0.0.1/q'}\n"
        "rules:\n  - id: slow\n    condition: detail.duration_ms > 120000\n    targets: [a]\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fanout", "run", "--processes", "2", "--rules", str(rules),
        "--endpoint-url", moto_endpoint, "--source-queue-url", "http://127.0.0.1/src",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    lines = [line for line in err.decode().splitlines() if line.startswith("fanout: error:")]
    assert len(lines) == 1 and "rule 'slow'" in lines[0], err.decode()


async def test_child_exiting_2_after_a_restart_is_restarted_not_fatal(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Exit 2 stops the host only at a child's first start; later it is transient (here: the
    rules file mid-edit while a child restarts) and the child is restarted with backoff."""
    port = free_port()
    log = tmp_path / "fanout.log"
    env = fleet.env(fleet.endpoint, pollers=1, shutdown_timeout_seconds=5)
    proc = await start(log, "--processes", "2", "--http-port", str(port), env=env)
    good_rules = fleet.rules_path.read_text()
    try:

        async def ready() -> bool:
            return (await get(port, "/readyz"))[0] == 200

        await until(ready, 60, "the host /readyz")
        victim = child_pids((await get(port, "/healthz"))[1])[0]
        fleet.rules_path.write_text("rules: [unclosed\n")  # its restart cannot load this
        os.kill(victim, signal.SIGKILL)

        async def exited_2() -> bool:
            return "died (exit code 2)" in log.read_text()

        await until(exited_2, 60, "child 0's restart to exit 2")
        assert proc.returncode is None, "the supervisor stopped on a restart's exit 2"
        fleet.rules_path.write_text(good_rules)

        async def back() -> bool:
            now = child_pids((await get(port, "/healthz"))[1])
            return 0 in now and now[0] != victim and await ready()

        await until(back, 90, "child 0 running and the host ready again")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "exited with code 2 (configuration): stopping" not in text
    except BaseException:
        print(log.read_text()[-6000:])
        proc.kill()
        raise
