"""``python -m fanout run`` as a user runs it: exit codes, one-line errors, drain mode, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fanout.aws.urls import queue_name
from fanout.testing.faultproxy import ErrorResponse, FaultProxy
from tests.support.harness import Harness, dumps, ids_of, run_fanout_cli, simplified

pytestmark = pytest.mark.integration

RULES = """
targets:
  critical: {{queue_url: "{critical}"}}
  standard: {{queue_url: "{standard}"}}
rules:
  - id: critical
    condition: detail.tags.priority == 'critical'
    targets: [critical]
  - id: standard
    condition: detail.channel == 'voice' && detail.outcome == 'completed'
    targets: [standard]
"""


async def fanout(
    *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), timeout: float = 60
) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return await run_fanout_cli("run", *args, env={**environment, **(env or {})}, timeout=timeout)


async def queues(h: Harness) -> dict[str, str]:
    urls = {name: await h.queue(name) for name in ("source", "dlq", "critical", "standard")}
    urls["rules"] = str(h.rules(RULES.format(**urls)))
    return urls


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("fanout: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


async def test_no_source_queue_points_to_local() -> None:
    code, _, err = await fanout()
    assert code == 2
    line = one_line_error(err)
    assert "FANOUT_SOURCE_QUEUE_URL" in line and "--local" in line


async def test_missing_queue_names_queue_and_variable(harness: Harness, moto_endpoint: str) -> None:
    urls = await queues(harness)
    missing = urls["source"] + "-gone"
    code, _, err = await fanout(
        "--rules",
        urls["rules"],
        "--endpoint-url",
        moto_endpoint,
        env={"FANOUT_SOURCE_QUEUE_URL": missing},
    )
    assert code == 2
    line = one_line_error(err)
    assert missing in line and "does not exist" in line and "FANOUT_SOURCE_QUEUE_URL" in line


async def test_missing_target_queue_names_rules_file(harness: Harness, moto_endpoint: str) -> None:
    urls = await queues(harness)
    await harness.sqs.delete_queue(QueueUrl=urls["standard"])
    code, _, err = await fanout(
        "--rules",
        urls["rules"],
        "--endpoint-url",
        moto_endpoint,
        "--source-queue-url",
        urls["source"],
    )
    assert code == 2
    line = one_line_error(err)
    assert "target 'standard'" in line and urls["rules"] in line


async def test_unreachable_endpoint(harness: Harness) -> None:
    """Transient start-up errors are retried, but a closed port still ends the start quickly."""
    urls = await queues(harness)
    started = time.monotonic()
    code, _, err = await fanout(
        "--rules",
        urls["rules"],
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--source-queue-url",
        urls["source"],
    )
    assert code == 2
    assert "unreachable" in one_line_error(err)
    assert time.monotonic() - started < 30


async def test_bad_rules_file_stops_the_start(tmp_path: Path, moto_endpoint: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "targets:\n  a: {queue_url: 'http://127.0.0.1/q'}\n"
        "rules:\n  - id: slow\n    condition: detail.duration_ms > 120000\n    targets: [a]\n"
    )
    code, _, err = await fanout(
        "--rules",
        str(rules),
        "--endpoint-url",
        moto_endpoint,
        "--source-queue-url",
        "http://127.0.0.1/src",
    )
    assert code == 2
    line = one_line_error(err)
    assert str(rules) in line and "rule 'slow'" in line and "`120000`" in line


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("FANOUT_POLLERS", "many"),
        ("FANOUT_MAX_IN_FLIGHT", "-1"),
        ("FANOUT_ENDPOINT_URL", "localhost:4566"),
        ("GENESYS_SOURCE_QUEUE_URL", "genesys-events"),
    ],
)
async def test_invalid_env_value(var: str, value: str) -> None:
    env = {"FANOUT_SOURCE_QUEUE_URL": "http://127.0.0.1:9/q", var: value}
    if var.startswith("GENESYS_"):
        del env["FANOUT_SOURCE_QUEUE_URL"]
    code, _, err = await fanout(env=env)
    assert code == 2
    line = one_line_error(err)
    assert var.replace("GENESYS_", "FANOUT_") in line and repr(value) in line


async def test_no_region_is_one_clear_line(harness: Harness) -> None:
    urls = await queues(harness)
    code, _, err = await fanout(
        "--rules",
        urls["rules"],
        "--source-queue-url",
        "http://127.0.0.1:9/q",
        unset=("AWS_DEFAULT_REGION", "AWS_REGION"),
    )
    assert code == 2
    assert "no AWS region" in one_line_error(err)


async def test_drain_mode_with_original_env_names(harness: Harness, tmp_path: Path) -> None:
    h = harness
    urls = await queues(h)
    events = [simplified("critical", channel="chat") for _ in range(7)]
    events += [simplified("low") for _ in range(5)]  # standard
    events += [simplified("low", channel="fax", outcome="x") for _ in range(3)]  # unmatched
    await h.send(urls["source"], [dumps(e) for e in events] + ["{broken"])
    summary_path = tmp_path / "summary.json"
    code, out, err = await fanout(
        "--rules",
        urls["rules"],
        "--exit-when-idle",
        "1",
        "--summary-json",
        str(summary_path),
        "--wait-time-seconds",
        "1",
        "--pollers",
        "1",  # exact counts: see tests/harness.py
        env={
            "GENESYS_SOURCE_QUEUE_URL": urls["source"],
            "GENESYS_DLQ_URL": urls["dlq"],
            "FANOUT_ENDPOINT_URL": h.endpoint,
            "FANOUT_MAX_POLLERS": "1",
        },
    )
    assert code == 0, err
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    assert summary["received"] == 16 and summary["deleted"] == 16
    assert summary["per_target"] == {"critical": 7, "standard": 5}
    assert summary["per_rule"] == {"critical": 7, "standard": 5}
    assert summary["unmatched"] == 3
    assert summary["dlq"] == {"invalid_json": 1}
    assert summary["events_per_second"] > 0
    assert "fanout summary" in out and "critical=7" in out
    assert len(ids_of(await h.drain(urls["critical"]))) == 7


async def test_sigterm_stops_gracefully(harness: Harness) -> None:
    h = harness
    urls = await queues(h)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fanout",
        "run",
        "--rules",
        urls["rules"],
        "--shutdown-timeout-seconds",
        "5",
        env={
            **os.environ,
            "FANOUT_SOURCE_QUEUE_URL": urls["source"],
            "FANOUT_ENDPOINT_URL": h.endpoint,
            # moto's ReceiveMessage has no lock: concurrent pollers can get a message twice
            # (at-least-once, as SQS allows); one poller keeps the delivered ids exact.
            "FANOUT_POLLERS": "1",
            "FANOUT_MAX_POLLERS": "1",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        events = [simplified("critical", channel="chat") for _ in range(20)]
        await h.send(urls["source"], [dumps(e) for e in events])
        delivered: list[str] = []
        for _ in range(200):
            delivered += ids_of(await h.drain(urls["critical"]))
            if len(delivered) == len(events):
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert sorted(delivered) == sorted(e["id"] for e in events)
    assert "SIGTERM received" in err.decode()
    assert "received     20" in out.decode()
    assert await h.depth(urls["source"]) == (0, 0)


async def test_access_denied_at_start(harness: Harness, moto_endpoint: str) -> None:
    urls = await queues(harness)
    async with FaultProxy(moto_endpoint) as proxy:
        proxy.add(
            ErrorResponse(
                "GetQueueAttributes",
                status=403,
                code="AccessDenied",
                sender_fault=True,
                queue=queue_name(urls["dlq"]),
                times=None,
            )
        )
        code, _, err = await fanout(
            "--rules",
            urls["rules"],
            "--endpoint-url",
            proxy.url,
            "--source-queue-url",
            urls["source"],
            "--dlq-url",
            urls["dlq"],
        )
    assert code == 2
    line = one_line_error(err)
    assert "DLQ" in line and "access denied" in line and "FANOUT_DLQ_URL" in line


async def test_no_credentials_is_one_clear_line_in_bounded_time(harness: Harness) -> None:
    """Credentials come only from the standard provider chain; with none, one line, exit 2."""
    urls = await queues(harness)
    started = time.monotonic()
    code, _, err = await fanout(
        "--rules",
        urls["rules"],
        "--endpoint-url",
        harness.endpoint,
        "--source-queue-url",
        urls["source"],
        env={
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        unset=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    )
    assert code == 2
    assert "credentials" in one_line_error(err).lower()
    assert time.monotonic() - started < 30


async def test_local_without_moto_names_the_extra() -> None:
    """The runtime install has no moto: `fanout run --local` says which extra to install."""
    script = (
        "import sys; sys.modules['moto'] = None  # as if `pip install fanout` (no extras)\n"
        "from fanout.cli import main; sys.exit(main(['run', '--local', '--events', '1']))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, err.decode()
    assert "pip install 'fanout[local]'" in one_line_error(err.decode())
