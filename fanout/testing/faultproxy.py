"""Fault-injecting HTTP reverse proxy for SQS (AWS JSON 1.0 protocol), for tests.

The proxy listens on 127.0.0.1 (ephemeral port) in front of an SQS-compatible server
(moto's ``ThreadedMotoServer`` today, LocalStack later) and lets a test break SQS *on the
wire*, so the real botocore parser, retry handler and error factory run exactly as they
would against AWS::

    async with FaultProxy(moto_url) as proxy:
        proxy.add(ErrorResponse("SendMessageBatch", status=403, code="RequestThrottled"))
        proxy.add(FailEntries(select=lambda e: e["Id"] == "3", sender_fault=True))
        ...  # point the SQS client's endpoint_url at proxy.url

Faults are a list of composable :class:`FaultRule` objects, tried in insertion order.
A rule that matches a request wraps the rest of the chain (later rules, then the real
upstream) like a middleware: it may short-circuit (:class:`ErrorResponse`), delay
(:class:`Delay`), or rewrite the request and response around the upstream call
(:class:`FailEntries`), drop the connection (:class:`Reset`), or observe (:class:`Tap`).
:class:`During` limits a rule to a time window and :class:`RandomFaults` is a seeded random
schedule over other rules (:func:`sqs_faults` lists one of each fault the reliability
scenarios use).

Error wire format (checked against botocore 1.40 ``parsers.BaseJSONParser._do_error_parse``
and ``handlers._handle_sqs_compatible_error``). SQS is ``awsQueryCompatible``, so an error is::

    HTTP <status>
    x-amzn-query-error: <Code>;<Sender|Receiver>
    {"__type": "com.amazonaws.sqs#<ShapeName>", "message": "..."}

botocore reports ``Error.Code`` = ``<Code>`` from the header (only if the header splits on
``;`` into exactly two parts with a non-empty first part; otherwise it falls back to the
``__type`` suffix), ``Error.Type`` = ``Sender``/``Receiver``, and ``Error.QueryErrorCode`` =
``<ShapeName>``. The *exception class* is looked up by ``<ShapeName>``, so
``AWS.SimpleQueueService.NonExistentQueue`` must be sent with ``__type`` ``QueueDoesNotExist``
to raise ``client.exceptions.QueueDoesNotExist`` (see :data:`SQS_ERROR_SHAPES`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, TypeVar

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.0"
TARGET_PREFIX: Final = "AmazonSQS."
UNKNOWN_OPERATION: Final = "<unknown>"
INJECTED_MESSAGE: Final = "Injected by FaultProxy"

# Query-protocol error code -> JSON error shape name (the `__type`), from the SQS Smithy
# model's @awsQueryError traits. Codes not listed are sent with `__type` == code, which
# botocore surfaces as a plain ClientError with that Code.
SQS_ERROR_SHAPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct": "BatchEntryIdsNotDistinct",
        "AWS.SimpleQueueService.BatchRequestTooLong": "BatchRequestTooLong",
        "AWS.SimpleQueueService.EmptyBatchRequest": "EmptyBatchRequest",
        "AWS.SimpleQueueService.InvalidBatchEntryId": "InvalidBatchEntryId",
        "AWS.SimpleQueueService.MessageNotInflight": "MessageNotInflight",
        "AWS.SimpleQueueService.NonExistentQueue": "QueueDoesNotExist",
        "AWS.SimpleQueueService.PurgeQueueInProgress": "PurgeQueueInProgress",
        "AWS.SimpleQueueService.QueueDeletedRecently": "QueueDeletedRecently",
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest": "TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.UnsupportedOperation": "UnsupportedOperation",
        "KMS.AccessDeniedException": "KmsAccessDenied",
        "KMS.DisabledException": "KmsDisabled",
        "KMS.InvalidKeyUsageException": "KmsInvalidKeyUsage",
        "KMS.InvalidStateException": "KmsInvalidState",
        "KMS.NotFoundException": "KmsNotFound",
        "KMS.OptInRequired": "KmsOptInRequired",
        "KMS.ThrottlingException": "KmsThrottled",
        "QueueAlreadyExists": "QueueNameExists",
    }
)

# Never forwarded in either direction: hop-by-hop headers (RFC 9110 7.6.1) plus framing
# headers that aiohttp recomputes because the proxy may rewrite bodies. Host is *kept*:
# it is part of the SigV4 signed headers.
_STRIPPED_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",  # the upstream client session decompresses responses
    }
)


def _strip(headers: Mapping[str, str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in _STRIPPED_HEADERS:
            out.add(name, value)
    return out


@dataclass(frozen=True)
class SqsRequest:
    """One client request as seen by the rule chain (rules may derive modified copies)."""

    operation: str
    body: dict[str, Any]  # parsed JSON body; {} if the body was not a JSON object
    raw: bytes  # bytes forwarded upstream
    headers: CIMultiDict[str]  # already stripped of hop-by-hop headers
    method: str
    path_qs: str
    http: web.Request  # the underlying request

    @property
    def queue_url(self) -> str | None:
        url = self.body.get("QueueUrl")
        return url if isinstance(url, str) else None

    def with_body(self, body: dict[str, Any]) -> SqsRequest:
        """Copy with a re-serialized body.

        This invalidates the SigV4 payload hash. moto only checks signatures when IAM auth
        is enabled (``INITIAL_NO_AUTH_ACTION_COUNT``; off by default), so rewritten
        requests are accepted. Re-check this when pointing the proxy at LocalStack.
        """
        raw = json.dumps(body, separators=(",", ":")).encode()
        return replace(self, body=body, raw=raw)


@dataclass
class Reply:
    """An HTTP response on its way back to the client (rules may rewrite it)."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    # Not None: send only this many body bytes (0: not even the status line), then reset the
    # connection. The client cannot tell whether upstream applied the request.
    reset_after: int | None = None

    @classmethod
    def json(cls, status: int, payload: Mapping[str, Any], **headers: str) -> Reply:
        hdrs: CIMultiDict[str] = CIMultiDict(
            {"Content-Type": JSON_CONTENT_TYPE, "x-amzn-requestid": str(uuid.uuid4())}
        )
        hdrs.update(headers)
        return cls(status, hdrs, json.dumps(payload).encode())

    def parsed(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None if it is not one."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


Next = Callable[[SqsRequest], Awaitable[Reply]]
"""Continuation handed to a rule: the remaining rules, then the upstream server."""


# --------------------------------------------------------------------------------------
# Fault rules
# --------------------------------------------------------------------------------------


class FaultRule(ABC):
    """Base of all faults. Subclasses are dataclasses declaring these attributes.

    ``operation`` (None = any) and ``queue`` (substring of the body's ``QueueUrl``, None =
    any) select requests; ``times`` is the number of requests the rule may act on (None =
    unlimited) and ``hits`` how many it has acted on. A hit is counted only when the
    chain actually reaches the rule, so a rule shadowed by an earlier short-circuiting
    rule keeps its budget.
    """

    operation: str | None
    queue: str | None
    times: int | None
    hits: int

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, req: SqsRequest) -> bool:
        if self.operation is not None and req.operation != self.operation:
            return False
        if self.queue is not None:
            return req.queue_url is not None and self.queue in req.queue_url
        return True

    def claim(self, req: SqsRequest) -> bool:
        """Match and consume one unit of budget. No awaits: atomic within the loop."""
        if self.exhausted or not self.matches(req):
            return False
        self.hits += 1
        return True

    @abstractmethod
    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        """Produce the reply, calling ``call_next`` zero or more times."""


@dataclass
class ErrorResponse(FaultRule):
    """Answer with an SQS error instead of forwarding; upstream never sees the request."""

    operation: str | None
    status: int = 503
    code: str = "ServiceUnavailable"
    sender_fault: bool = False
    message: str = INJECTED_MESSAGE
    _: KW_ONLY
    queue: str | None = None
    times: int | None = 1
    # JSON shape name for `__type`; decides the botocore exception class. Defaults to
    # SQS_ERROR_SHAPES[code], else code.
    error_type: str | None = None
    hits: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if ";" in self.code:
            raise ValueError("code must not contain ';' (it breaks x-amzn-query-error)")

    def reply(self) -> Reply:
        shape = self.error_type or SQS_ERROR_SHAPES.get(self.code, self.code)
        fault = "Sender" if self.sender_fault else "Receiver"
        return Reply.json(
            self.status,
            {"__type": f"com.amazonaws.sqs#{shape}", "message": self.message},
            **{"x-amzn-query-error": f"{self.code};{fault}"},
        )

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        return self.reply()


@dataclass
class FailEntries(FaultRule):
    """Fail selected entries of a *Batch call inside an otherwise successful (200) reply.

    Selected entries are removed from the forwarded body, so upstream never applies them,
    and are appended to the reply's ``Failed`` list. If nothing is left to forward the
    upstream is not called. Only requests with at least one selected entry count as a hit.
    Works for SendMessageBatch, DeleteMessageBatch and ChangeMessageVisibilityBatch.
    """

    operation: str | None = "SendMessageBatch"
    code: str = "InternalError"
    sender_fault: bool = False
    select: Callable[[dict[str, Any]], bool] | None = None  # None = every entry
    max_entries: int | None = None
    message: str = INJECTED_MESSAGE
    _: KW_ONLY
    queue: str | None = None
    times: int | None = 1
    hits: int = field(default=0, init=False)

    def _split(self, req: SqsRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(kept, failed) entries of the request."""
        entries = req.body.get("Entries")
        if not isinstance(entries, list):
            return [], []
        kept: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            room = self.max_entries is None or len(failed) < self.max_entries
            if room and isinstance(entry, dict) and (self.select is None or self.select(entry)):
                failed.append(entry)
            else:
                kept.append(entry)
        return kept, failed

    def matches(self, req: SqsRequest) -> bool:
        return super().matches(req) and bool(self._split(req)[1])

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        kept, failed = self._split(req)
        injected = [
            {
                "Id": entry.get("Id"),
                "SenderFault": self.sender_fault,
                "Code": self.code,
                "Message": self.message,
            }
            for entry in failed
        ]
        if not kept:
            # An empty Entries list would be rejected with EmptyBatchRequest.
            return Reply.json(200, {"Successful": [], "Failed": injected})
        reply = await call_next(req.with_body({**req.body, "Entries": kept}))
        payload = reply.parsed()
        if reply.status != 200 or payload is None:
            return reply  # the whole call failed upstream; nothing to merge into
        payload["Failed"] = [*(payload.get("Failed") or []), *injected]
        payload.setdefault("Successful", [])
        reply.body = json.dumps(payload).encode()
        return reply


@dataclass
class Delay(FaultRule):
    """Sleep before passing the request on (to exercise client timeouts and slowness).

    ``after_upstream``: sleep after upstream answered instead, so the request *was* applied
    when the client times out (a latency spike on the way back). ``on_hold`` is called as the
    sleep starts: a test can act while the request is held (e.g. kill the client there).
    ``jitter``: each sleep is drawn uniformly within this fraction of ``seconds`` (seeded), a
    round trip that varies like a real one (the bench's added latency).
    """

    operation: str | None
    seconds: float
    _: KW_ONLY
    queue: str | None = None
    times: int | None = 1
    after_upstream: bool = False
    on_hold: Callable[[SqsRequest], None] | None = None
    jitter: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    hits: int = field(default=0, init=False)

    def _seconds(self) -> float:
        if not self.jitter:
            return self.seconds
        return self.seconds * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        if not self.after_upstream:
            self._hold(req)
            await asyncio.sleep(self._seconds())
            return await call_next(req)
        reply = await call_next(req)
        self._hold(req)
        await asyncio.sleep(self._seconds())
        return reply

    def _hold(self, req: SqsRequest) -> None:
        if self.on_hold is not None:
            self.on_hold(req)


@dataclass
class Reset(FaultRule):
    """Reset the TCP connection.

    ``mid_response`` (default): upstream applies the request, then the connection drops after
    half the response body, so the client sees a broken response to a call that happened.
    Otherwise the connection drops before anything is forwarded (an endpoint that is down).
    """

    operation: str | None = None
    mid_response: bool = True
    _: KW_ONLY
    queue: str | None = None
    times: int | None = 1
    hits: int = field(default=0, init=False)

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        if not self.mid_response:
            return Reply(0, CIMultiDict(), b"", reset_after=0)
        reply = await call_next(req)
        reply.reset_after = max(1, len(reply.body) // 2)
        return reply


@dataclass
class Tap(FaultRule):
    """No fault: shows each matching request (and later its reply) to callbacks, e.g. to record
    what upstream accepted or to time an action on a given operation."""

    operation: str | None = None
    on_request: Callable[[SqsRequest], None] | None = None
    on_reply: Callable[[SqsRequest, Reply], None] | None = None
    _: KW_ONLY
    queue: str | None = None
    times: int | None = None
    hits: int = field(default=0, init=False)

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        if self.on_request is not None:
            self.on_request(req)
        reply = await call_next(req)
        if self.on_reply is not None:
            self.on_reply(req, reply)
        return reply


@dataclass
class During(FaultRule):
    """``rule`` only inside a time window: from ``start`` to ``start + duration`` seconds after
    this wrapper was created (or :meth:`restart` was called), e.g. a target that throttles for
    30 s, or an endpoint that is down for 20 s and then comes back."""

    rule: FaultRule
    start: float = 0.0
    duration: float = math.inf
    _: KW_ONLY
    operation: str | None = None
    queue: str | None = None
    times: int | None = None
    hits: int = field(default=0, init=False)
    t0: float = field(default_factory=time.monotonic, init=False)

    def restart(self) -> None:
        self.t0 = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def active(self) -> bool:
        return self.start <= self.elapsed < self.start + self.duration

    @property
    def over(self) -> bool:
        return self.elapsed >= self.start + self.duration

    def matches(self, req: SqsRequest) -> bool:
        return self.active and super().matches(req) and self.rule.matches(req)

    def claim(self, req: SqsRequest) -> bool:
        if self.exhausted or not self.active or not super().matches(req):
            return False
        if not self.rule.claim(req):
            return False
        self.hits += 1
        return True

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        return await self.rule.apply(req, call_next)


def describe(rule: FaultRule) -> str:
    """Short label of a fault, for schedules' tallies: ``ErrorResponse(ThrottlingException)``."""
    detail = getattr(rule, "code", None)
    if isinstance(rule, FailEntries):
        fault = "Sender" if rule.sender_fault else "Receiver"
        detail = f"{rule.operation}:{rule.code};{fault}"
    elif isinstance(rule, Reset):
        detail = "mid-response" if rule.mid_response else "before-upstream"
    elif isinstance(rule, Delay):
        detail = f"{rule.seconds:g}s" + (" after-upstream" if rule.after_upstream else "")
    return f"{type(rule).__name__}({detail})" if detail else type(rule).__name__


@dataclass
class RandomFaults(FaultRule):
    """A seeded random schedule: each matching request is faulted with probability ``rate`` by
    one of ``faults`` (picked with ``weights`` among those whose own operation/queue filters
    match the request). The faults' ``times`` budgets are ignored; ``injected`` tallies what
    was applied (see :func:`describe`), ``seen`` the requests that were eligible."""

    faults: Sequence[FaultRule]
    rate: float = 0.1
    seed: int = 0
    _: KW_ONLY
    weights: Sequence[float] | None = None
    operation: str | None = None
    queue: str | None = None
    times: int | None = None
    hits: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)
    injected: collections.Counter[str] = field(default_factory=collections.Counter, init=False)
    _rng: random.Random = field(init=False, repr=False)
    _chosen: dict[int, FaultRule] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != len(self.faults):
            raise ValueError("weights must have one entry per fault")
        self._rng = random.Random(self.seed)

    def claim(self, req: SqsRequest) -> bool:
        if self.exhausted or not super().matches(req):
            return False
        indexes = [i for i, f in enumerate(self.faults) if f.matches(req)]
        if not indexes:
            return False
        self.seen += 1
        if self._rng.random() >= self.rate:
            return False
        weights = None if self.weights is None else [self.weights[i] for i in indexes]
        fault = self.faults[self._rng.choices(indexes, weights)[0]]
        # apply() runs right after claim() with no await in between: hand the choice over.
        self._chosen[id(req)] = fault
        self.injected[describe(fault)] += 1
        self.hits += 1
        return True

    async def apply(self, req: SqsRequest, call_next: Next) -> Reply:
        return await self._chosen.pop(id(req)).apply(req, call_next)


def sqs_faults(*, spike_seconds: float | None = None) -> list[FaultRule]:
    """One of every fault the reliability scenarios inject (``times=None``: for schedules).

    ``spike_seconds``: add a latency spike of that length after upstream applied the request
    (pick it beyond the client's read timeout)."""
    faults: list[FaultRule] = [
        ErrorResponse(None, 500, "InternalError", times=None),
        ErrorResponse(None, 503, "ServiceUnavailable", times=None),
        ErrorResponse(None, 400, "ThrottlingException", True, times=None),
        ErrorResponse(None, 403, "RequestThrottled", True, times=None),
        ErrorResponse(None, 400, "KMS.ThrottlingException", True, times=None),
        FailEntries("SendMessageBatch", "InternalError", False, max_entries=3, times=None),
        FailEntries("SendMessageBatch", "InvalidParameterValue", True, max_entries=1, times=None),
        FailEntries("DeleteMessageBatch", "InternalError", False, max_entries=3, times=None),
        # An expired receipt handle: the message is not deleted and comes back.
        FailEntries(
            "DeleteMessageBatch", "ReceiptHandleIsInvalid", True, max_entries=2, times=None
        ),
        Reset(None, mid_response=True, times=None),
        Reset(None, mid_response=False, times=None),
    ]
    if spike_seconds is not None:
        faults.append(Delay(None, spike_seconds, after_upstream=True, times=None))
    return faults


# --------------------------------------------------------------------------------------
# Proxy
# --------------------------------------------------------------------------------------

R = TypeVar("R", bound=FaultRule)


class FaultProxy:
    """Reverse proxy on 127.0.0.1 that applies :class:`FaultRule` objects to SQS traffic.

    ``calls`` counts requests per operation and ``requests`` records (operation, JSON body)
    as the client sent them; ``forwarded`` records what actually reached the upstream.
    """

    # Batches may carry up to 1 MiB of payload plus JSON/base64 overhead; aiohttp's
    # default client_max_size (1 MiB) would reject legitimate large batches.
    MAX_BODY: Final = 16 * 1024 * 1024
    # Bounded so stop() does not wait aiohttp's default 60 s for in-flight Delay rules or
    # long polls; tests are tearing down at that point anyway.
    SHUTDOWN_TIMEOUT: Final = 1.0

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self.calls: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.forwarded: list[tuple[str, dict[str, Any]]] = []
        self.rules: list[FaultRule] = []
        self._url: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FaultProxy is not started")
        return self._url

    # -- rules and history -------------------------------------------------------------

    def add(self, rule: R) -> R:
        """Append a rule (rules are tried in insertion order) and return it for `.hits`."""
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove all rules; traffic history is kept."""
        self.rules.clear()

    def reset(self) -> None:
        """Remove all rules and forget recorded traffic."""
        self.clear()
        self.calls.clear()
        self.requests.clear()
        self.forwarded.clear()

    def bodies(self, operation: str) -> list[dict[str, Any]]:
        """JSON bodies of the client's requests for ``operation``, oldest first."""
        return [body for op, body in self.requests if op == operation]

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        if self._runner is not None:
            raise RuntimeError("FaultProxy already started")
        app = web.Application(client_max_size=self.MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        # No pool limit: the proxy must not become a hidden concurrency bottleneck for
        # many parallel long polls. Default 5-minute total timeout covers 20 s long polls.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._runner = runner
        self._url = f"http://{host}:{port}"
        return self._url

    async def stop(self) -> None:
        runner, session = self._runner, self._session
        self._runner = self._session = self._url = None
        if runner is not None:
            await runner.cleanup()  # first, so no handler is left using the session
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- request path ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        operation = target.removeprefix(TARGET_PREFIX) if target else UNKNOWN_OPERATION
        req = SqsRequest(
            operation=operation,
            body=_json_object(raw),
            raw=raw,
            headers=_strip(request.headers),
            method=request.method,
            path_qs=request.raw_path,
            http=request,
        )
        self.calls[operation] += 1
        self.requests.append((operation, req.body))
        # Snapshot so add()/clear() during an in-flight request cannot reorder its chain.
        reply = await self._dispatch(req, tuple(self.rules), 0)
        if reply.reset_after is not None:
            return await _reset(request, reply)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def _dispatch(self, req: SqsRequest, rules: tuple[FaultRule, ...], start: int) -> Reply:
        for i in range(start, len(rules)):
            rule = rules[i]
            if rule.claim(req):

                async def call_next(nreq: SqsRequest, _after: int = i + 1) -> Reply:
                    return await self._dispatch(nreq, rules, _after)

                return await rule.apply(req, call_next)
        return await self._forward(req)

    async def _forward(self, req: SqsRequest) -> Reply:
        if self._session is None:
            raise RuntimeError("FaultProxy is not started")
        self.forwarded.append((req.operation, req.body))
        try:
            async with self._session.request(
                req.method,
                self.upstream_url + req.path_qs,
                headers=req.headers,  # includes the client's Host, as signed
                data=req.raw,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return Reply(resp.status, _strip(resp.headers), body)
        except aiohttp.ClientError as exc:
            # Surface an unreachable upstream as a gateway error, like a real load balancer.
            return Reply.json(502, {"__type": "BadGateway", "message": repr(exc)})


async def _reset(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Send ``reply.reset_after`` bytes of the reply (none: not even the status), then abort."""
    transport = request.transport
    response = web.StreamResponse(status=reply.status or 200, headers=reply.headers)
    if reply.reset_after:
        response.content_length = len(reply.body)
        await response.prepare(request)
        await response.write(reply.body[: reply.reset_after])
    if transport is not None:
        transport.abort()
    return response  # aiohttp finds the connection closed and writes nothing more


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = [
    "SQS_ERROR_SHAPES",
    "Delay",
    "During",
    "ErrorResponse",
    "FailEntries",
    "FaultProxy",
    "FaultRule",
    "Next",
    "RandomFaults",
    "Reply",
    "Reset",
    "SqsRequest",
    "Tap",
    "describe",
    "sqs_faults",
]
