"""Credential outage on LocalStack: 15 s of ``400 ExpiredToken`` on every SendMessageBatch.

    python3 bench/localstack.py start
    .venv/bin/python -m bench.credential_outage --out bench/results/credential_outage/run.json

Issue 22's scenario: ``python -m fanout run --exit-when-idle 25`` drains a source queue that
2,000 events trickle into (100/s), through the fault proxy (fanout/testing/faultproxy.py),
which answers every SendMessageBatch (targets and DLQ) with ``400 ExpiredToken`` for
``--window`` seconds from ``--window-start`` seconds after fanout's first SendMessageBatch
(not after launch: a loaded machine delays the start): a web-identity or
assumed-role credential that expired before its refresh landed.

Reported per run: SendMessageBatch calls refused in the window (the fault proxy's count),
DLQ records by reason, copies not delivered when fanout exited, source messages still in the
queue (invisible: held or abandoned) at exit, and fanout's own summary counters.

``--baseline-ref REF`` (default ``main``) runs that commit's fanout too, in the same run,
interleaved (baseline, candidate, baseline, ... for ``--repeats``): its tree is extracted with
``git archive`` into a temporary directory and put first on the child's PYTHONPATH. ``--no-
baseline`` runs the working tree only. Queues are uniquely named and deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.procs import PY, child_env
from fanout.testing.accounting import (
    LOCALSTACK_URL,
    account,
    client,
    depth,
    localstack_up,
    make_events,
    make_fleet,
    publish,
)
from fanout.testing.faultproxy import During, FaultProxy, SqsRequest, Tap, expired_token

ROOT = Path(__file__).resolve().parent.parent

# The defaults of a deployment (the test fleet's settings are tuned for quick tests).
SETTINGS: dict[str, Any] = {
    "visibility_timeout_seconds": 60,
    "linger_ms": 20,
    "delete_linger_ms": 100,
    "retry_base_delay_ms": 100,
    "retry_max_delay_ms": 5000,
    "shutdown_timeout_seconds": 30,
}


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "?"


def extract(ref: str, into: Path) -> Path:
    """``ref``'s tree (git archive) under ``into``: a fanout to run as the baseline."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def one_run(
    variant: str, src: Path, args: argparse.Namespace, tmp: Path, seed: int
) -> dict[str, Any]:
    endpoint = args.endpoint
    slug = "before" if variant.startswith("before") else "after"
    async with client(endpoint) as sqs:
        fleet = await make_fleet(sqs, endpoint, tmp, f"cred-{slug}")
        try:
            events = make_events(args.events, seed=seed)
            async with FaultProxy(endpoint) as proxy:
                # The window opens --window-start s after fanout's first SendMessageBatch, so a
                # slow start on a loaded machine does not shift it past the traffic.
                window = During(expired_token(), start=math.inf, duration=args.window)

                def open_window(request: SqsRequest) -> None:
                    if window.start == math.inf:
                        window.start = args.window_start
                        window.restart()

                proxy.add(Tap("SendMessageBatch", on_request=open_window))
                proxy.add(window)
                summary_path = tmp / f"summary-{slug}-{seed}.json"
                fanout_env = fleet.env(proxy.url, **SETTINGS)
                env = child_env({k: v for k, v in fanout_env.items() if k.startswith("FANOUT_")})
                env["PYTHONPATH"] = str(src)
                argv = [PY, "-m", "fanout", "run", "--exit-when-idle", str(args.idle)]
                argv += ["--summary-json", str(summary_path), "--log-level", "WARNING"]
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    cwd=tmp,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                started = time.monotonic()
                publisher = asyncio.create_task(publish(sqs, fleet.source, events, rate=args.rate))
                _, stderr = await proc.communicate()
                wall = time.monotonic() - started
                visible, invisible = await depth(sqs, fleet.source)
                publisher.cancel()
                refused = window.hits
            summary = orjson.loads(summary_path.read_bytes()) if summary_path.exists() else {}
            result = await account(f"credential outage ({variant})", fleet, events)
        finally:
            await fleet.delete()
    delivered = sum(result.delivered.values())
    reasons: dict[str, int] = {}
    for record in result.dlq_records:
        key = f"{record['reason']}:{record['error_code']}"
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "variant": variant,
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        "events": len(events),
        "expected_copies": result.expected_pairs,
        "refused_calls_in_window": refused,
        "dlq_records": len(result.dlq_records),
        "dlq_reasons": reasons,
        "undelivered_copies": result.expected_pairs - delivered,
        "duplicated_copies": result.duplicated,
        "source_visible_at_exit": visible,
        "source_invisible_at_exit": invisible,
        "fanout_send_calls": summary.get("sqs_calls", {}).get("SendMessageBatch"),
        "fanout_abandoned": summary.get("abandoned"),
        "fanout_credential_errors": summary.get("credential_errors"),
        "fanout_errors": summary.get("errors"),
        "stderr_tail": stderr.decode(errors="replace").strip().splitlines()[-5:],
    }


def render(runs: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"credential outage: {meta['window']:.0f} s of ExpiredToken on every SendMessageBatch "
        f"from {meta['window_start']:.0f} s after the first send, {meta['events']} events at "
        f"{meta['rate']:.0f}/s, "
        f"--exit-when-idle {meta['idle']:.0f}; loadavg {meta['loadavg_before']} -> "
        f"{meta['loadavg_after']}",
        "",
        "| run | refused calls in window | DLQ records | undelivered copies (of expected) "
        "| source left at exit (invisible) | fanout SendMessageBatch calls | abandoned |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['variant']} | {run['refused_calls_in_window']} | {run['dlq_records']} "
            f"{run['dlq_reasons'] or ''} | {run['undelivered_copies']} "
            f"(of {run['expected_copies']}) | "
            f"{run['source_visible_at_exit'] + run['source_invisible_at_exit']} "
            f"({run['source_invisible_at_exit']}) | {run['fanout_send_calls']} "
            f"| {run['fanout_abandoned']} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    if not localstack_up(args.endpoint):
        raise SystemExit(f"LocalStack is not reachable at {args.endpoint}")
    meta: dict[str, Any] = {
        "window": args.window,
        "window_start": args.window_start,
        "events": args.events,
        "rate": args.rate,
        "idle": args.idle,
        "settings": SETTINGS,
        "baseline_ref": None if args.no_baseline else args.baseline_ref,
        "loadavg_before": loadavg(),
    }
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cred-outage-") as name:
        tmp = Path(name)
        variants: list[tuple[str, Path]] = []
        if not args.no_baseline:
            base = tmp / "baseline"
            base.mkdir()
            variants.append((f"before ({args.baseline_ref})", extract(args.baseline_ref, base)))
        variants.append(("after (this tree)", ROOT))
        for repeat in range(args.repeats):
            order = variants if repeat % 2 == 0 else variants[::-1]
            for variant, src in order:
                run = await one_run(variant, src, args, tmp, seed=100 + repeat)
                runs.append(run)
                print(orjson.dumps(run).decode(), flush=True)
    meta["loadavg_after"] = loadavg()
    text = render(runs, meta)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"meta": meta, "runs": runs}
        args.out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        args.out.with_suffix(".md").write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=os.environ.get("LOCALSTACK_ENDPOINT", LOCALSTACK_URL))
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s published")
    parser.add_argument("--window", type=float, default=15.0, help="seconds of ExpiredToken")
    parser.add_argument(
        "--window-start",
        type=float,
        default=2.0,
        help="seconds after fanout's first SendMessageBatch it begins",
    )
    parser.add_argument("--idle", type=float, default=25.0, help="--exit-when-idle seconds")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
