"""Events shaped by the catalog (pure): a body for any topic, and the check that a body has
only the fields, types and enum values its topic declares.

``sample_body`` fills every catalogued field of a topic with a value of its type (an enum
value where the SDK lists them), so each topic can be exercised end to end: the local run's
traffic for the topics its lifecycle model does not script, and the tests' "every topic
validates" sweep. ``shape_problems`` is the lint's view of an event: a rule written against
the catalog can match it.
"""

from __future__ import annotations

import random
from typing import Any

from fanout.genesys.catalog import FieldInfo, Topic

# Genesys' own placeholder for a value this SDK version does not know; never sent.
_NOT_SENT = frozenset({"outdated_sdk_version"})
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def _scalar(
    info_type: str, name: str, enum: tuple[str, ...], fmt: str | None, rng: random.Random
) -> Any:
    if enum:
        values = [v for v in enum if v not in _NOT_SENT] or list(enum)
        return values[int(rng.random() * len(values))]
    if info_type == "integer":
        if name.endswith(("Time", "Date")):
            return 1_795_000_000_000 + int(rng.random() * 86_400_000)
        return int(rng.random() * 600_000)
    if info_type == "number":
        return round(rng.random() * 1000, 3)
    if info_type == "boolean":
        return rng.random() < 0.5
    if fmt == "date-time":
        return f"2026-11-28T03:{int(rng.random() * 60):02d}:{int(rng.random() * 60):02d}.000Z"
    if fmt == "date":
        return "2026-11-28"
    if name.lower().endswith("id"):
        return "%08x-%04x-4%03x-8%03x-%012x" % (  # noqa: UP031 - a uuid4-shaped id
            rng.getrandbits(32),
            rng.getrandbits(16),
            rng.getrandbits(12),
            rng.getrandbits(12),
            rng.getrandbits(48),
        )
    return f"{name}-{_WORDS[int(rng.random() * len(_WORDS))]}"


def sample_body(topic: Topic, rng: random.Random) -> dict[str, Any]:
    """An ``eventBody`` with every catalogued field of ``topic``; arrays hold one item."""
    body: dict[str, Any] = {}
    for path in sorted(topic.fields):
        info = topic.fields[path]
        parent: Any = body
        parts = path.split(".")
        ok = True
        for part in parts[:-1]:
            key, is_list = (part[:-2], True) if part.endswith("[]") else (part, False)
            child = parent.get(key) if isinstance(parent, dict) else None
            if is_list:
                if not isinstance(child, list) or not child or not isinstance(child[0], dict):
                    ok = False
                    break
                parent = child[0]
            else:
                if not isinstance(child, dict):
                    ok = False
                    break
                parent = child
        if not ok:
            continue
        name = parts[-1]
        parent[name] = _value(info, name, rng)
    return body


def _value(info: FieldInfo, name: str, rng: random.Random) -> Any:
    if info.type == "object":
        return {}
    if info.type == "any":
        return None
    if info.type == "array":
        if info.items in ("object", None):
            return [{}]
        if info.items in ("array", "any"):
            return []
        return [_scalar(info.items, name, info.enum, None, rng)]
    return _scalar(info.type, name, info.enum, info.format, rng)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def shape_problems(topic: Topic, body: dict[str, Any]) -> list[str]:
    """Fields of ``body`` its topic does not declare, wrong JSON types, out-of-enum strings.

    Below a field the catalog leaves open (a map, or a model past the catalog's depth)
    anything goes."""
    problems: list[str] = []
    _walk(topic, body, "", problems)
    return problems


def _walk(topic: Topic, obj: dict[str, Any], prefix: str, out: list[str]) -> None:
    for key, value in obj.items():
        path = prefix + key
        info = topic.fields.get(path)
        if info is None:
            out.append(f"{path}: not a field of {topic.pattern}")
            continue
        if value is None:
            continue
        if not _typed(info.type, value):
            out.append(f"{path}: {type(value).__name__} where the catalog says {info.type}")
            continue
        if info.enum and isinstance(value, str) and value not in info.enum:
            out.append(f"{path}: {value!r} is not one of its enum values")
        if info.type == "array":
            for item in value:
                if isinstance(item, dict):
                    _walk_open(topic, item, f"{path}[].", out)
                elif info.items and not _typed(info.items, item):
                    out.append(f"{path}[]: {type(item).__name__} where items are {info.items}")
                elif info.enum and isinstance(item, str) and item not in info.enum:
                    out.append(f"{path}[]: {item!r} is not one of its enum values")
        elif info.type == "object" and isinstance(value, dict):
            _walk_open(topic, value, f"{path}.", out)


def _walk_open(topic: Topic, obj: dict[str, Any], prefix: str, out: list[str]) -> None:
    if any(p.startswith(prefix) for p in topic.fields):
        _walk(topic, obj, prefix, out)


def _typed(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(kind, (object,)))
