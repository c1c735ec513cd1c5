"""The Genesys topic catalog: for each topic, its ``detail-type`` pattern and the JSON type (and
enum values) of every field path under ``eventBody``, generated from the official SDK's
notification models (``fanout/genesys/generate.py``) and shipped as ``catalog.json``.

Paths are dotted; list items are ``name[].field``. Pure: no I/O but reading the packaged file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

import orjson

NUMERIC_TYPES = frozenset({"integer", "number"})


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field path of a topic's ``eventBody``.

    Parameters:
        path: dotted path under ``eventBody`` (``participants[].userId``).
        type: JSON type: string, integer, number, boolean, object, array or any.
        items: for arrays, the items' JSON type.
        enum: the values the SDK allows (strings), empty when free-form.
        format: ``date-time`` / ``date`` for ISO 8601 strings.
    """

    path: str
    type: str
    items: str | None = None
    enum: tuple[str, ...] = ()
    format: str | None = None

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    def describe(self) -> str:
        kind = f"array of {self.items}" if self.type == "array" and self.items else self.type
        return f"{kind} ({self.format})" if self.format else kind


@dataclass(frozen=True, slots=True)
class Topic:
    """A notification topic as EventBridge delivers it.

    Parameters:
        pattern: the ``detail-type`` (``v2.users.{id}.presence``).
        family: the group it is listed under.
        model: the SDK model of its ``eventBody``.
        confidence: how sure the model mapping is (high, medium, low).
        note: how the model was mapped.
        fields: path -> FieldInfo.
    """

    pattern: str
    family: str
    model: str
    confidence: str
    note: str
    fields: Mapping[str, FieldInfo]
    regex: re.Pattern[str] = field(repr=False, compare=False, default=re.compile(""))

    def matches(self, name: str) -> bool:
        """True for the pattern itself and for a concrete topic name (ids filled in)."""
        return name == self.pattern or self.regex.fullmatch(name) is not None


class Catalog:
    """The topics, by ``detail-type`` pattern.

    Parameters:
        document: the parsed ``catalog.json`` (``{"provenance": ..., "topics": [...]}``).
    """

    _packaged: ClassVar[Catalog | None] = None

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.provenance: Mapping[str, Any] = document["provenance"]
        topics: list[Topic] = []
        for raw in document["topics"]:
            pattern: str = raw["pattern"]
            fields = {
                path: FieldInfo(
                    path,
                    entry["type"],
                    entry.get("items"),
                    tuple(entry.get("enum", ())),
                    entry.get("format"),
                )
                for path, entry in raw["fields"].items()
            }
            regex = re.compile(re.escape(pattern).replace(re.escape("{id}"), r"[^.]+"))
            mapping = raw.get("mapping", {})
            topics.append(
                Topic(
                    pattern,
                    raw["family"],
                    raw["model"],
                    mapping.get("confidence", "high"),
                    mapping.get("note", ""),
                    fields,
                    regex,
                )
            )
        self.topics: tuple[Topic, ...] = tuple(topics)
        self._by_pattern = {t.pattern: t for t in self.topics}
        paths: set[str] = set()
        for t in self.topics:
            paths.update(t.fields)
        self.all_paths: frozenset[str] = frozenset(paths)
        # EventBridge patterns walk arrays implicitly: participants.userId.
        self._pattern_fields = {
            t.pattern: {p.replace("[]", ""): f for p, f in t.fields.items()} for t in self.topics
        }

    @classmethod
    def packaged(cls) -> Catalog:
        """The catalog shipped in the package, read once per process."""
        if cls._packaged is None:
            text = resources.files("fanout.genesys").joinpath("catalog.json").read_bytes()
            cls._packaged = cls(orjson.loads(text))
        return cls._packaged

    def topic(self, name: str) -> Topic | None:
        """The topic of a ``detail-type`` (the pattern) or of a concrete topic name."""
        found = self._by_pattern.get(name)
        if found is not None:
            return found
        return next((t for t in self.topics if t.regex.fullmatch(name)), None)

    def pattern_fields(self, topic: Topic) -> Mapping[str, FieldInfo]:
        """The topic's fields by path as an EventBridge pattern names them (no ``[]``)."""
        return self._pattern_fields[topic.pattern]

    def search(self, text: str | None) -> list[Topic]:
        """Topics whose pattern, family or model contains ``text`` (case-insensitive), or
        that have a field of that name."""
        if not text:
            return list(self.topics)
        needle = text.lower()
        return [
            t
            for t in self.topics
            if needle in t.pattern.lower()
            or needle in t.family.lower()
            or needle in t.model.lower()
            or any(needle == p.rsplit(".", 1)[-1].lower() for p in t.fields)
        ]

    def nearest(self, path: str, topics: Iterable[Topic] | None = None) -> str | None:
        """The closest real field path (for "did you mean"), among ``topics`` or all."""
        pool = self.all_paths if topics is None else {p for t in topics for p in t.fields}
        close = difflib.get_close_matches(path, sorted(pool), n=1, cutoff=0.6)
        if close:
            return close[0]
        lowered = {p.lower(): p for p in pool}
        return lowered.get(path.lower())
