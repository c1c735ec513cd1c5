"""Micro-benchmark of the SQS data-plane client: SigV4 signers, then whole calls.

    .venv/bin/python -m bench.client_call signers [--n 3000] [--repeat 7]
    .venv/bin/python -m bench.client_call calls [--calls 400] [--repeat 5] [--uvloop] [--json F]

``signers``: µs per signature of one SendMessageBatch-sized POST (10 x 1 KB body): botocore's
``SigV4Auth`` (with the ``AWSRequest`` it needs), fanout's ``fanout.aws.sigv4.SigV4Signer``, and
awscrt's signer when it is installed (``pip install awscrt``; aws-sdk-signers needs Python >= 3.12).

``calls``: CPU µs of the client process per SendMessageBatch of 10 x 1 KB, aiobotocore (as
``fanout.aws.client`` configures it) vs ``LeanSQSClient``, in the same run with interleaved
repeats, against a minimal aiohttp server in ANOTHER process on 127.0.0.1 that answers success
(so its CPU is not counted); plus the CPU of MD5OfBody verification for a receive of 10
messages. Prints the 1-minute load average before and after: the machine is shared, compare
numbers within one run. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BODY_1KB = "x" * 1024
FIXED_TIMESTAMP = "20240517T134507Z"
ACCESS_KEY, SECRET_KEY, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok"


def _batch_body() -> bytes:
    entries = [{"Id": str(i), "MessageBody": BODY_1KB} for i in range(10)]
    return json.dumps({"QueueUrl": "http://127.0.0.1/000000000000/q", "Entries": entries}).encode()


def _json_headers() -> dict[str, str]:
    return {
        "X-Amz-Target": "AmazonSQS.SendMessageBatch",
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-query-mode": "true",
    }


def _per_call_us(fn: Callable[[], Any], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def signers(n: int, repeat: int) -> dict[str, float]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from fanout.aws.sigv4 import SigV4Signer

    body = _batch_body()
    url = "https://sqs.eu-west-1.amazonaws.com/"
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, TOKEN)
    botocore_signer = SigV4Auth(credentials, "sqs", "eu-west-1")

    def botocore_sign() -> None:
        request = AWSRequest(method="POST", url=url, data=body, headers=_json_headers())
        botocore_signer.add_auth(request)

    lean = SigV4Signer("sqs")

    def lean_sign() -> None:
        headers = {"Host": "sqs.eu-west-1.amazonaws.com", **_json_headers()}
        lean.sign(
            headers,
            method="POST",
            path="/",
            body=body,
            region="eu-west-1",
            timestamp=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            token=TOKEN,
        )

    results = {"botocore SigV4Auth": botocore_sign, "fanout SigV4Signer": lean_sign}
    try:
        from awscrt import auth as crt_auth
        from awscrt import http as crt_http

        crt_credentials = crt_auth.AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY, TOKEN)
        config = crt_auth.AwsSigningConfig(
            algorithm=crt_auth.AwsSigningAlgorithm.V4,
            signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=crt_credentials,
            region="eu-west-1",
            service="sqs",
        )

        def crt_sign() -> None:
            # As botocore's CrtSigV4Auth does it: the body as a stream, hashed by the CRT;
            # the result is a Future from the CRT's own thread (an asyncio caller must wrap it).
            request = crt_http.HttpRequest(
                "POST",
                "/",
                crt_http.HttpHeaders(
                    [("Host", "sqs.eu-west-1.amazonaws.com"), *_json_headers().items()]
                ),
                io.BytesIO(body),
            )
            crt_auth.aws_sign_request(request, config).result()

        results["awscrt aws_sign_request"] = crt_sign
    except ImportError:
        pass
    samples: dict[str, list[float]] = {name: [] for name in results}
    for _ in range(repeat):  # interleaved: each signer sees the same machine load
        for name, fn in results.items():
            samples[name].append(_per_call_us(fn, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_sign = sub.add_parser("signers")
    p_sign.add_argument("--n", type=int, default=3000)
    p_sign.add_argument("--repeat", type=int, default=7)
    p_calls = sub.add_parser("calls")
    p_calls.add_argument("--calls", type=int, default=400)
    p_calls.add_argument("--repeat", type=int, default=5)
    p_calls.add_argument("--json", type=Path, default=None, help="write the numbers here")
    p_calls.add_argument("--uvloop", action="store_true", help="run on uvloop (bench extra)")
    p_calls.add_argument(
        "--baseline-lean",
        type=Path,
        default=None,
        help="also measure the lean client of this lean.py (e.g. `git show main:fanout/aws/"
        "lean.py > /tmp/lean_main.py`): a change's cost as a ratio in the same run",
    )
    args = parser.parse_args()
    print(_load())
    if args.command == "signers":
        for name, us in signers(args.n, args.repeat).items():
            print(f"{name:28s} {us:8.1f} µs CPU per signature (median of {args.repeat})")
    else:
        if args.uvloop:  # as fanout runs when its [fast] extra is installed
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                results = runner.run(calls(args.calls, args.repeat, args.baseline_lean))
            results["loop"] = "uvloop"
        else:
            results = asyncio.run(calls(args.calls, args.repeat, args.baseline_lean))
            results["loop"] = "asyncio"
        print(json.dumps(results, indent=2))
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(_load())


DUMMY = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


def _serve(port_out: Any) -> None:
    """The loopback SQS stand-in (its own process): every call succeeds at once."""
    from aiohttp import web

    bodies = [f"{i:04d}" + "y" * 1020 for i in range(10)]
    messages = [
        {
            "MessageId": f"m{i}",
            "ReceiptHandle": f"r{i}",
            "MD5OfBody": hashlib.md5(b.encode(), usedforsecurity=False).hexdigest(),
            "Body": b,
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        }
        for i, b in enumerate(bodies)
    ]
    receive = json.dumps({"Messages": messages}).encode()

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if request.headers["X-Amz-Target"].endswith("ReceiveMessage"):
            payload = receive
        else:
            ok = [
                {"Id": e["Id"], "MessageId": "s", "MD5OfMessageBody": "0" * 32}
                for e in body["Entries"]
            ]
            payload = json.dumps({"Successful": ok, "Failed": []}).encode()
        return web.Response(body=payload, content_type="application/x-amz-json-1.0")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _baseline_lean(path: Path, endpoint: str) -> Any:
    """The LeanSQSClient of another revision's lean.py (same fanout package otherwise)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("lean_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline-lean {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return await module.open_lean_client(
        endpoint_url=endpoint,
        region="us-east-1",
        max_pool_connections=64,
        connect_timeout=5.0,
        read_timeout=30.0,
        credentials=DUMMY,
    )


async def calls(n: int, repeat: int, baseline: Path | None = None) -> dict[str, Any]:
    from fanout.aws.client import create_clients
    from fanout.config import Settings

    here, there = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(there,), daemon=True)
    server.start()
    try:
        port = here.recv()
        endpoint = f"http://127.0.0.1:{port}"
        url = f"{endpoint}/000000000000/q"
        entries = [{"Id": str(i), "MessageBody": BODY_1KB} for i in range(10)]
        clients: dict[str, Any] = {}
        async with contextlib.AsyncExitStack() as stack:
            for kind in ("sdk", "lean"):
                settings = Settings(endpoint_url=endpoint, region="us-east-1", sqs_client=kind)
                _, clients[kind] = await stack.enter_async_context(
                    create_clients(settings, **DUMMY)
                )
            if baseline is not None:
                lean = await _baseline_lean(baseline, endpoint)
                clients["lean-baseline"] = await stack.enter_async_context(lean)
            cpu: dict[str, list[float]] = {
                f"{k} {op}": [] for op in ("send", "receive") for k in clients
            }
            for client in clients.values():  # warm up: connections, caches, first imports
                for _ in range(20):
                    await client.send_message_batch(QueueUrl=url, Entries=entries)
                    await client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            for _ in range(repeat):  # interleaved: both clients see the same machine load
                for kind, client in clients.items():
                    start = time.process_time()
                    for _ in range(n):
                        await client.send_message_batch(QueueUrl=url, Entries=entries)
                    cpu[f"{kind} send"].append((time.process_time() - start) / n * 1e6)
                    start = time.process_time()
                    for _ in range(n):
                        await client.receive_message(
                            QueueUrl=url,
                            MaxNumberOfMessages=10,
                            WaitTimeSeconds=20,
                            VisibilityTimeout=60,
                            MessageAttributeNames=["All"],
                        )
                    cpu[f"{kind} receive"].append((time.process_time() - start) / n * 1e6)
            md5 = _md5_cost(clients["lean"], n * 10)
    finally:
        server.kill()
    return {
        "calls_per_sample": n,
        "repeats": repeat,
        "us_cpu_per_call_median": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
        "us_cpu_per_call_samples": {k: [round(x, 1) for x in v] for k, v in cpu.items()},
        "md5_verify_us_per_receive_of_10x1KB": round(md5, 2),
        **_ratios(cpu),
    }


def _ratios(cpu: dict[str, list[float]]) -> dict[str, Any]:
    """lean / lean-baseline per repeat (same run, interleaved), when a baseline was measured."""
    if "lean-baseline send" not in cpu:
        return {}
    out = {}
    for op in ("send", "receive"):
        pairs = zip(cpu[f"lean {op}"], cpu[f"lean-baseline {op}"], strict=True)
        ratios = [a / b for a, b in pairs]
        out[op] = {"median": round(statistics.median(ratios), 3), "samples": ratios}
    return {"lean_vs_baseline_ratio": out}


def _md5_cost(lean: Any, n: int) -> float:
    """CPU of MD5OfBody verification alone for one receive of 10 x 1 KB messages."""
    bodies = [f"{i:04d}" + "y" * 1020 for i in range(10)]
    messages = [
        {"Body": b, "MD5OfBody": hashlib.md5(b.encode(), usedforsecurity=False).hexdigest()}
        for b in bodies
    ]
    samples = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            for message in messages:
                lean._verify(message)
        samples.append((time.process_time() - start) / n * 1e6)
    return statistics.median(samples)


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    main()
