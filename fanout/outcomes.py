"""fanout's vocabulary: what happened to an event, why it was dead-lettered, what failed where.

The values are public: they appear in the exit summary (``--summary-json``), in metric and span
attributes (``fanout.outcome``, ``fanout.dlq.reason``), in DLQ records (``reason``) and in the
``fanout.reason`` message attribute. Renaming a member's value is a breaking change.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What happened to one event (the ``process`` span's ``fanout.outcome``)."""

    #: Copies handed to every matched target (or to the default targets).
    SENT = "sent"
    #: No rule matched and there are no default targets: deleted without a copy.
    UNMATCHED = "unmatched"
    #: The event cannot be routed, or a copy failed for good: it goes to the DLQ.
    DLQ = "dlq"


class DlqReason(StrEnum):
    """Why a DLQ record exists (the record's ``reason`` and the ``fanout.reason`` attribute)."""

    #: The body is not JSON, has a duplicate key, or nests too deep.
    INVALID_JSON = "invalid_json"
    #: JSON, but not an EventBridge envelope (no ``detail`` object, a missing ``id``...).
    INVALID_ENVELOPE = "invalid_envelope"
    #: An EventBridge envelope whose Genesys ``detail`` has a wrong-typed or missing field.
    INVALID_DETAIL = "invalid_detail"
    #: A rule's condition raised on this event (e.g. a function given the wrong type).
    RULE_ERROR = "rule_error"
    #: A bug in fanout while handling the event: the event is kept, not lost.
    INTERNAL_ERROR = "internal_error"
    #: Copies to one or more targets failed for good, all with the same error code.
    TARGET_REJECTED = "target_rejected"
    #: Copies to several targets failed for good, with different error codes.
    TARGETS_REJECTED = "targets_rejected"
    #: A failing target already held FANOUT_TARGET_MAX_PENDING copies: this one was not queued.
    TARGET_BACKLOG = "target_backlog"

    @property
    def is_bad_input(self) -> bool:
        """The event itself is at fault: resending it as it is cannot succeed."""
        return self in BAD_INPUT


BAD_INPUT = frozenset(
    {
        DlqReason.INVALID_JSON,
        DlqReason.INVALID_ENVELOPE,
        DlqReason.INVALID_DETAIL,
        DlqReason.RULE_ERROR,
    }
)


class ReloadResult(StrEnum):
    """How a rules reload ended (the ``result`` attribute of ``fanout.rules.reloads``)."""

    #: The new rules are in force.
    OK = "ok"
    #: The new file did not load, compile or check: the running rules stay in force.
    ERROR = "error"


class ErrorKind(StrEnum):
    """Where an error happened: the prefix of the exit summary's ``errors`` keys
    (``send:ThrottlingException``, ``delete:ReceiptHandleIsInvalid``...)."""

    #: ReceiveMessage on the source queue failed (the pollers retry).
    RECEIVE = "receive"
    #: A copy failed for good on a target (its message goes to the DLQ).
    SEND = "send"
    #: DeleteMessageBatch failed for a settled message (it will be redelivered).
    DELETE = "delete"
    #: Extending a held message's visibility failed.
    EXTEND = "extend"
    #: The DLQ did not accept a record (the message is left for redelivery).
    DLQ_WRITE = "dlq_write"
    #: A message should have been dead-lettered but no DLQ is configured.
    NO_DLQ = "no_dlq"
    #: A message was held past its maximum hold without settling (left for redelivery).
    HELD_TOO_LONG = "held_too_long"
    #: A FIFO group goes on without one of its messages (dead-lettered): ``fifo_gap:<target>``
    #: for a copy that failed for good on a FIFO target, ``fifo_gap:source`` for a message of
    #: a FIFO source queue that went to the DLQ.
    FIFO_GAP = "fifo_gap"

    def key(self, code: str | None = None) -> str:
        """The summary key: ``kind:code``, or just ``kind`` when there is no code."""
        return f"{self}:{code}" if code else str(self)
