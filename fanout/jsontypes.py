"""JSON value helpers shared by validation (fanout.events) and the rule engine (fanout.rules)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from numbers import Number
from typing import Any


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value, for error messages that must not quote values."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def bytes_as_base64(value: Any) -> str:
    """orjson's ``default`` hook: bytes (an SQS BinaryValue) as base64, as botocore sends them;
    anything else it cannot encode is a TypeError."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def is_number(x: Any) -> bool:
    """A JSON number: int or float but not bool (JMESPath's and EventBridge's "number")."""
    t = type(x)
    if t is int or t is float:
        return True
    if t is bool or t is str or t is list or t is dict or x is None:
        return False  # the JSON types, decided without the slow ABC isinstance check
    return isinstance(x, Number)
