"""Type strictness from the catalog: every integer and number field of a known topic must
hold a JSON number. ``"120000"`` where the SDK says integer would fail every ``>`` rule
silently; instead the event is dead-lettered with the field named. The conversation detail
events' string fields (and string lists) must hold strings too, as fanout has always checked.

Compiled once per topic into a tree of only the paths that lead to a checked field, so an
event costs one dict lookup per checked field its topic declares (no model validation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fanout.genesys.catalog import Catalog, Topic
from fanout.jsontypes import json_type


@dataclass(slots=True)
class _Node:
    """One key of the tree.

    Parameters:
        kind: ``integer`` / ``number`` when the value itself must be a number, else None.
        items: the same for each item when the value is an array of numbers.
        children: keys below an object value.
        each: keys below each object item of an array value.
    """

    kind: str | None = None
    items: str | None = None
    children: dict[str, _Node] = field(default_factory=dict)
    each: dict[str, _Node] = field(default_factory=dict)


# Topics whose string fields are checked as well: the ones fanout's own model always covered.
STRING_STRICT_PREFIX = "v2.detail.events.conversation."


def _compile(topic: Topic) -> dict[str, _Node]:
    kinds = {"integer", "number"}
    if topic.pattern.startswith(STRING_STRICT_PREFIX):
        kinds.add("string")
    root: dict[str, _Node] = {}
    for info in topic.fields.values():
        checked_items = info.type == "array" and info.items in kinds
        if not (info.type in kinds or checked_items):
            continue
        level = root
        parts = info.path.split(".")
        for part in parts[:-1]:
            name, is_list = (part[:-2], True) if part.endswith("[]") else (part, False)
            node = level.setdefault(name, _Node())
            level = node.each if is_list else node.children
        node = level.setdefault(parts[-1], _Node())
        if checked_items:
            node.items = info.items
        else:
            node.kind = info.type
    return root


def _bad(kind: str, value: Any) -> bool:
    if kind == "string":
        return value.__class__ is not str
    # JSON numbers only: bool is an int subclass in Python but not a number in JSON.
    return value.__class__ is not int and value.__class__ is not float


def _message(path: str, kind: str, value: Any) -> str:
    return f"{path}: Input should be a valid {kind}, not a JSON {json_type(value)}"


def _check(obj: dict[str, Any], tree: dict[str, _Node], prefix: str) -> str | None:
    for key, node in tree.items():
        value = obj.get(key)
        if value is None:
            continue
        if node.kind is not None:
            if _bad(node.kind, value):
                return _message(prefix + key, node.kind, value)
            continue
        if node.items is not None and value.__class__ is list:
            for i, item in enumerate(value):
                if item is not None and _bad(node.items, item):
                    return _message(f"{prefix}{key}.{i}", node.items, item)
        if node.children and value.__class__ is dict:
            found = _check(value, node.children, f"{prefix}{key}.")
            if found:
                return found
        if node.each and value.__class__ is list:
            for i, item in enumerate(value):
                if item.__class__ is dict:
                    found = _check(item, node.each, f"{prefix}{key}.{i}.")
                    if found:
                        return found
    return None


class NumericChecks:
    """Per ``detail-type`` pattern, the compiled checked fields of its ``eventBody``.

    Parameters:
        catalog: the topic catalog (default: the packaged one).
    """

    def __init__(self, catalog: Catalog | None = None) -> None:
        cat = catalog if catalog is not None else Catalog.packaged()
        self._trees = {t.pattern: _compile(t) for t in cat.topics}

    def check(self, detail_type: str, body: dict[str, Any], prefix: str) -> str | None:
        """The first wrong-typed field as ``path: message``, or None (also for a topic
        the catalog does not know: Genesys adds topics)."""
        tree = self._trees.get(detail_type)
        if not tree:
            return None
        return _check(body, tree, prefix)
