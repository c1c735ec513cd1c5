"""Schema-aware rule checks (pure): rules read against the Genesys topic catalog.

A rule that names ``detail.eventBody.interactingDurationMS`` or compares ``acdOutcome`` with
``'Abandon'`` loads fine and never matches. For JMESPath conditions (the jmespath AST) and
EventBridge patterns alike, this finds:

* a field path under ``detail.eventBody`` that no topic has, or that the topics the rule selects
  by ``detail-type`` do not have, with the nearest real field;
* a string literal compared with an enum field that is not one of its values;
* a numeric comparison on a string field, and a string compared with a numeric field.

Warnings only: the service logs them and keeps the rules (Genesys adds fields; the catalog may
lag). ``fanout rules check --strict`` makes them errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath
import orjson

from fanout.genesys.catalog import Catalog, FieldInfo, Topic
from fanout.rules.model import Rule, RuleSet

_BODY = ("detail", "eventBody")
_ORDERING = frozenset({"lt", "gt", "lte", "gte"})
_COMPARATORS = _ORDERING | {"eq", "ne"}
_OPEN_TYPES = frozenset({"object", "any"})


@dataclass(frozen=True, slots=True)
class LintWarning:
    """One finding.

    Parameters:
        rule_id: the rule it is about.
        path: the field path under ``detail.eventBody`` (``wrapupCode``).
        message: what is wrong.
        fix: what to write instead.
    """

    rule_id: str
    path: str
    message: str
    fix: str

    def render(self, file: str) -> str:
        return f"{file}: rule '{self.rule_id}': {self.message}; fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule_id, "path": self.path, "message": self.message, "fix": self.fix}


def lint_rules(ruleset: RuleSet, catalog: Catalog | None = None) -> list[LintWarning]:
    """Every warning of every rule, in file order."""
    cat = catalog if catalog is not None else Catalog.packaged()
    out: list[LintWarning] = []
    for rule in ruleset.rules:
        out.extend(lint_rule(rule, cat))
    return out


def log_warnings(ruleset: RuleSet, log: logging.Logger) -> int:
    """Log each warning once (at start and after each reload); the rules stay in force.
    Returns how many were logged."""
    try:
        warnings = lint_rules(ruleset)
    except Exception:  # a checker bug must never stop the service from routing
        log.exception("rules schema check failed; the rules are in force unchecked")
        return 0
    for w in warnings:
        log.warning("rules schema check: %s", w.render(ruleset.path))
    return len(warnings)


def lint_rule(rule: Rule, catalog: Catalog) -> list[LintWarning]:
    if rule.kind == "pattern":
        uses = list(_pattern_uses(orjson.loads(rule.condition)))
    else:
        uses = list(_jmespath_uses(jmespath.compile(rule.condition).parsed))
    selected = [u.literal for u in uses if u.detail_type]
    scope: list[Topic] | None = None
    # Exact detail-types scope the checks; a prefix or anything-but leaves all topics open.
    if selected and all(isinstance(s, str) for s in selected):
        topics = [catalog.topic(s) for s in selected]
        known = [t for t in topics if t is not None]
        if len(known) != len(topics):
            return []  # a topic the catalog does not know may have any field
        scope = known
    checker = _Checker(rule.id, catalog, scope)
    seen: set[tuple[str, str]] = set()
    out: list[LintWarning] = []
    for use in uses:
        if use.detail_type:
            continue
        for w in checker.check(use):
            if (w.path, w.message) not in seen:
                seen.add((w.path, w.message))
                out.append(w)
    return out


# --- what a rule does with a field ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Use:
    """A field path under ``detail.eventBody`` and how the rule compares it.

    Parameters:
        path: catalog-style path (``participants[].userId``).
        op: ``eq`` / ``ne`` / ``lt`` ... / ``in`` (a list of values), or None (read only).
        literal: the value compared with, when one is.
        has_literal: whether ``literal`` is meaningful (it may be JSON null).
        detail_type: the use is a ``detail-type`` selection, not a body field.
        pattern: the path comes from an EventBridge pattern (arrays are implicit there).
        numeric_test: an EventBridge ``numeric`` test (wants a number field).
    """

    path: str
    op: str | None = None
    literal: Any = None
    has_literal: bool = False
    detail_type: bool = False
    pattern: bool = False
    numeric_test: bool = False


def _path_of(node: Mapping[str, Any]) -> list[str] | None:
    """The field segments of a plain path expression (list steps end in ``[]``), or None."""
    kind = node.get("type")
    if kind == "field":
        return [node["value"]]
    if kind == "subexpression":
        out: list[str] = []
        for child in node["children"]:
            part = _path_of(child)
            if part is None:
                return None
            out.extend(part)
        return out
    if kind in ("index_expression", "projection", "flatten"):
        children = node["children"]
        left = _path_of(children[0])
        if left is None or not left:
            return None
        left[-1] += "[]" if not left[-1].endswith("[]") else ""
        if kind == "projection" and len(children) > 1 and children[1].get("type") != "identity":
            right = _path_of(children[1])
            if right is None:
                return None
            return left + right
        return left
    return None


def _body_path(segments: list[str] | None) -> str | None:
    if segments is None or len(segments) < 3 or tuple(segments[:2]) != _BODY:
        return None
    return ".".join(segments[2:])


def _jmespath_uses(node: Mapping[str, Any]) -> Iterator[_Use]:
    kind = node.get("type")
    children: Sequence[Mapping[str, Any]] = node.get("children", ())
    if kind == "comparator" and node.get("value") in _COMPARATORS and len(children) == 2:
        op = node["value"]
        for mine, other in ((children[0], children[1]), (children[1], children[0])):
            segments = _path_of(mine)
            if other.get("type") != "literal" or segments is None:
                continue
            if segments == ["detail-type"] and op == "eq":
                yield _Use("", op, other["value"], True, detail_type=True)
                return
            path = _body_path(segments)
            if path is not None:
                yield _Use(path, _flip(op) if mine is children[1] else op, other["value"], True)
                return
    if kind == "function_expression" and node.get("value") == "contains" and len(children) == 2:
        values, subject = children
        segments = _path_of(subject)
        if values.get("type") == "multi_select_list" and segments is not None:
            literals = [c["value"] for c in values["children"] if c.get("type") == "literal"]
            if len(literals) == len(values["children"]):
                if segments == ["detail-type"]:
                    for lit in literals:
                        yield _Use("", "eq", lit, True, detail_type=True)
                    return
                path = _body_path(segments)
                if path is not None:
                    yield _Use(path, "in", literals, True)
                    return
    path = _body_path(_path_of(node))
    if path is not None:
        yield _Use(path)
        return
    for child in children:
        if isinstance(child, Mapping):
            yield from _jmespath_uses(child)


def _flip(op: str) -> str:
    return {"lt": "gt", "gt": "lt", "lte": "gte", "gte": "lte"}.get(op, op)


def _pattern_uses(pattern: Mapping[str, Any]) -> Iterator[_Use]:
    for key, value in pattern.items():
        if key == "$or" and isinstance(value, list):
            for alt in value:
                if isinstance(alt, Mapping):
                    yield from _pattern_uses(alt)
        elif key == "detail-type" and isinstance(value, list):
            for v in value:
                # Only exact names select topics; a prefix or anything-but leaves them open.
                yield _Use("", "eq", v if isinstance(v, str) else None, True, detail_type=True)
        elif key == "detail" and isinstance(value, Mapping):
            body = value.get("eventBody")
            if isinstance(body, Mapping):
                yield from _pattern_body(body, "")
            alts = value.get("$or")
            if isinstance(alts, list):
                for alt in alts:
                    if isinstance(alt, Mapping) and isinstance(alt.get("eventBody"), Mapping):
                        yield from _pattern_body(alt["eventBody"], "")


def _pattern_body(node: Mapping[str, Any], prefix: str) -> Iterator[_Use]:
    for key, value in node.items():
        if key == "$or" and isinstance(value, list):
            for alt in value:
                if isinstance(alt, Mapping):
                    yield from _pattern_body(alt, prefix)
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _pattern_body(value, path + ".")
        elif isinstance(value, list):
            strings = [v for v in value if isinstance(v, str)]
            numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
            numeric = any(isinstance(v, Mapping) and "numeric" in v for v in value)
            if strings:
                yield _Use(path, "in", strings, True, pattern=True)
            if numbers:
                yield _Use(path, "in", numbers, True, pattern=True)
            if numeric:
                yield _Use(path, "numeric", None, False, pattern=True, numeric_test=True)
            if not (strings or numbers or numeric):
                yield _Use(path, pattern=True)


# --- checking uses against the catalog ------------------------------------------------------


class _Checker:
    """Checks one rule's uses.

    Parameters:
        rule_id: for the warnings.
        catalog: the topics.
        scope: the topics the rule selects by ``detail-type``, None for all.
    """

    def __init__(self, rule_id: str, catalog: Catalog, scope: list[Topic] | None) -> None:
        self.rule_id = rule_id
        self.catalog = catalog
        self.scope = scope

    def _lookup(self, topic: Topic, path: str, pattern: bool) -> FieldInfo | bool | None:
        """The field, True when the path is under a field the catalog leaves open, else None."""
        info = topic.fields.get(path)
        if info is None and pattern:
            # A pattern walks arrays implicitly: participants.userId is participants[].userId.
            info = self.catalog.pattern_fields(topic).get(path)
        if info is not None:
            return info
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:i])
            head = topic.fields.get(prefix) or (
                self.catalog.pattern_fields(topic).get(prefix) if pattern else None
            )
            if head is None:
                head = topic.fields.get(prefix.removesuffix("[]"))
            if head is not None:
                return _is_open(topic, head)
        return None

    def check(self, use: _Use) -> Iterable[LintWarning]:
        topics = self.scope if self.scope is not None else list(self.catalog.topics)
        infos: list[FieldInfo] = []
        for topic in topics:
            found = self._lookup(topic, use.path, use.pattern)
            if found is True:
                return []  # under a free-form object: anything goes
            if isinstance(found, FieldInfo):
                infos.append(found)
        if not infos:
            return [self._unknown(use, topics)]
        return self._compare(use, infos)

    def _unknown(self, use: _Use, topics: list[Topic]) -> LintWarning:
        shown = f"detail.eventBody.{use.path}"
        near = self.catalog.nearest(use.path, topics)
        fix = f"did you mean `{near}`?" if near else "see `fanout topics show <topic>`"
        if self.scope is None:
            return LintWarning(self.rule_id, use.path, f"{shown}: no Genesys topic has it", fix)
        names = ", ".join(t.pattern for t in self.scope)
        elsewhere = [t.pattern for t in self.catalog.topics if use.path in t.fields]
        message = f"{shown}: not a field of {names}"
        if elsewhere:
            fix = (
                f"drop the term or select a topic that has it ({len(elsewhere)} do, e.g. "
                f"{elsewhere[0]})" + (f"; or did you mean `{near}`?" if near else "")
            )
        return LintWarning(self.rule_id, use.path, message, fix)

    def _compare(self, use: _Use, infos: list[FieldInfo]) -> list[LintWarning]:
        if not use.has_literal and not use.numeric_test:
            return []
        shown = f"detail.eventBody.{use.path}"
        types = {i.type if i.type != "array" else (i.items or "array") for i in infos}
        numeric = types <= {"integer", "number"}
        stringy = types == {"string"}
        literals = use.literal if use.op == "in" else [use.literal]
        out: list[LintWarning] = []
        if use.numeric_test or (use.op in _ORDERING and _is_number(use.literal)):
            if stringy:
                out.append(
                    LintWarning(
                        self.rule_id,
                        use.path,
                        f"{shown} is a string, a numeric comparison never matches",
                        "compare it with a string (quoted), or use a numeric field",
                    )
                )
            return out
        strings = [v for v in literals if isinstance(v, str)]
        numbers = [v for v in literals if _is_number(v)]
        if numeric and strings:
            out.append(
                LintWarning(
                    self.rule_id,
                    use.path,
                    f"{shown} is a number, the string {_quote(strings[0])} never equals it",
                    f"write the number unquoted (`{strings[0]}`)",
                )
            )
        if stringy and numbers:
            out.append(
                LintWarning(
                    self.rule_id,
                    use.path,
                    f"{shown} is a string, the number {numbers[0]} never equals it",
                    f"quote it ({_quote(str(numbers[0]))})",
                )
            )
        if stringy and strings and all(i.enum for i in infos):
            allowed: list[str] = []
            for info in infos:
                allowed += [v for v in info.enum if v not in allowed]
            for value in strings:
                if value in allowed:
                    continue
                case = next((a for a in allowed if a.lower() == value.lower()), None)
                name = use.path.rsplit(".", 1)[-1]
                listed = ", ".join(allowed[:8]) + (", ..." if len(allowed) > 8 else "")
                fix = (
                    f"write {_quote(case)} (values are case-sensitive)"
                    if case
                    else (f"use one of: {listed}")
                )
                out.append(
                    LintWarning(
                        self.rule_id,
                        use.path,
                        f"{_quote(value)}: {name} is one of {listed}",
                        fix,
                    )
                )
        return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _quote(value: str) -> str:
    return f"'{value}'"


def _is_open(topic: Topic, head: FieldInfo) -> bool:
    """True when the catalog lists nothing below ``head`` (a map, or a model cut at depth)."""
    if head.type not in _OPEN_TYPES and not (head.type == "array" and head.items in _OPEN_TYPES):
        return False
    below = (f"{head.path}.", f"{head.path}[].")
    return not any(p.startswith(below) for p in topic.fields)
