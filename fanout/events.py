"""Validate stage: parse an SQS body into an EventBridge envelope and check the Genesys detail.

Rules match on the raw JSON dict (what users see in their events), so validation checks types
and shapes but never rewrites the event; the copy sent to targets is the original body string.
Numeric fields are strict: ``"120000"`` where a number belongs is a DLQ'd event with a reason
naming the field, not an event that silently fails every ``>`` comparison. For Genesys topics
the Genesys topic catalog (fanout/genesys) says which fields are numbers; unknown fields and
unknown topics are accepted, as Genesys adds both over time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError

from fanout.genesys.strict import NumericChecks
from fanout.jsontypes import json_type
from fanout.outcomes import DlqReason

GENESYS_SOURCE_PREFIX = "aws.partner/genesys.com"
SIMPLIFIED_SOURCE = "genesys.cloud"
AUDIT_TOPIC_PREFIX = "v2.audits."
# SQS refuses C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF, in a message attribute
# value (the ``fanout.event_id`` attribute on every copy). Tab, LF, CR and the C1 controls are
# refused as well: no EventBridge id has them, and they would split or garble a log line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff]")

# Strict float accepts JSON integers and rejects strings and booleans: "a valid number".
Number = StrictFloat


class _Open(BaseModel):
    # Unknown fields are allowed: Genesys adds fields over time and rules may use them.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class EventBridgeEnvelope(_Open):
    version: str = "0"
    id: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type", min_length=1)
    source: str = Field(min_length=1)
    account: str | None = None
    time: datetime | None = None
    region: str | None = None
    resources: list[str] = Field(default_factory=list)
    detail: dict[str, Any]


class GenesysMetadata(_Open):
    CorrelationId: str | None = None


class GenesysDetail(_Open):
    topicName: str
    version: str | None = None
    eventBody: dict[str, Any]
    metadata: GenesysMetadata | None = None
    timestamp: datetime | None = None


class AuditEventBody(_Open):
    """Audit topics carry ``eventTime`` as an ISO 8601 string, unlike conversation events."""

    eventTime: datetime | None = None


class SimplifiedTags(_Open):
    priority: str | None = None


class SimplifiedDetail(_Open):
    """The original design's shape: ``source: genesys.cloud``, ``Interaction Completed``."""

    id: str | None = None
    channel: str | None = None
    outcome: str | None = None
    duration_ms: Number | None = None
    tags: SimplifiedTags | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event: ``data`` is the parsed JSON, ``body`` the untouched original."""

    id: str
    detail_type: str
    source: str
    data: dict[str, Any]
    body: str

    def routed(self) -> Event:
        """This event without ``data``: once its copies are built, nothing reads the parsed
        JSON again, and it is as large as the body (bench/memory.py: a 900 KB event held
        twice while its copies are in flight). Ids and the body (the copies' body) stay."""
        return Event(self.id, self.detail_type, self.source, {}, self.body)


class InvalidEvent(Exception):
    """The body cannot be routed. ``reason`` is a stable code, ``detail`` names the field.

    ``event_id`` is the envelope's id when the envelope itself was valid (an invalid detail),
    so the DLQ record still names the event."""

    def __init__(self, reason: DlqReason, detail: str, event_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.event_id = event_id


def _first_error(exc: ValidationError, prefix: str) -> str:
    err = exc.errors(include_url=False)[0]
    path = ".".join(str(p) for p in err["loc"])
    where = f"{prefix}.{path}" if prefix and path else (prefix or path or "body")
    return f"{where}: {err['msg']}"


def _validate(
    model: type[BaseModel],
    value: Any,
    reason: DlqReason,
    prefix: str,
    event_id: str | None = None,
) -> None:
    try:
        model.model_validate(value)
    except ValidationError as exc:
        raise InvalidEvent(reason, _first_error(exc, prefix), event_id) from None


def _check_id(event_id: str) -> None:
    bad = _CONTROL.search(event_id)
    if bad is not None:
        raise InvalidEvent(
            DlqReason.INVALID_ENVELOPE,
            f"id: contains control character U+{ord(bad.group()):04X} at position {bad.start()}"
            " (SQS refuses it in the fanout.event_id attribute)",
        )


def parse_event(body: str) -> Event:
    """Parse and validate one SQS body; raise InvalidEvent with a reason naming the field."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(DlqReason.INVALID_JSON, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent(
            DlqReason.INVALID_ENVELOPE, f"body is a JSON {json_type(data)}, not an object"
        )
    _reject_duplicate_keys(body, data)
    if "detail" not in data:
        raise InvalidEvent(DlqReason.INVALID_ENVELOPE, "detail: field required")
    if not isinstance(data["detail"], dict):
        kind = json_type(data["detail"])
        raise InvalidEvent(DlqReason.INVALID_ENVELOPE, f"detail: must be a JSON object, not {kind}")
    _validate(EventBridgeEnvelope, data, DlqReason.INVALID_ENVELOPE, "")
    event_id: str = data["id"]
    _check_id(event_id)
    detail: dict[str, Any] = data["detail"]
    source: str = data["source"]
    detail_type: str = data["detail-type"]
    invalid = DlqReason.INVALID_DETAIL
    if source.startswith(GENESYS_SOURCE_PREFIX):
        _validate(GenesysDetail, detail, invalid, "detail", event_id)
        event_body = detail["eventBody"]
        wrong = _numeric_checks().check(detail_type, event_body, "detail.eventBody.")
        if wrong is not None:
            raise InvalidEvent(invalid, wrong, event_id)
        if detail_type.startswith(AUDIT_TOPIC_PREFIX):
            _validate(AuditEventBody, event_body, invalid, "detail.eventBody", event_id)
    elif source == SIMPLIFIED_SOURCE:
        _validate(SimplifiedDetail, detail, invalid, "detail", event_id)
    return Event(id=event_id, detail_type=detail_type, source=source, data=data, body=body)


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key[:64])
            seen.add(key)
    return obj


_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _reject_duplicate_keys(body: str, data: dict[str, Any]) -> None:
    """A key twice in one object is invalid (I-JSON, RFC 7493): orjson keeps the last value,
    other parsers the first or fail, so the copy a consumer reads could say something else
    than what the rules matched. EventBridge never sends one.

    Fast path: a compact body (as EventBridge writes it) that orjson re-serializes byte for
    byte lost no key, so it repeated none (0.7 us for a 1 KB event). Any other body: orjson
    has no hook for duplicates, so the stdlib's C scanner reads it once more (7.5 us)."""
    try:
        if orjson.dumps(data) == body.encode():
            return
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254): the scan decides
        pass
    try:
        _PAIRS_DECODER.decode(body)
    except _DuplicateKey as exc:
        raise InvalidEvent(
            DlqReason.INVALID_JSON, f"body has a duplicate key {exc.args[0]!r}"
        ) from None
    except RecursionError:  # orjson allows 1024 levels, the stdlib scanner a few less
        raise InvalidEvent(
            DlqReason.INVALID_JSON, "body is not JSON: depth limit exceeded"
        ) from None


class _Checks:
    """The packaged catalog's numeric checks, compiled on first use and kept here (on a class,
    not a module global) for the life of the process."""

    compiled: NumericChecks | None = None


def _numeric_checks() -> NumericChecks:
    checks = _Checks.compiled
    if checks is None:
        checks = _Checks.compiled = NumericChecks()
    return checks
