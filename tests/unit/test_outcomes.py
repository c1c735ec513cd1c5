"""outcomes.py: the public vocabulary. Its values appear in summaries, metrics and DLQ records,
so a rename must break a test."""

from __future__ import annotations

import pytest

from fanout.outcomes import BAD_INPUT, DlqReason, ErrorKind, Outcome


def test_outcome_values_are_stable() -> None:
    assert {o.value for o in Outcome} >= {"sent", "unmatched", "dlq"}


@pytest.mark.parametrize(
    ("reason", "bad_input"),
    [
        ("invalid_json", True),
        ("invalid_envelope", True),
        ("invalid_detail", True),
        ("rule_error", True),
        ("internal_error", False),
        ("target_rejected", False),
        ("targets_rejected", False),
    ],
)
def test_dlq_reasons_and_which_are_bad_input(reason: str, bad_input: bool) -> None:
    assert DlqReason(reason).is_bad_input is bad_input
    assert (DlqReason(reason) in BAD_INPUT) is bad_input


def test_error_kind_keys() -> None:
    assert ErrorKind.SEND.key("ThrottlingException") == "send:ThrottlingException"
    assert ErrorKind.DELETE.key("ReceiptHandleIsInvalid") == "delete:ReceiptHandleIsInvalid"
    assert ErrorKind.NO_DLQ.key() == "no_dlq"
    assert ErrorKind.RECEIVE.key(None) == "receive"


def test_members_are_plain_strings_in_json_and_logs() -> None:
    assert f"{Outcome.SENT}" == "sent"
    assert str(DlqReason.RULE_ERROR) == "rule_error"
