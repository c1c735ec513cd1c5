"""Type-strict equality of JSON-like values (Python's == says 1 == 1.0 == True)."""

from __future__ import annotations

from typing import Any


def same_json(a: Any, b: Any) -> bool:
    """Equal values of the same JSON kind: ints and floats are both numbers, bools are not."""
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if type(a).__name__ == "_Expression" and type(b).__name__ == "_Expression":
        return True  # a bare expression reference: an opaque object in both evaluators
    return type(a) is type(b) and a == b
