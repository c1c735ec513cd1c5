"""Many consumers on one queue, proven (issue 12, item 6), on LocalStack.

Three fanout processes drain one source queue together: A and B are plain ``fanout run``, C is
``fanout run --processes 2`` (a supervisor and two pipelines). While traffic flows, A is killed
with SIGKILL and started again, and one of C's children is killed with SIGKILL (its supervisor
restarts it). Then every event is accounted for: in each target its rules match, or in the DLQ;
none lost; duplicates only in standard targets (redelivery after the kills), none in FIFO.
The summaries add up: what the surviving summaries say they delivered is in the targets, and
the rest of the target copies is what the killed processes sent before they died.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fanout.testing.accounting import (
    LOCALSTACK_URL,
    Fleet,
    account,
    fleet_on,
    localstack_up,
    make_events,
    publish,
    wait_settled,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(900)]

EVENTS = 3000
RATE = 100.0  # events/s published while the consumers run (about 30 s of traffic)
VISIBILITY = 5  # seconds: what a killed process held comes back this fast
SHUTDOWN = 10.0


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    if not localstack_up():
        pytest.fail(f"LocalStack is not reachable at {LOCALSTACK_URL} (see README)")
    async with fleet_on(LOCALSTACK_URL, tmp_path, "many") as fleet:
        fleet.profile = "long"
        yield fleet


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Consumers:
    """The fanout processes of the scenario, each run with its own log and summary file."""

    def __init__(self, fleet: Fleet, tmp_path: Path) -> None:
        self.fleet = fleet
        self.tmp = tmp_path
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.summaries: dict[str, Path] = {}

    async def start(self, name: str, *extra: str) -> asyncio.subprocess.Process:
        env = self.fleet.env(
            self.fleet.endpoint,
            pollers=2,
            visibility_timeout_seconds=VISIBILITY,
            shutdown_timeout_seconds=SHUTDOWN,
            log_level="INFO",
        )
        summary = self.tmp / f"summary-{name}.json"
        with (self.tmp / f"{name}.log").open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fanout", "run", "--summary-json", str(summary), *extra,
                env=env, stdout=out, stderr=out,
            )  # fmt: skip
        self.procs[name], self.summaries[name] = proc, summary
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(self.tmp.glob("*.log"))
        )

    async def stop_all(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            codes[name] = await asyncio.wait_for(proc.wait(), SHUTDOWN + 15)
        return codes


def healthz_pids(port: int) -> dict[int, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        text = response.read().decode()
    return {int(i): int(p) for i, p in re.findall(r"child (\d+): pid (\d+) running", text)}


async def wait_for_children(
    port: int, count: int, timeout: float = 60, gone: frozenset[int] = frozenset()
) -> dict[int, int]:
    """Pids of the supervisor's running children, once ``count`` run and none is in ``gone``
    (a killed child reads "running" until the supervisor has reaped it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pids = await asyncio.to_thread(healthz_pids, port)
        except OSError:
            pids = {}
        if len(pids) == count and not gone & set(pids.values()):
            return pids
        await asyncio.sleep(0.5)
    raise AssertionError(f"supervisor on :{port} did not report {count} new running children")


async def test_three_processes_one_queue_kills_and_restarts(fleet: Fleet, tmp_path: Path) -> None:
    events = make_events(EVENTS, seed=40)
    consumers = Consumers(fleet, tmp_path)
    port = free_port()
    notes: list[str] = []
    try:
        await consumers.start("A")
        await consumers.start("B")
        await consumers.start("C", "--processes", "2", "--http-port", str(port))
        children = await wait_for_children(port, 2)
        publisher = asyncio.create_task(publish(fleet.sqs, fleet.source, events, rate=RATE))

        await asyncio.sleep(8)
        consumers.procs["A"].send_signal(signal.SIGKILL)
        assert await consumers.procs["A"].wait() == -signal.SIGKILL
        notes.append(f"A killed at {8}s (SIGKILL)")
        await asyncio.sleep(2)
        await consumers.start("A-restarted")
        notes.append("A started again 2s later")

        await asyncio.sleep(5)
        os.kill(children[1], signal.SIGKILL)
        notes.append(f"C's child 1 (pid {children[1]}) killed (SIGKILL)")
        restarted = await wait_for_children(port, 2, timeout=60, gone=frozenset({children[1]}))
        assert restarted[1] != children[1]
        notes.append(f"C's supervisor restarted it: pid {restarted[1]}")

        await publisher
        await wait_settled(fleet.sqs, fleet.source, quiet=2 * VISIBILITY + 2, timeout=300)
        codes = await consumers.stop_all()
    except BaseException:
        print(consumers.logs())
        for proc in consumers.procs.values():
            if proc.returncode is None:
                proc.kill()
        raise
    assert codes == {"A": -signal.SIGKILL, "B": 0, "C": 0, "A-restarted": 0}, consumers.logs()

    result = await account("3 processes (one --processes 2) on one queue, kills", fleet, events)
    summaries: dict[str, dict[str, Any]] = {
        name: orjson.loads(path.read_bytes())
        for name, path in consumers.summaries.items()
        if path.exists()
    }
    assert set(summaries) == {"B", "C", "A-restarted"}  # A died without one
    c = summaries["C"]
    assert (c["processes"], c["restarts"], c["child_summaries"]) == (2, 1, 2)

    # The summaries add up: none deleted more than it received; every copy a surviving summary
    # counts is in its target, and what is left over was sent by the killed processes.
    for name, s in summaries.items():
        assert 0 < s["deleted"] <= s["received"], (name, s)  # every process took a share
    copies = {t: result.delivered[t] + result.duplicates[t] for t in fleet.targets}
    counted = {t: sum(s["per_target"].get(t, 0) for s in summaries.values()) for t in copies}
    killed_share = {t: copies[t] - counted[t] for t in copies}
    assert all(n >= 0 for n in killed_share.values()), (copies, counted)
    assert sum(s["dlq_total"] for s in summaries.values()) <= result.dlq_events
    deleted = sum(s["deleted"] for s in summaries.values())
    assert deleted <= EVENTS + result.duplicated  # deletes never exceed deliveries
    result.notes["kills"] = "; ".join(notes)
    result.notes["per process (received/deleted)"] = {
        n: f"{s['received']}/{s['deleted']}" for n, s in sorted(summaries.items())
    }
    result.notes["copies counted by surviving summaries"] = counted
    result.notes["copies sent by the killed processes"] = killed_share
    result.check()
    assert result.fully_delivered + result.dlq_events >= EVENTS
