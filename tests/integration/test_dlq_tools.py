"""``fanout dlq inspect`` / ``fanout dlq redrive`` as an operator runs them, on moto's server:
the DLQ is filled by the service itself (a target deleted mid-run), then the target comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from typing import Any

import orjson
import pytest

from tests.support.harness import Harness, dumps, ids_of, simplified

pytestmark = pytest.mark.integration

RULES = """
targets:
  critical: {{queue_url: "{critical}"}}
  standard: {{queue_url: "{standard}"}}
  ledger:
    queue_url: "{ledger}"
    fifo: {{message_group_id: detail.channel}}
rules:
  - id: critical
    condition: detail.tags.priority == 'critical'
    targets: [critical]
  - id: standard
    condition: detail.channel == 'voice' && detail.outcome == 'completed'
    targets: [standard]
  - id: ledger
    condition: detail.outcome == 'completed'
    targets: [ledger]
"""


async def fanout(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fanout",
        *args,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def setup(h: Harness) -> dict[str, Any]:
    urls: dict[str, Any] = {n: await h.queue(n) for n in ("source", "dlq", "critical", "standard")}
    urls["ledger"] = await h.queue("ledger", fifo=True)
    urls["rules"] = h.rules(RULES.format(**urls))
    urls["settings"] = h.settings(urls["source"], urls["dlq"], urls["rules"])
    return urls


async def peek(h: Harness, url: str) -> list[dict[str, Any]]:
    """Every visible message, left visible (released at once after the read)."""
    messages = await h.drain(url, delete=False)
    for m in messages:
        await h.sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return messages


def common(h: Harness, urls: dict[str, Any]) -> list[str]:
    return ["--dlq-url", urls["dlq"], "--endpoint-url", h.endpoint, "--region", "us-east-1"]


async def fill_dlq(
    h: Harness,
    urls: dict[str, Any],
    gone: tuple[str, ...],
    events: list[dict[str, Any]],
    bad: list[str] = (),  # type: ignore[assignment]
) -> None:
    """Run the service with ``gone`` targets deleted mid-run, then bring them back (empty)."""
    service, cm, _ = await h.start(urls["settings"])
    try:
        run = asyncio.create_task(service.run(exit_when_idle=1.5))
        for name in gone:
            await h.sqs.delete_queue(QueueUrl=urls[name])
        await h.send(urls["source"], [dumps(e) for e in events] + list(bad))
        stats = await asyncio.wait_for(run, 30)
    finally:
        await cm.__aexit__(None, None, None)
    assert stats.deleted == len(events) + len(bad)
    for name in gone:  # the target comes back
        fifo = name == "ledger"
        url = await h.queue(name, fifo=fifo)
        assert url == urls[name]


async def test_inspect_counts_without_consuming(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    events = [simplified("critical", channel="chat", outcome="missed") for _ in range(4)]
    await fill_dlq(h, urls, ("critical",), events, bad=["{not json", "[1]"])
    assert (await h.depth(urls["dlq"]))[0] == 6
    code, out, err = await fanout("dlq", "inspect", *common(h, urls), "--json")
    assert code == 0, err
    summary = orjson.loads(out)
    assert summary["records"] == 6
    assert summary["by_reason"] == {"target_rejected": 4, "invalid_envelope": 1, "invalid_json": 1}
    assert summary["by_failed_target"] == {"critical": 4}
    assert summary["by_detail_type"]["Interaction Completed"] == 4
    assert summary["oldest"] <= summary["newest"]
    assert "items" not in summary and "not json" not in out  # no bodies unless asked
    # Released, not consumed: every record is visible again at once.
    assert await h.depth(urls["dlq"]) == (6, 0)
    code, out, _ = await fanout("dlq", "inspect", *common(h, urls), "--rules", str(urls["rules"]))
    assert code == 0
    assert "critical  4" in out.replace("  4\n", "  4\n") and "by rule" in out
    code, out, _ = await fanout(
        "dlq", "inspect", *common(h, urls), "--limit", "2", "--show-bodies", "--json"
    )
    shown = orjson.loads(out)
    assert shown["records"] == 2 and all("body" in item for item in shown["items"])
    assert await h.depth(urls["dlq"]) == (6, 0)


async def test_redrive_delivers_exactly_the_missing_copies(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    # critical + standard + ledger each; critical and ledger are gone during the run.
    events = [simplified("critical") for _ in range(5)]
    await fill_dlq(h, urls, ("critical", "ledger"), events, bad=["{not json"])
    before = sorted(ids_of(await peek(h, urls["standard"])))
    assert before == sorted(e["id"] for e in events)

    # --dry-run changes nothing.
    code, out, err = await fanout(
        "dlq", "redrive", *common(h, urls), "--rules", str(urls["rules"]), "--dry-run"
    )
    assert code == 0, err
    assert "would" in err and "dry run" in out
    assert await h.depth(urls["dlq"]) == (6, 0)
    assert await h.depth(urls["critical"]) == (0, 0) and await h.depth(urls["ledger"]) == (0, 0)

    # --target critical: only critical's copies; the records keep ledger (a new record each).
    code, out, err = await fanout(
        "dlq", "redrive", *common(h, urls), "--rules", str(urls["rules"]),
        "--target", "critical", "--no-progress",
    )  # fmt: skip
    assert code == 0, err + out
    got = await h.drain(urls["critical"])
    assert sorted(ids_of(got)) == sorted(e["id"] for e in events)
    assert await h.depth(urls["ledger"]) == (0, 0)
    records = [orjson.loads(m["Body"]) for m in await peek(h, urls["dlq"])]
    kept = [r for r in records if r["reason"] != "invalid_json"]
    assert len(kept) == 5 and all(r["failed_targets"] == ["ledger"] for r in kept)

    # Everything else: ledger gets its copies with the original FIFO ids; bad input stays.
    code, out, err = await fanout(
        "dlq", "redrive", *common(h, urls), "--rules", str(urls["rules"]), "--no-progress"
    )
    assert code == 0, err + out
    ledger = await h.drain(urls["ledger"])
    assert sorted(ids_of(ledger)) == sorted(e["id"] for e in events)
    for message in ledger:
        event_id = orjson.loads(message["Body"])["id"]
        attrs = message["Attributes"]
        assert attrs["MessageGroupId"] == "voice"  # the rules' group expression
        assert (
            attrs["MessageDeduplicationId"]
            == hashlib.sha256(f"{event_id}\x00ledger".encode()).hexdigest()
        )
    assert "kept in the DLQ: 1 (bad input" in out
    [left] = [orjson.loads(m["Body"]) for m in await peek(h, urls["dlq"])]
    assert left["reason"] == "invalid_json"
    # No target got a second copy.
    assert await h.depth(urls["critical"]) == (0, 0)
    assert sorted(ids_of(await h.drain(urls["standard"]))) == before

    # --to-source: bad input goes back to the source queue, and the DLQ is empty.
    code, out, err = await fanout(
        "dlq", "redrive", *common(h, urls), "--rules", str(urls["rules"]), "--to-source",
        "--source-queue-url", urls["source"], "--no-progress",
    )  # fmt: skip
    assert code == 0, err + out
    [back] = await h.drain(urls["source"])
    assert back["Body"] == "{not json"
    assert await h.depth(urls["dlq"]) == (0, 0)


async def test_repeated_fifo_redrive_does_not_duplicate(harness: Harness) -> None:
    """kill -9 between the send and the delete: the record is redriven again; the FIFO target
    drops the repeat (same deduplication id), so it holds each event once."""
    h = harness
    urls = await setup(h)
    events = [simplified("normal", channel="chat") for _ in range(3)]  # ledger only
    await fill_dlq(h, urls, ("ledger",), events)
    records = await peek(h, urls["dlq"])
    saved = [m["Body"] for m in records]
    code, out, err = await fanout(
        "dlq", "redrive", *common(h, urls), "--rules", str(urls["rules"]), "--no-progress"
    )
    assert code == 0, err + out
    assert await h.depth(urls["dlq"]) == (0, 0)
    await h.send(urls["dlq"], saved)  # as if the deletes had never happened
    code, out, err = await fanout(
        "dlq", "redrive", *common(h, urls), "--rules", str(urls["rules"]), "--no-progress"
    )
    assert code == 0, err + out
    assert sorted(ids_of(await h.drain(urls["ledger"]))) == sorted(e["id"] for e in events)


async def test_missing_target_stops_with_one_line_and_keeps_records(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    events = [simplified("critical", channel="chat", outcome="missed") for _ in range(3)]
    await fill_dlq(h, urls, ("critical",), events)
    await h.sqs.delete_queue(QueueUrl=urls["critical"])  # gone again
    code, _out, err = await fanout(
        "dlq", "redrive", *common(h, urls), "--rules", str(urls["rules"]), "--no-progress"
    )
    assert code == 1
    lines = [line for line in err.splitlines() if "critical" in line]
    assert len(lines) == 1 and "does not exist" in lines[0] and "stopped" in lines[0]
    assert "Traceback" not in err
    assert await h.depth(urls["dlq"]) == (3, 0)  # nothing lost, all visible again


async def test_missing_dlq_is_one_line(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    urls["dlq"] += "-gone"
    code, _, err = await fanout("dlq", "inspect", *common(h, urls))
    assert code == 2
    assert err.strip().startswith("fanout: error: DLQ") and "does not exist" in err


async def test_rules_diff_from_dlq_reads_without_consuming(harness: Harness) -> None:
    h = harness
    urls = await setup(h)
    new_rules = h.rules(
        RULES.format(**urls).replace("priority == 'critical'", "priority == 'high'"), "new.yaml"
    )
    events = [simplified("critical", channel="chat", outcome="missed") for _ in range(3)]
    await fill_dlq(h, urls, ("critical",), events)
    code, out, err = await fanout(
        "rules", "diff", str(urls["rules"]), str(new_rules), "--from-dlq", urls["dlq"],
        "--endpoint-url", h.endpoint, "--region", "us-east-1", "--json",
    )  # fmt: skip
    assert code == 1, err
    diff = orjson.loads(out)
    assert diff["events"] == 3
    assert diff["changes"] == [
        {
            "from": "critical",
            "to": "(none)",
            "events": 3,
            "old_rules": {"critical": 3},
            "new_rules": {},
        }
    ]
    assert await h.depth(urls["dlq"]) == (3, 0)
