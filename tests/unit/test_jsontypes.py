"""jsontypes.py: JSON type names (for errors that must not quote values) and number checks."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from fanout.jsontypes import is_number, json_type


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "boolean"),
        (False, "boolean"),
        (0, "number"),
        (1.5, "number"),
        ("", "string"),
        ({}, "object"),
        ([], "array"),
        ((1,), "array"),
        (b"x", "bytes"),
    ],
)
def test_json_type(value: Any, name: str) -> None:
    assert json_type(value) == name


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (0, True),
        (-2.5, True),
        (Decimal("1.1"), True),
        (Fraction(1, 3), True),
        (True, False),  # bool is an int in Python, not a number in JSON
        ("1", False),
        (None, False),
        ([1], False),
        ({"a": 1}, False),
    ],
)
def test_is_number(value: Any, number: bool) -> None:
    assert is_number(value) is number
