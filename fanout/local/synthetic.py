"""Seeded, reproducible synthetic Genesys Cloud events as EventBridge delivers them to SQS.

The SQS message body is the whole EventBridge envelope serialised as JSON. Four families are
produced (plus malformed bodies for the DLQ path):

* conversation detail events (``v2.detail.events.conversation.{id}.<step>``), emitted by a pool of
  concurrently "active" conversations that each walk a realistic lifecycle (customer.start ->
  acd.start -> acd.end -> user.start -> user.end -> customer.end -> wrapup -> acw, abandons,
  flow-outs, outbound campaign calls ...), so ids, media type, queue and division stay coherent
  across the events of one conversation;
* audit events (``v2.audits.entitytype.{id}.entityid.{id}``);
* presence events (``v2.users.{id}.presence``);
* the project's original simplified shape (``source: genesys.cloud``, ``Interaction Completed``);
* ``catalog``: every other topic of the Genesys topic catalog (flow and voicemail detail events,
  routing status, activity, user and queue conversations, analytics), each body filled from the
  catalog's fields and enum values (fanout.genesys.sample). A small share of the demo mix, none
  of the default (bench) mix.

Field names, types and enum values are the catalog's (fanout/genesys/catalog.json, generated
from the official SDK's notification models): ``tests/unit/local`` checks every event against
its topic there. The generator is pure: no I/O, no wall clock unless a ``clock``
callable is passed, and everything random comes from one ``random.Random(seed)``, so the same seed
yields a byte-identical sequence of bodies.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Final, Literal, TypeVar

import orjson

from fanout.genesys.catalog import Catalog, Topic
from fanout.genesys.sample import sample_body

__all__ = [
    "BASE_TIME",
    "DEFAULT_ACCOUNT",
    "DEFAULT_MIX",
    "DEFAULT_ORG_ID",
    "DEMO_MIX",
    "DIVISIONS",
    "FAMILIES",
    "MALFORMED_KINDS",
    "QUEUES",
    "WRAPUP_CODES",
    "Family",
    "GenesysEventGenerator",
    "MalformedKind",
    "Mix",
    "stamp",
    "uuid4_from_bits",
]

Family = Literal["conversation", "audit", "presence", "simplified", "catalog", "malformed"]
MalformedKind = Literal[
    "not_json", "truncated", "array", "missing_detail", "detail_string", "bad_duration"
]
FAMILIES: Final[tuple[Family, ...]] = (
    "conversation",
    "audit",
    "presence",
    "simplified",
    "catalog",
    "malformed",
)
MALFORMED_KINDS: Final[tuple[MalformedKind, ...]] = (
    "not_json",
    "truncated",
    "array",
    "missing_detail",
    "detail_string",
    "bad_duration",
)

_Json = dict[str, Any]
_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------
# Fixed reference data. Ids are uuid5 of a name so they are stable across seeds and releases:
# routing rules and demo configs can hard-code them.
# ---------------------------------------------------------------------------------------------

_NS: Final = uuid.uuid5(uuid.NAMESPACE_DNS, "synthetic.fanout.invalid")


def _fixed_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}/{name}"))


BASE_TIME: Final = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
_BASE_MS: Final = int(BASE_TIME.timestamp()) * 1000
DEFAULT_ORG_ID: Final = _fixed_id("org", "acme-contact-center")
DEFAULT_ACCOUNT: Final = "123456789012"
DEFAULT_SOURCE_SUFFIX: Final = "genesys-prod-events"

_DIVISION_NAMES: Final = ("Home", "Customer Care", "Sales", "Financial Services", "Partners")
DIVISIONS: Final[tuple[tuple[str, str], ...]] = tuple(
    (n, _fixed_id("division", n)) for n in _DIVISION_NAMES
)

# (name, division index, relative traffic weight): a few queues carry most of the load.
_QUEUE_SPECS: Final = (
    ("Billing", 1, 14.0),
    ("Billing - Spanish", 1, 4.0),
    ("Technical Support", 1, 13.0),
    ("Technical Support - Tier 2", 1, 3.0),
    ("Sales - Inbound", 2, 9.0),
    ("Sales - Renewals", 2, 4.0),
    ("Retention", 2, 3.0),
    ("Collections", 3, 4.0),
    ("Fraud and Disputes", 3, 2.0),
    ("Claims", 3, 5.0),
    ("Claims - Priority", 3, 1.5),
    ("Orders and Shipping", 1, 7.0),
    ("Returns", 1, 4.0),
    ("Account Access", 1, 5.0),
    ("VIP Customers", 2, 1.0),
    ("Web Messaging Support", 1, 6.0),
    ("Email Support", 1, 4.0),
    ("Social Care", 1, 1.5),
    ("Partner Helpdesk", 4, 1.5),
    ("General Inquiries", 0, 4.0),
)
QUEUES: Final[tuple[tuple[str, str], ...]] = tuple(
    (n, _fixed_id("queue", n)) for n, _, _ in _QUEUE_SPECS
)
_QUEUE_DIVISION: Final = tuple(DIVISIONS[d][1] for _, d, _ in _QUEUE_SPECS)
_QUEUE_CUM: Final = tuple(accumulate(w for _, _, w in _QUEUE_SPECS))
_VIP_QUEUES: Final = frozenset(i for i, (n, _, _) in enumerate(_QUEUE_SPECS) if "VIP" in n)

_WRAPUP_SPECS: Final = (
    ("Resolved - First Contact", 30.0),
    ("Resolved - Follow-up Required", 8.0),
    ("Escalated to Tier 2", 5.0),
    ("Transferred", 4.0),
    ("Callback Scheduled", 4.0),
    ("Billing Adjustment", 7.0),
    ("Refund Issued", 4.0),
    ("Order Placed", 6.0),
    ("Order Status Inquiry", 9.0),
    ("Password Reset", 6.0),
    ("Complaint Logged", 3.0),
    ("Fraud Reported", 1.0),
    ("Wrong Number", 2.0),
    ("No Answer - Voicemail", 3.0),
    ("Sale - Upsell", 2.0),
)
WRAPUP_CODES: Final[tuple[tuple[str, str], ...]] = tuple(
    (n, _fixed_id("wrapup", n)) for n, _ in _WRAPUP_SPECS
)
_WRAPUP_CUM: Final = tuple(accumulate(w for _, w in _WRAPUP_SPECS))

_SKILL_IDS: Final = tuple(
    _fixed_id("skill", n)
    for n in ("Billing", "Spanish", "Networking", "Claims", "Premium", "Returns", "Mobile")
)
_LANGUAGE_IDS: Final = tuple(_fixed_id("language", n) for n in ("English", "Spanish", "French"))
_CAMPAIGN_IDS: Final = tuple(
    _fixed_id("campaign", n) for n in ("Q4 Renewals", "Payment Reminders", "Win-back")
)
_CONTACT_LIST_IDS: Final = tuple(
    _fixed_id("contactlist", n) for n in ("Renewals Nov", "Overdue 30d", "Lapsed 2026")
)
_WEB_DEPLOYMENT_ID: Final = _fixed_id("webdeployment", "support-site")
_OAUTH_CLIENTS: Final = (
    (_fixed_id("oauth", "cx-as-code"), "CX as Code (Terraform)"),
    (_fixed_id("oauth", "wfm-sync"), "WFM Sync Integration"),
    (_fixed_id("oauth", "admin-ui"), "Genesys Cloud Admin UI"),
)

_PRESENCES: Final = (
    ("AVAILABLE", 22.0),
    ("ON_QUEUE", 30.0),
    ("BUSY", 12.0),
    ("AWAY", 10.0),
    ("BREAK", 10.0),
    ("MEAL", 6.0),
    ("OFFLINE", 10.0),
)
_PRESENCE_IDS: Final = {p: _fixed_id("presence", p) for p, _ in _PRESENCES}
_PRESENCE_CUM: Final = tuple(accumulate(w for _, w in _PRESENCES))
_PRESENCE_MESSAGES: Final = (
    "Back in 15",
    "Team huddle",
    "Coaching session until 3pm",
    "Lunch",
    "Working on escalations",
)

# Voice-heavy media mix, as in a typical contact centre.
_MEDIA: Final = ("VOICE", "MESSAGE", "EMAIL", "CALLBACK", "CHAT")
_MEDIA_CUM: Final = tuple(accumulate((0.60, 0.20, 0.08, 0.06, 0.06)))
_PROVIDERS: Final = {
    "VOICE": "Edge",
    "MESSAGE": "PureCloud Messaging",
    "EMAIL": "PureCloud Email",
    "CALLBACK": "PureCloud Callback",
    "CHAT": "PureCloud Webchat v2",
}
# Message types use the upper-case enum values of the detail-event schemas.
_MESSAGE_TYPES: Final = ("WEBMESSAGING", "SMS", "WHATSAPP", "FACEBOOK", "OPEN", "INSTAGRAM")
_MESSAGE_TYPE_CUM: Final = tuple(accumulate((0.45, 0.25, 0.15, 0.07, 0.05, 0.03)))

# (median seconds, sigma) of lognormal talk time per media: right-skewed like real handle times.
_TALK: Final = {
    "VOICE": (math.log(240.0), 0.75),
    "CALLBACK": (math.log(200.0), 0.7),
    "CHAT": (math.log(480.0), 0.8),
    "MESSAGE": (math.log(540.0), 0.9),
    "EMAIL": (math.log(300.0), 0.9),
}

_AREA_CODES: Final = ("317", "212", "415", "312", "512", "617", "206", "404", "720", "646")
_ORG_NUMBERS: Final = ("tel:+18005550100", "tel:+18885550142", "tel:+13175550199")
_FIRST: Final = (
    "James", "Maria", "Robert", "Linda", "Wei", "Fatima", "Carlos", "Aisha", "Olivia", "Noah",
    "Priya", "Liam", "Sofia", "Mateo", "Chloe", "Ethan", "Hannah", "Diego", "Grace", "Omar",
)  # fmt: skip
_LAST: Final = (
    "Smith", "Garcia", "Johnson", "Nguyen", "Patel", "Brown", "Kim", "Lopez", "Miller", "Okafor",
    "Davis", "Martinez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Lee",
)  # fmt: skip
_EMAIL_SUBJECTS: Final = (
    "Question about my latest invoice",
    "Re: Order #{n} has not arrived",
    "Cancel my subscription",
    "Re: Claim {n} - additional documents",
    "Unable to log in to my account",
    "Refund request for order {n}",
    "Fwd: Payment confirmation {n}",
)
_NOTE_TEMPLATES: Final = (
    "Caller asked about invoice INV-{n}; explained late fee and waived it as a courtesy.",
    "Customer reported order {n} missing; reshipped with expedited delivery, ETA 2 days.",
    "Reset password and verified MFA enrollment. Customer confirmed access restored.",
    "Escalated billing dispute {n} to Tier 2; customer expects a call back within 48h.",
    "Explained renewal pricing; customer will think about it. Follow up next week.",
    "Claim {n}: collected photos and police report number, forwarded to adjuster.",
    "Processed refund of ${d}.{c:02d} to card on file; sent confirmation email.",
    "Customer upset about hold time; apologised and applied loyalty credit.",
)
# Realistic free text used to inflate bodies for size sweeps. No quotes, backslashes or
# non-ASCII, so each character costs exactly one byte once JSON-encoded.
_NOTE_CORPUS: Final = (
    " ".join(t.format(n=48213 + i, d=23, c=40) for i, t in enumerate(_NOTE_TEMPLATES * 4)) + " "
)
_NOT_JSON: Final = (
    "Internal Server Error",
    "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
    "v2.detail.events.conversation.customer.end",
    "",
)

_AUDIT_SPECS: Final = (
    # (entityType, serviceName, property, value choices, weight)
    ("Queue", "Routing", "acwSettings.timeoutMs", ("30000", "60000", "120000", "180000"), 6.0),
    ("Queue", "Routing", "skillEvaluationMethod", ("NONE", "BEST", "ALL"), 3.0),
    ("WrapupCode", "Routing", "name", tuple(n for n, _ in WRAPUP_CODES), 2.0),
    ("Flow", "Architect", "publishedVersion", ("41", "42", "43", "44", "45"), 4.0),
    ("Role", "PeoplePermissions", "permissionPolicies",
     ("routing:queue:view", "outbound:campaign:edit", "analytics:conversationDetail:view"), 2.0),
    ("Campaign", "Outbound", "campaignStatus", ("on", "off", "stopping"), 3.0),
    ("ScheduleGroup", "Architect", "openSchedules", ("US Business Hours", "Holiday Hours"), 1.0),
    ("Trigger", "Triggers", "enabled", ("true", "false"), 1.0),
)  # fmt: skip
_AUDIT_CUM: Final = tuple(accumulate(s[4] for s in _AUDIT_SPECS))
_AUDIT_NAMES: Final = {
    "Flow": ("Main Inbound IVR", "After Hours", "Claims Intake", "Web Messaging Bot"),
    "Role": ("Supervisor", "Agent", "Quality Evaluator", "Admin - Routing"),
    "Campaign": ("Q4 Renewals", "Payment Reminders", "Win-back"),
    "ScheduleGroup": ("US Contact Center", "EMEA Contact Center"),
    "Trigger": ("Abandon follow-up SMS", "VIP callback", "Post-call survey"),
}
_AUDIT_ACTIONS: Final = ("Update", "Create", "Delete")
_AUDIT_ACTION_CUM: Final = tuple(accumulate((0.82, 0.12, 0.06)))
_PAST: Final = {
    "Update": "updated",
    "Create": "created",
    "Delete": "deleted",
    "Publish": "published",
}

_SIMPLE_CHANNELS: Final = ("voice", "chat", "email")
_SIMPLE_CHANNEL_CUM: Final = tuple(accumulate((0.6, 0.25, 0.15)))
_SIMPLE_OUTCOMES: Final = ("completed", "abandoned", "transferred")
_SIMPLE_OUTCOME_CUM: Final = tuple(accumulate((0.8, 0.12, 0.08)))
_PRIORITIES: Final = ("critical", "high", "normal", "low")
_PRIORITY_CUM: Final = tuple(accumulate((0.02, 0.10, 0.68, 0.20)))

# Detail-event steps the conversation lifecycle emits; the catalog family covers the others.
_SCRIPTED_STEPS: Final = (
    "customer.start", "customer.end", "attributes", "contact", "acd.start", "acd.end",
    "user.start", "user.end", "wrapup", "acw", "outbound",
)  # fmt: skip
_ROUTING_PRIORITIES: Final = (0, 0, 0, 0, 0, 0, 5, 10, 10, 50)
_ACTIVE_CONVERSATIONS: Final = 32  # interleaving depth of in-flight conversations
_AGENTS: Final = 150
_ADMINS: Final = 8

# uuid.UUID(int=bits, version=4) clears these bits then sets version 4 / RFC 4122 variant.
# Doing it on the int and formatting by hand is ~4x faster and gives the same string.
_UUID_CLEAR: Final = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_SET: Final = (0x8000 << 48) | (0x4000 << 64)


def uuid4_from_bits(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))``, without building a UUID object."""
    h = ((bits & _UUID_CLEAR) | _UUID_SET).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class Mix:
    """Event family mix.

    ``conversation``, ``audit``, ``presence``, ``simplified`` and ``catalog`` are relative
    weights of the valid families. ``malformed`` is the *fraction* of ``body()`` results that
    are malformed (0..1); ``event()`` ignores it.
    """

    conversation: float = 0.82
    audit: float = 0.03
    presence: float = 0.09
    simplified: float = 0.06
    catalog: float = 0.0
    malformed: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"Mix.{f.name} must be a finite number >= 0, got {v!r}")
        if self.malformed > 1:
            raise ValueError(f"Mix.malformed is a ratio in [0, 1], got {self.malformed!r}")
        if self.conversation + self.audit + self.presence + self.simplified + self.catalog <= 0:
            raise ValueError("Mix needs a positive weight for at least one valid family")


DEFAULT_MIX: Final = Mix()
# Every catalog topic appears in the local run: 3% of its events are the other topics.
DEMO_MIX: Final = Mix(catalog=0.03, malformed=0.02)


class _Conversation:
    """State of one in-flight conversation; events are rendered from it step by step."""

    __slots__ = (
        "acd_disc",
        "acd_pid",
        "acd_sid",
        "agent_pid",
        "agent_sid",
        "alerting_ms",
        "attributes",
        "campaign",
        "cust_disc",
        "cust_pid",
        "cust_sid",
        "division_id",
        "ext_contacts",
        "ext_orgs",
        "held_ms",
        "id",
        "ivr_ms",
        "media",
        "media_type",
        "notes",
        "outcome",
        "pos",
        "priority",
        "queue_id",
        "skills",
        "steps",
        "talk_ms",
        "user_disc",
        "user_id",
        "wait_ms",
        "wrapup_code",
        "wrapup_ms",
    )

    id: str
    media: _Json
    media_type: str
    cust_pid: str
    cust_sid: str
    acd_pid: str
    acd_sid: str
    agent_pid: str
    agent_sid: str
    user_id: str
    queue_id: str
    division_id: str
    ext_contacts: list[str]
    ext_orgs: list[str]
    attributes: dict[str, str]
    campaign: tuple[str, str, str] | None
    steps: tuple[str, ...]
    pos: int
    outcome: str
    cust_disc: str
    user_disc: str
    acd_disc: str
    priority: int
    skills: list[str]
    ivr_ms: int
    wait_ms: int
    alerting_ms: int
    talk_ms: int
    held_ms: int
    wrapup_ms: int
    wrapup_code: str
    notes: str | None


class GenesysEventGenerator:
    """Seeded generator of EventBridge envelopes carrying Genesys Cloud events.

    ``clock`` (seconds since the epoch, e.g. ``time.time``) makes timestamps current; without it
    a virtual clock starts at ``BASE_TIME`` and advances by exponential gaps of mean
    ``1 / rate`` seconds, keeping output fully reproducible. ``pad_to`` inflates every valid body
    to that many bytes through a realistic free-text field (wrap-up notes, participant attributes,
    audit context, presence message).
    """

    queue_ids: tuple[str, ...]
    wrapup_codes: tuple[str, ...]
    division_ids: tuple[str, ...]
    user_ids: tuple[str, ...]

    def __init__(
        self,
        seed: int = 0,
        mix: Mix | None = None,
        org_id: str | None = None,
        pad_to: int | None = None,
        *,
        clock: Callable[[], float] | None = None,
        rate: float = 20.0,
        account: str = DEFAULT_ACCOUNT,
        region: str = "us-east-1",
        source_suffix: str = DEFAULT_SOURCE_SUFFIX,
    ) -> None:
        if pad_to is not None and pad_to <= 0:
            raise ValueError(f"pad_to must be a positive byte count, got {pad_to!r}")
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        # Synthetic test data, not security-sensitive: a seedable PRNG is the point.
        rng = random.Random(seed)  # noqa: S311
        self._rand = rng.random
        self._bits = rng.getrandbits
        self._gauss = rng.gauss
        self._expo = rng.expovariate
        self.mix = mix if mix is not None else DEFAULT_MIX
        m = self.mix
        self._family_cum = tuple(
            accumulate((m.conversation, m.audit, m.presence, m.simplified, m.catalog))
        )
        self.org_id = org_id if org_id is not None else DEFAULT_ORG_ID
        self.pad_to = pad_to
        self._clock = clock
        self._rate = rate
        self._account = account
        self._region = region
        self._source = f"aws.partner/genesys.com/cloud/{self.org_id}/{source_suffix}"
        self._now_ms = _BASE_MS
        self._iso_cache: dict[int, str] = {}

        self.queue_ids = tuple(q for _, q in QUEUES)
        self.wrapup_codes = tuple(w for _, w in WRAPUP_CODES)
        self.division_ids = tuple(d for _, d in DIVISIONS)
        self.user_ids = tuple(self._uuid() for _ in range(_AGENTS))
        self._admins = tuple(
            (self._uuid(), f"{self._pick(_FIRST)} {self._pick(_LAST)}") for _ in range(_ADMINS)
        )
        self._active: list[_Conversation | None] = [None] * _ACTIVE_CONVERSATIONS
        self._rng = rng
        self._other_topics: tuple[Topic, ...] = ()
        if m.catalog:
            scripted = {".presence"} | {f".{s}" for s in _SCRIPTED_STEPS}
            self._other_topics = tuple(
                t
                for t in Catalog.packaged().topics
                if not any(t.pattern.endswith(x) for x in scripted)
                and not t.pattern.startswith("v2.audits.")
            )

    # ---------------------------------------------------------------- public API

    def event(self) -> dict[str, object]:
        """Next valid envelope (never malformed), padded to ``pad_to`` if set."""
        family, env = self._valid()
        if self.pad_to is not None:
            self._pad(family, env, self.pad_to)
        return env

    def labelled_body(self) -> tuple[Family, str]:
        """Next SQS body per the mix, with the family it was drawn from (ground truth)."""
        if self.mix.malformed and self._rand() < self.mix.malformed:
            return "malformed", self.malformed_body()
        family, env = self._valid()
        if self.pad_to is not None:
            return family, self._pad(family, env, self.pad_to).decode()
        return family, orjson.dumps(env).decode()

    def body(self) -> str:
        """Next SQS body per the mix (may be malformed)."""
        return self.labelled_body()[1]

    def bodies(self, n: int) -> list[str]:
        return [self.labelled_body()[1] for _ in range(n)]

    def malformed_body(self, kind: MalformedKind | None = None) -> str:
        """A body the consumer must dead-letter; ``kind`` defaults to a seeded pick."""
        if kind is None:
            kind = self._pick(MALFORMED_KINDS)
        if kind == "not_json":
            if self._rand() < 0.25:
                # A Python repr instead of JSON: a classic producer bug.
                return repr(self._valid()[1])
            return self._pick(_NOT_JSON)
        if kind == "truncated":
            raw = orjson.dumps(self._valid()[1])
            cut = int(len(raw) * (0.3 + 0.65 * self._rand()))
            return raw[:cut].decode(errors="ignore")
        if kind == "array":
            # Batched envelopes: valid JSON, wrong top-level type.
            return orjson.dumps(
                [self._valid()[1] for _ in range(1 + int(self._rand() * 3))]
            ).decode()
        if kind == "missing_detail":
            env = self._valid()[1]
            del env["detail"]
            return orjson.dumps(env).decode()
        if kind == "detail_string":
            # Double-encoded detail, as produced by a misconfigured input transformer.
            env = self._valid()[1]
            env["detail"] = orjson.dumps(env["detail"]).decode()
            return orjson.dumps(env).decode()
        if kind == "bad_duration":
            c = self._new_conversation()
            while "user.end" not in c.steps:
                c = self._new_conversation()
            env = self._conversation_envelope(c, "user.end", self._tick())
            eb = env["detail"]["eventBody"]
            eb["interactingDurationMs"] = str(eb["interactingDurationMs"])
            return orjson.dumps(env).decode()
        raise ValueError(f"unknown malformed kind {kind!r}")

    # ---------------------------------------------------------------- random helpers

    def _uuid(self) -> str:
        return uuid4_from_bits(self._bits(128))

    def _pick(self, seq: Sequence[_T]) -> _T:
        return seq[int(self._rand() * len(seq))]

    def _weighted(self, cum: Sequence[float]) -> int:
        return min(bisect(cum, self._rand() * cum[-1]), len(cum) - 1)

    def _lognormal_ms(self, mu: float, sigma: float, floor_ms: int = 0) -> int:
        return max(floor_ms, int(1000.0 * math.exp(mu + sigma * self._gauss(0.0, 1.0))))

    def _phone(self) -> str:
        return f"tel:+1{self._pick(_AREA_CODES)}555{int(self._rand() * 10000):04d}"

    # ---------------------------------------------------------------- time helpers

    def _tick(self) -> int:
        """Envelope time (ms) of the next event."""
        if self._clock is not None:
            self._now_ms = int(self._clock() * 1000)
        else:
            self._now_ms += int(self._expo(self._rate) * 1000.0)
        return self._now_ms

    def _iso_s(self, sec: int) -> str:
        # strftime dominates timestamp cost; events cluster in the same second, so memoise.
        s = self._iso_cache.get(sec)
        if s is None:
            if len(self._iso_cache) > 4096:
                self._iso_cache.clear()
            s = self._iso_cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return s

    def _iso_ms(self, ms: int) -> str:
        sec, milli = divmod(ms, 1000)
        return f"{self._iso_s(sec)}.{milli:03d}Z"

    def _lags(self, now_ms: int) -> tuple[int, int]:
        """(detail.timestamp, eventTime): published before EventBridge saw it, occurred before."""
        ts = now_ms - 20 - int(self._expo(1 / 150.0))
        return ts, ts - 5 - int(self._expo(1 / 400.0))

    # ---------------------------------------------------------------- envelopes

    def _envelope(self, detail_type: str, source: str, detail: _Json, now_ms: int) -> _Json:
        return {
            "version": "0",
            "id": self._uuid(),
            "detail-type": detail_type,
            "source": source,
            "account": self._account,
            "time": self._iso_s(now_ms // 1000) + "Z",
            "region": self._region,
            "resources": [],
            "detail": detail,
        }

    def _genesys(self, template: str, topic: str, body: _Json, ts_ms: int, now_ms: int) -> _Json:
        detail = {
            "topicName": topic,
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": self._uuid()},
            "timestamp": self._iso_ms(ts_ms),
        }
        return self._envelope(template, self._source, detail, now_ms)

    def _valid(self) -> tuple[Family, _Json]:
        now = self._tick()
        i = self._weighted(self._family_cum)
        if i == 0:
            return "conversation", self._conversation(now)
        if i == 1:
            return "audit", self._audit(now)
        if i == 2:
            return "presence", self._presence(now)
        if i == 3:
            return "simplified", self._simplified(now)
        return "catalog", self._catalog_topic(now)

    # ---------------------------------------------------------------- conversations

    def _conversation(self, now_ms: int) -> _Json:
        slot = int(self._rand() * _ACTIVE_CONVERSATIONS)
        c = self._active[slot]
        if c is None:
            c = self._active[slot] = self._new_conversation()
        step = c.steps[c.pos]
        c.pos += 1
        if c.pos == len(c.steps):
            self._active[slot] = None
        return self._conversation_envelope(c, step, now_ms)

    def _new_conversation(self) -> _Conversation:
        r = self._rand
        c = _Conversation()
        c.id = self._uuid()
        c.pos = 0
        media = c.media_type = _MEDIA[self._weighted(_MEDIA_CUM)]
        outbound = media == "VOICE" and r() < 0.12
        q = self._weighted(_QUEUE_CUM)
        c.queue_id = QUEUES[q][1]
        c.division_id = _QUEUE_DIVISION[q]
        c.user_id = self._pick(self.user_ids)
        c.cust_pid, c.cust_sid = self._uuid(), self._uuid()
        c.acd_pid, c.acd_sid = self._uuid(), self._uuid()
        c.agent_pid, c.agent_sid = self._uuid(), self._uuid()
        c.ext_contacts = [self._uuid()] if r() < 0.75 else []
        if c.ext_contacts and r() < 0.15:
            c.ext_contacts.append(self._uuid())
        c.ext_orgs = [self._uuid()] if r() < 0.25 else []
        c.priority = 100 if q in _VIP_QUEUES else self._pick(_ROUTING_PRIORITIES)
        c.skills = [self._pick(_SKILL_IDS)] if r() < 0.5 else []
        c.campaign = None

        first, last = self._pick(_FIRST), self._pick(_LAST)
        customer_phone = self._phone()
        m: _Json = {"mediaType": media, "provider": _PROVIDERS[media]}
        m["direction"] = "OUTBOUND" if outbound else "INBOUND"
        if media in ("VOICE", "CALLBACK"):
            org_phone = self._pick(_ORG_NUMBERS)
            if outbound:
                m["ani"], m["dnis"] = org_phone, customer_phone
                m["addressTo"], m["addressFrom"] = customer_phone, org_phone
            else:
                m["ani"], m["dnis"] = customer_phone, org_phone
                m["addressTo"], m["addressFrom"] = org_phone, customer_phone
            if media == "CALLBACK":
                m["callbackUserName"] = f"{first} {last}"
                m["callbackNumbers"] = [customer_phone[4:]]
                m["callbackScheduledTime"] = self._now_ms + int(r() * 3_600_000)
        elif media == "EMAIL":
            m["addressTo"] = "support@contoso-insurance.example"
            m["addressFrom"] = f"{first.lower()}.{last.lower()}@example.com"
            m["subject"] = self._pick(_EMAIL_SUBJECTS).format(n=100000 + int(r() * 900000))
        elif media == "CHAT":
            m["addressTo"] = "Web Chat - Support"
            m["addressFrom"] = f"{first} {last}"
        else:
            mt = _MESSAGE_TYPES[self._weighted(_MESSAGE_TYPE_CUM)]
            if mt in ("SMS", "WHATSAPP"):
                m["addressTo"], m["addressFrom"] = "+18005550100", customer_phone[4:]
            elif mt == "WEBMESSAGING":
                m["addressTo"], m["addressFrom"] = _WEB_DEPLOYMENT_ID, self._uuid()
            else:
                m["addressTo"] = "Contoso Insurance"
                m["addressFrom"] = str(10**15 + int(r() * 9 * 10**15))
            m["messageType"] = mt
        c.media = m

        # Participant data set by the inbound flow; also where padding goes for size sweeps.
        c.attributes = {
            "ivr.intent": self._pick(("billing", "claims", "orders", "tech", "sales", "other")),
            "ivr.language": "en-US" if r() < 0.85 else "es-US",
            "crm.accountId": f"ACC-{int(r() * 10_000_000):07d}",
            "ivr.authenticated": "true" if r() < 0.6 else "false",
        }

        mu, sigma = _TALK[media]
        c.ivr_ms = self._lognormal_ms(math.log(45.0), 0.6) if media == "VOICE" else 0
        c.wait_ms = self._lognormal_ms(math.log(35.0), 1.1, 1000)
        c.alerting_ms = self._lognormal_ms(math.log(6.0), 0.5, 500)
        c.talk_ms = self._lognormal_ms(mu, sigma, 5000)
        c.held_ms = self._lognormal_ms(math.log(45.0), 0.9) if r() < 0.25 else 0
        c.wrapup_ms = self._lognormal_ms(math.log(25.0), 0.8, 2000)
        c.wrapup_code = WRAPUP_CODES[self._weighted(_WRAPUP_CUM)][1]
        c.notes = self._note() if r() < 0.6 else None

        customer_hangs_up = r() < 0.55
        c.cust_disc = "ENDPOINT" if customer_hangs_up else "PEER"
        c.user_disc = "PEER" if customer_hangs_up else ("CLIENT" if r() < 0.85 else "TRANSFER")
        c.acd_disc = "TRANSFER"
        if r() < 0.01:  # the occasional network failure
            c.cust_disc = self._pick(("TRANSPORT_FAILURE", "ERROR", "SYSTEM"))

        # Lifecycle script. Optional events (attributes, contact) are interleaved as Genesys does.
        pre: tuple[str, ...] = ("customer.start",)
        if media == "VOICE" and r() < 0.4:
            pre += ("attributes",)
        if c.ext_contacts and r() < 0.3:
            pre += ("contact",)
        if customer_hangs_up:
            handled = ("user.start", "customer.end", "user.end", "wrapup", "acw")
        else:
            handled = ("user.start", "user.end", "customer.end", "wrapup", "acw")
        c.outcome = "ANSWERED"
        if outbound:
            c.campaign = (
                self._pick(_CAMPAIGN_IDS),
                self._pick(_CONTACT_LIST_IDS),
                f"{int(r() * 16**8):08x}",
            )
            c.steps = ("outbound", *pre, *handled)
            return c
        # Outcome rates: IVR self-service (voice only), abandon (not email), flow-out, answered.
        self_service = 0.08 if media == "VOICE" else 0.0
        abandon = 0.0 if media == "EMAIL" else 0.11
        x = r()
        if x < self_service:
            c.outcome = "SELF_SERVICE"  # handled entirely by the IVR, never queued
            c.cust_disc = "ENDPOINT" if r() < 0.6 else "PEER"
            c.steps = (*pre, "customer.end")
        elif x < self_service + abandon:
            c.outcome, c.acd_disc, c.cust_disc = "ABANDON", "PEER", "ENDPOINT"
            c.steps = (*pre, "acd.start", "customer.end", "acd.end")
        elif x < self_service + abandon + 0.05:
            c.outcome, c.cust_disc = "FLOW_OUT", "ENDPOINT"
            c.steps = (*pre, "acd.start", "acd.end", "customer.end")
        else:
            c.steps = (*pre, "acd.start", "acd.end", *handled)
        return c

    def _note(self) -> str:
        r = self._rand
        return self._pick(_NOTE_TEMPLATES).format(
            n=10000 + int(r() * 90000), d=int(r() * 300), c=int(r() * 100)
        )

    def _conversation_envelope(self, c: _Conversation, step: str, now_ms: int) -> _Json:
        ts, event_time = self._lags(now_ms)
        if step.startswith("acd."):
            pid, sid = c.acd_pid, c.acd_sid
        elif step.startswith(("user.", "acw", "wrapup")):
            pid, sid = c.agent_pid, c.agent_sid
        else:
            pid, sid = c.cust_pid, c.cust_sid
        b: _Json = {
            "eventTime": event_time,
            "conversationId": c.id,
            "participantId": pid,
        }
        if step != "attributes":  # the attributes topic has no sessionId
            b["sessionId"] = sid
        if step == "attributes":
            b["attributes"] = dict(c.attributes)
            b["conversationExternalContactIds"] = c.ext_contacts
            b["conversationExternalOrganizationIds"] = c.ext_orgs
        elif step == "customer.start" or step == "customer.end":
            if step == "customer.end":
                b["disconnectType"] = c.cust_disc
            b.update(c.media)
            if c.ext_contacts:
                b["externalContactId"] = c.ext_contacts[0]
            b["divisionId"] = c.division_id
            if step == "customer.end":
                total = c.ivr_ms
                if c.outcome in ("ANSWERED", "ABANDON", "FLOW_OUT"):
                    total += c.wait_ms
                if c.outcome == "ANSWERED":
                    total += c.alerting_ms + c.talk_ms
                b["interactingDurationMs"] = total
        elif step == "contact":
            b["mediaType"] = c.media_type
            if c.ext_orgs:
                b["externalOrganizationId"] = c.ext_orgs[0]
            b["externalContactId"] = c.ext_contacts[0]
            b.update(c.media)
            b["conversationExternalContactIds"] = c.ext_contacts
            b["conversationExternalOrganizationIds"] = c.ext_orgs
            b["divisionId"] = c.division_id
        elif step == "acd.start" or step == "acd.end":
            if step == "acd.end":
                b["disconnectType"] = c.acd_disc
            b.update(c.media)
            b["queueId"] = c.queue_id
            b["divisionId"] = c.division_id
            if step == "acd.end":
                b["acdOutcome"] = c.outcome
                if c.outcome == "ANSWERED":
                    b["answeredUserId"] = c.user_id
                b["requestedRoutings"] = ["STANDARD"] if not c.skills else ["BULLSEYE"]
                b["usedRouting"] = "STANDARD" if not c.skills else "BULLSEYE"
            b["requestedRoutingSkillIds"] = c.skills
            spanish = c.media["mediaType"] == "VOICE" and c.attributes["ivr.language"] == "es-US"
            if step == "acd.end" and spanish:  # acd.start has no requestedLanguageId
                b["requestedLanguageId"] = _LANGUAGE_IDS[1]
            b["routingPriority"] = c.priority
            if step == "acd.end":
                b["connectedDurationMs"] = c.wait_ms
            b["conversationExternalContactIds"] = c.ext_contacts
            b["conversationExternalOrganizationIds"] = c.ext_orgs
        elif step == "user.start" or step == "user.end":
            if step == "user.end":
                b["disconnectType"] = c.user_disc
            b.update(c.media)
            b["userId"] = c.user_id
            b["divisionId"] = c.division_id
            b["queueId"] = c.queue_id
            if step == "user.end":
                b["interactingDurationMs"] = c.talk_ms
                b["heldDurationMs"] = c.held_ms
                b["alertingDurationMs"] = c.alerting_ms
                if c.campaign is not None:
                    b["contactingDurationMs"] = c.wait_ms
                    b["dialingDurationMs"] = c.alerting_ms
        elif step == "wrapup" or step == "acw":
            b.update(c.media)
            if step == "acw":
                b["userId"] = c.user_id
            b["queueId"] = c.queue_id
            b["wrapupCode"] = c.wrapup_code
            if c.notes is not None:
                b["wrapupNotes"] = c.notes
            b["wrapupDurationMs"] = c.wrapup_ms
            if step == "acw":
                b["conversationExternalContactIds"] = c.ext_contacts
                b["conversationExternalOrganizationIds"] = c.ext_orgs
        elif step == "outbound":
            assert c.campaign is not None
            b.update(c.media)
            b["outboundCampaignId"] = c.campaign[0]
            b["divisionId"] = c.division_id
            b["outboundContactListId"] = c.campaign[1]
            b["outboundContactId"] = c.campaign[2]
        else:  # pragma: no cover - steps come from _new_conversation only
            raise AssertionError(step)
        template = "v2.detail.events.conversation.{id}." + step
        topic = f"v2.detail.events.conversation.{c.id}.{step}"
        return self._genesys(template, topic, b, ts, now_ms)

    # ---------------------------------------------------------------- audit / presence / simple

    def _audit(self, now_ms: int) -> _Json:
        ts, event_time = self._lags(now_ms)
        etype, service, prop, values, _ = _AUDIT_SPECS[self._weighted(_AUDIT_CUM)]
        if etype == "Queue":
            name, entity_id = self._pick(QUEUES)
        elif etype == "WrapupCode":
            name, entity_id = self._pick(WRAPUP_CODES)
        else:
            name = self._pick(_AUDIT_NAMES[etype])
            entity_id = _fixed_id(etype.lower(), name)
        action = _AUDIT_ACTIONS[self._weighted(_AUDIT_ACTION_CUM)]
        if etype == "Flow" and action == "Update":
            action = "Publish"
        actor_id, actor_name = self._pick(self._admins)
        old, new = self._pick(values), self._pick(values)
        # The SDK's AuditTopicPropertyChange: property, oldValues, newValues (no entity).
        change: _Json = {"property": prop}
        change["oldValues"] = [old] if action != "Create" else []
        change["newValues"] = [new] if action != "Delete" else []
        # The SDK's AuditTopicAuditLogMessage (and Genesys' public sample): userId, username
        # and clientId refs, no status.
        b: _Json = {
            "id": self._uuid(),
            "userId": actor_id,
            "userHomeOrgId": self.org_id,
            "username": {"id": actor_id},
        }
        if self._rand() < 0.3:
            b["clientId"] = {"id": self._pick(_OAUTH_CLIENTS)[0]}
        b["remoteIp"] = [f"203.0.113.{int(self._rand() * 254) + 1}"]
        b["serviceName"] = service
        b["level"] = "USER"
        b["eventTime"] = self._iso_ms(event_time)
        b["message"] = {
            "localizableMessageCode": f"{etype.upper()}_{action.upper()}",
            "message": f"{actor_name} {_PAST[action]} {etype} {name}",
        }
        b["action"] = action
        b["entity"] = {"id": entity_id, "name": name}
        b["entityType"] = etype
        b["propertyChanges"] = [change]
        b["context"] = {}
        template = "v2.audits.entitytype.{id}.entityid.{id}"
        topic = f"v2.audits.entitytype.{etype}.entityid.{entity_id}"
        return self._genesys(template, topic, b, ts, now_ms)

    def _presence(self, now_ms: int) -> _Json:
        ts, event_time = self._lags(now_ms)
        user_id = self._pick(self.user_ids)
        sp = _PRESENCES[self._weighted(_PRESENCE_CUM)][0]
        b: _Json = {
            "source": "PURECLOUD",
            "presenceDefinition": {"id": _PRESENCE_IDS[sp], "systemPresence": sp},
            "primary": True,
        }
        if sp in ("AWAY", "BUSY", "BREAK") and self._rand() < 0.3:
            b["message"] = self._pick(_PRESENCE_MESSAGES)
        b["modifiedDate"] = self._iso_ms(event_time)
        return self._genesys(
            "v2.users.{id}.presence", f"v2.users.{user_id}.presence", b, ts, now_ms
        )

    def _catalog_topic(self, now_ms: int) -> _Json:
        """A topic the lifecycle does not script, its body filled from the catalog."""
        ts, event_time = self._lags(now_ms)
        topic = self._pick(self._other_topics)
        body = sample_body(topic, self._rng)
        for key in ("eventTime", "conversationId"):
            if key in body:
                body[key] = event_time if key == "eventTime" else self._uuid()
        name = topic.pattern.replace("{id}", body.get("conversationId") or self._uuid())
        return self._genesys(topic.pattern, name, body, ts, now_ms)

    def _simplified(self, now_ms: int) -> _Json:
        outcome = _SIMPLE_OUTCOMES[self._weighted(_SIMPLE_OUTCOME_CUM)]
        median = 40.0 if outcome == "abandoned" else 150.0
        detail = {
            "id": self._uuid(),
            "channel": _SIMPLE_CHANNELS[self._weighted(_SIMPLE_CHANNEL_CUM)],
            "outcome": outcome,
            "duration_ms": self._lognormal_ms(math.log(median), 0.9, 1000),
            "tags": {"priority": _PRIORITIES[self._weighted(_PRIORITY_CUM)]},
        }
        return self._envelope("Interaction Completed", "genesys.cloud", detail, now_ms)

    # ---------------------------------------------------------------- padding

    def _pad(self, family: Family, env: _Json, target: int) -> bytes:
        """Grow ``env`` in place to exactly ``target`` bytes when serialised; return the bytes."""
        raw = orjson.dumps(env)
        if len(raw) >= target:
            return raw
        detail = env["detail"]
        slot: dict[str, Any]
        if family == "conversation":
            eb = detail["eventBody"]
            if "wrapupCode" in eb:
                slot, key = eb, "wrapupNotes"
            else:
                slot, key = eb.setdefault("attributes", {}), "crm.caseNotes"
        elif family == "audit":
            slot, key = detail["eventBody"]["context"], "changeDescription"
        elif family == "presence":
            slot, key = detail["eventBody"], "message"
        elif family == "catalog":
            slot, key = detail["metadata"], "padding"
        else:
            slot, key = detail, "notes"
        slot[key] = ""
        n = target - len(orjson.dumps(env))
        if n <= 0:  # the empty field alone overshoots: leave it, we're within a few bytes
            return orjson.dumps(env)
        start = int(self._rand() * len(_NOTE_CORPUS))
        reps = n // len(_NOTE_CORPUS) + 2
        slot[key] = (_NOTE_CORPUS[start:] + _NOTE_CORPUS * reps)[:n]
        return orjson.dumps(env)


def stamp(body: str, key: str, value: object) -> str:
    """Insert ``"key": value`` as the first member of a JSON-object body without parsing it.

    Cheap (one string concat) so a benchmark can stamp send times on pre-generated bodies.
    ``key`` must not already be a top-level key. Bodies that are not objects are returned as is.
    """
    if not body.startswith("{"):
        return body
    member = orjson.dumps(key).decode() + ":" + orjson.dumps(value).decode()
    rest = body[1:]
    sep = "" if rest.lstrip().startswith("}") else ","
    return "{" + member + sep + rest
