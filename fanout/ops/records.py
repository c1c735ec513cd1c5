"""DLQ records as the on-call tools read them (pure): every version fanout has written, and
messages that are not fanout records at all.

Versions (see ``fanout.pipeline.dlq.RECORD_VERSION``): 1 has no ``version`` key; 2 adds
``fifo_ids``. A DLQ message whose body is not a fanout record (e.g. a raw event moved there by
the source queue's own redrive policy) is read as a record of reason ``unknown`` whose body is
the message body itself: it can be inspected, and redriven to the source queue only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from fanout.outcomes import BAD_INPUT

#: The reason of a DLQ message that is not a fanout record.
UNKNOWN_REASON = "unknown"


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """One DLQ message, read. ``receipt_handle`` is the one this read got (for delete and
    release); ``fifo_ids`` may be empty (version 1, or standard targets)."""

    message_id: str
    receipt_handle: str
    reason: str
    error_code: str
    failed_targets: tuple[str, ...]
    event_id: str | None
    source_message_id: str | None
    time: datetime | None
    body: str
    message_attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    fifo_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    version: int = 0  # 0: not a fanout record
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the record as written

    @property
    def is_bad_input(self) -> bool:
        return self.reason in BAD_INPUT

    @property
    def needs_source(self) -> bool:
        """No target copy to deliver: only a pass through the source queue can route it
        (bad input after a fix, an internal error after a fix, a foreign message)."""
        return not self.failed_targets

    @property
    def detail_type(self) -> str | None:
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None
        value = data.get("detail-type") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None


def parse_record(message: Mapping[str, Any]) -> DlqRecord:
    """A ReceiveMessage result (``MessageId``, ``ReceiptHandle``, ``Body``, ``Attributes``) as
    a DlqRecord; never raises on what the body holds."""
    body = str(message.get("Body", ""))
    sent = _sent_time(message.get("Attributes") or {})
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not _is_fanout_record(data):
        return DlqRecord(
            message_id=str(message["MessageId"]),
            receipt_handle=str(message["ReceiptHandle"]),
            reason=UNKNOWN_REASON,
            error_code="",
            failed_targets=(),
            event_id=_envelope_id(data),
            source_message_id=None,
            time=sent,
            body=body,
            message_attributes=_send_attributes(message.get("MessageAttributes") or {}),
        )
    assert isinstance(data, dict)
    failed = data.get("failed_targets") or []
    fifo_ids = data.get("fifo_ids") or {}
    return DlqRecord(
        message_id=str(message["MessageId"]),
        receipt_handle=str(message["ReceiptHandle"]),
        reason=str(data["reason"]),
        error_code=str(data.get("error_code") or ""),
        failed_targets=tuple(str(t) for t in failed if isinstance(t, str)),
        event_id=_str_or_none(data.get("event_id")) or _envelope_id(_loads(data["body"])),
        source_message_id=_str_or_none(data.get("source_message_id")),
        time=_parse_time(data.get("time")) or sent,
        body=data["body"],
        message_attributes=_send_attributes(data.get("message_attributes") or {}),
        fifo_ids={
            str(name): {k: str(v) for k, v in ids.items() if isinstance(v, str)}
            for name, ids in fifo_ids.items()
            if isinstance(ids, dict)
        }
        if isinstance(fifo_ids, dict)
        else {},
        version=int(data.get("version") or 1),
        raw=data,
    )


def _is_fanout_record(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("reason"), str)
        and isinstance(data.get("body"), str)
        and "error_code" in data
    )


def _loads(body: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _envelope_id(data: Any) -> str | None:
    return _str_or_none(data.get("id")) if isinstance(data, dict) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _sent_time(attributes: Mapping[str, Any]) -> datetime | None:
    sent = attributes.get("SentTimestamp")
    try:
        return datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None
    except (TypeError, ValueError):
        return None


def _send_attributes(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Message attributes in SendMessage shape. DLQ records hold BinaryValue base64-encoded
    (JSON has no bytes): decoded back, so a redriven copy carries the original bytes."""
    out: dict[str, dict[str, Any]] = {}
    for name, attr in attributes.items():
        if not isinstance(attr, dict) or "DataType" not in attr:
            continue
        kept: dict[str, Any] = {"DataType": attr["DataType"]}
        if "StringValue" in attr:
            kept["StringValue"] = attr["StringValue"]
        elif "BinaryValue" in attr:
            value = attr["BinaryValue"]
            if isinstance(value, str):
                try:
                    value = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    value = value.encode()
            kept["BinaryValue"] = value
        else:
            continue
        out[str(name)] = kept
    return out
