"""Discriminating rule index (pure): evaluate only the rules an event can possibly match.

Each rule gets a ``RulePlan``: the field tests it cannot match without.

* JMESPath conditions: the top-level ``&&`` terms of the forms ``field == literal`` (either
  side) and ``contains(<literal list>, field)`` form one compound key (``"detail-type"`` and
  ``queueId`` both hit, not either); without them, an ``||`` of index terms,
  ``starts_with(field, 'literal')`` or ``field > `number``` (<, <=, >=) is used. A rule made
  only of key terms is ``complete``: a key hit is a match and the condition is not evaluated.
* EventBridge patterns: the terms ``EventPattern.required_terms()`` reports.

Per event the index builds one key per distinct set of key paths (one dict lookup each), one
bisect per range path and a few slices per prefix path; the lookups of a rule set run as one
generated straight-line function. Rules with nothing indexable are evaluated for every event.

The index changes cost, never results. Three things make that hold:

* Keys are type-tagged the way JMESPath compares (``true != 1``, ``1 == 1.0``) although Python
  hashes 1, 1.0 and True alike; ``contains`` follows Python ``in`` as the library does.
* JMESPath paths on a list are null (strict walk); pattern paths use EventBridge array
  semantics (the value or any element). The two lookup modes never share a table.
* A rule is skipped only when an indexed term is false *and* nothing evaluated before it could
  have raised. Terms that raise only on a given type (``starts_with`` on a non-string, ``<`` of
  a string with a number) become guards: the rule is a candidate when the guard's type shows up.
  Anything else that might raise ends the terms the index may use.
"""

from __future__ import annotations

import json
import math
import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, product
from types import MappingProxyType
from typing import Any, Literal, Protocol

from fanout.rules.jmescompile import field_path

Mode = Literal["jmespath", "pattern"]
# not_string: raises unless the value is a string (starts_with, ends_with)
# string / number: raises when the value is a string / a number (ordering comparisons)
GuardKind = Literal["not_string", "string", "number"]
Path = tuple[str, ...]

# Most keys a rule's compound key may expand to (contains() lists multiply); past it the
# largest term is left out of the key (still checked by the condition itself).
MAX_KEYS_PER_RULE = 4096
_ORDERING = frozenset({"lt", "lte", "gt", "gte"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _NoKey:
    """Key of a value no indexed literal can equal (objects, arrays, NaN)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no key>"


NO_KEY: Hashable = _NoKey()
_TRUE: Hashable = ("bool", True)
_FALSE: Hashable = ("bool", False)


def json_key(value: Any) -> Hashable:
    """Key under which JMESPath ``==`` equality is dict equality: true != 1, 1 == 1.0.

    Looks like fanout.rules.patterns.value_key on purpose, but the two tables never mix: a
    JMESPath path through a list yields null, while an EventBridge pattern looks into arrays."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if cls is int:
        return value  # type: ignore[no-any-return]
    if cls is float:
        return value if math.isfinite(value) else NO_KEY
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, (int, float)):
        return json_key(int(value) if isinstance(value, int) else float(value))
    return NO_KEY


def _contains_keys(value: Any) -> tuple[Hashable, ...] | None:
    """Keys an event value may have to be ``in`` a literal list holding ``value``.

    jmespath's contains() is Python ``in``, where True == 1 == 1.0: a bool element also
    catches 1/1.0, and 0/1 also catch false/true. None when ``value`` is not indexable.
    """
    if value is None or isinstance(value, str):
        return (json_key(value),)
    if isinstance(value, bool):
        return (json_key(value), int(value))
    if isinstance(value, (int, float)) and math.isfinite(value):
        if value in (0, 1):
            return (json_key(value), json_key(bool(value)))
        return (json_key(value),)
    return None


# --- plans ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexTerm:
    """The rule can only match if the value at ``path`` has a key in ``exact`` or is a string
    starting with one of ``prefixes`` (pattern mode: the value or any of its elements) or,
    with ``op`` set, is a number with ``value <op> bound``."""

    path: Path
    exact: frozenset[Hashable]
    prefixes: tuple[str, ...] = ()
    text: str = ""
    op: Literal["", "lt", "lte", "gt", "gte"] = ""
    bound: float = 0.0


@dataclass(frozen=True, slots=True)
class Guard:
    path: Path
    kind: GuardKind


@dataclass(frozen=True, slots=True)
class RulePlan:
    """How the index finds a rule; the first non-empty of exact, any_of, prefix, range is used."""

    mode: Mode
    exact: tuple[IndexTerm, ...] = ()  # all must hit: one compound key
    any_of: tuple[IndexTerm, ...] = ()  # one must hit (an || of index terms)
    prefix: IndexTerm | None = None
    range: IndexTerm | None = None
    guards: tuple[Guard, ...] = ()
    reason: str = ""  # why the rule is evaluated for every event
    # The compound key is the whole condition: a hit is a match, no evaluation needed.
    complete: bool = False

    @property
    def indexed(self) -> bool:
        return bool(self.exact or self.any_of or self.prefix or self.range)

    def describe(self) -> list[str]:
        """One line per index term, for ``fanout rules check``."""
        if self.exact:
            lines = [t.text for t in self.exact]
        elif self.any_of:
            lines = [" || ".join(t.text for t in self.any_of)]
        elif self.prefix is not None:
            lines = [self.prefix.text]
        elif self.range is not None:
            lines = [self.range.text]
        else:
            lines = []
        lines += [f"also evaluated when {render_path(g.path)} is {_GUARD_TEXT[g.kind]}"
                  for g in self.guards]  # fmt: skip
        return lines


_GUARD_TEXT: dict[GuardKind, str] = {
    "not_string": "not a string (starts_with/ends_with would raise)",
    "string": "a string (comparing it with a number raises)",
    "number": "a number (comparing it with a string raises)",
}


class PatternTermLike(Protocol):
    @property
    def path(self) -> tuple[str, ...]: ...
    @property
    def exact(self) -> frozenset[Hashable]: ...
    @property
    def prefixes(self) -> tuple[str, ...]: ...


def plan_pattern(terms: Sequence[PatternTermLike]) -> RulePlan:
    """Plan of a pattern rule from its ``required_terms()``."""
    exact: list[IndexTerm] = []
    mixed: list[IndexTerm] = []
    for t in terms:
        shown = [_show(k) for k in sorted(t.exact, key=repr)]
        shown += [f"prefix {json.dumps(p)}" for p in t.prefixes]
        term = IndexTerm(
            tuple(t.path),
            frozenset(t.exact),
            tuple(t.prefixes),
            f"{render_path(tuple(t.path))} in [{', '.join(shown)}]",
        )
        (mixed if t.prefixes else exact).append(term)
    if exact:
        return RulePlan("pattern", exact=_cap(_merge(exact)))
    if mixed:
        return RulePlan("pattern", prefix=min(mixed, key=_prefix_rank))
    return RulePlan(
        "pattern",
        reason="the pattern has no exact or prefix value list every match needs "
        "(only numeric, exists, anything-but, suffix, wildcard, equals-ignore-case or $or)",
    )


def plan_jmespath(ast: Mapping[str, Any]) -> RulePlan:
    """Plan of a JMESPath condition from its AST (``jmespath.parser.Parser().parse(e).parsed``)."""
    terms = conjunction_terms(ast)
    exact: list[tuple[int, IndexTerm]] = []
    any_ofs: list[tuple[int, tuple[IndexTerm, ...]]] = []
    prefixes: list[tuple[int, IndexTerm]] = []
    ranges: list[tuple[int, IndexTerm]] = []
    upto: list[list[Guard]] = []  # guards of the terms up to and including term i
    blocked: Mapping[str, Any] | None = None
    for pos, term in enumerate(terms):
        term_guards = _guards(term)
        if term_guards is None:
            blocked = term
            break
        upto.append((upto[-1] if upto else []) + term_guards)
        found = _index_term(term)
        if found is None:
            continue
        if isinstance(found, tuple):
            any_ofs.append((pos, found))
        elif found.prefixes:
            prefixes.append((pos, found))
        elif found.op:
            ranges.append((pos, found))
        else:
            exact.append((pos, found))

    def guards(*used: int) -> tuple[Guard, ...]:
        # Every term evaluated before a used one could raise where the naive run would.
        return _dedupe(upto[max(used)])

    if exact:
        key = _cap(_merge([t for _, t in exact]))
        # Key equality is exactly JMESPath's == / contains() on the strict path value.
        complete = len(exact) == len(terms) and len(key) == len({t.path for _, t in exact})
        used = [pos for pos, t in exact if t.path in {k.path for k in key}]
        return RulePlan("jmespath", exact=key, guards=guards(*used), complete=complete)
    if any_ofs:
        pos, alternatives = min(any_ofs, key=lambda e: len(e[1]))
        return RulePlan("jmespath", any_of=alternatives, guards=guards(pos))
    if prefixes:
        pos, prefix = min(prefixes, key=lambda e: _prefix_rank(e[1]))
        return RulePlan("jmespath", prefix=prefix, guards=guards(pos))
    if ranges:
        pos, bound = ranges[0]
        return RulePlan("jmespath", range=bound, guards=guards(pos))
    later = terms[terms.index(blocked) + 1 :] if blocked is not None else []
    if any(_index_term(t) is not None for t in later):
        reason = (
            f"`{render(blocked or {})}` may raise an error on some events, so the terms "
            "after it cannot rule the condition out"
        )
    else:
        reason = (
            "no top-level && term of the form field == literal, contains([literals], field), "
            "starts_with(field, 'literal'), field > `number` (or <, <=, >=), "
            "or an || of such terms"
        )
    return RulePlan("jmespath", reason=reason)


def conjunction_terms(ast: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The top-level ``&&`` terms, left to right (a single term if there is no ``&&``)."""
    if ast.get("type") == "and_expression":
        left, right = ast["children"]
        return [*conjunction_terms(left), *conjunction_terms(right)]
    return [ast]


_FLIP: dict[str, Literal["lt", "lte", "gt", "gte"]] = {
    "lt": "gt",
    "lte": "gte",
    "gt": "lt",
    "gte": "lte",
}


def _index_term(node: Mapping[str, Any]) -> IndexTerm | tuple[IndexTerm, ...] | None:
    """The index term ``node`` is (an || of exact terms gives a tuple), or None."""
    kind = node.get("type")
    children = node.get("children", [])
    if kind == "or_expression":
        alternatives: list[IndexTerm] = []
        for child in children:
            found = _index_term(child)
            if isinstance(found, tuple):
                alternatives += found
            elif found is not None:
                alternatives.append(found)
            else:
                return None
        return tuple(alternatives)
    if kind == "comparator" and node.get("value") in _ORDERING:
        op = node["value"]
        left, right = children
        path = field_path(left)
        lit = right
        if path is None:
            path, lit, op = field_path(right), left, _FLIP[op]
        if path and lit.get("type") == "literal":
            bound = lit["value"]
            number = isinstance(bound, (int, float)) and not isinstance(bound, bool)
            if number and not math.isnan(bound):
                return IndexTerm(path, frozenset(), text=render(node), op=op, bound=bound)
        return None
    if kind == "comparator" and node.get("value") == "eq":
        left, right = children
        for a, b in ((left, right), (right, left)):
            path = field_path(a)
            if path and b.get("type") == "literal":
                value = b["value"]
                key = json_key(value) if _is_scalar(value) else NO_KEY
                if key is NO_KEY:
                    return None
                return IndexTerm(path, frozenset((key,)), text=render(node))
        return None
    if kind == "function_expression" and len(children) == 2:
        name = node.get("value")
        if name == "contains":
            values = _literal_list(children[0])
            path = field_path(children[1])
            if values is None or not path:
                return None
            keys: set[Hashable] = set()
            for v in values:
                ks = _contains_keys(v)
                if ks is None:
                    return None
                keys.update(ks)
            return IndexTerm(path, frozenset(keys), text=render(node))
        if name == "starts_with":
            path = field_path(children[0])
            lit = children[1]
            if path and lit.get("type") == "literal" and isinstance(lit["value"], str):
                return IndexTerm(path, frozenset(), (lit["value"],), text=render(node))
    return None


def _guards(node: Mapping[str, Any]) -> list[Guard] | None:
    """When ``node`` can raise: [] never, guards if only on those types, None if unknown."""
    kind = node.get("type")
    children: list[Mapping[str, Any]] = node.get("children", [])
    if kind in ("field", "literal", "current", "identity"):
        return []
    if kind == "subexpression":
        return [] if field_path(node) else None
    if kind in ("and_expression", "or_expression", "not_expression"):
        out: list[Guard] = []
        for child in children:
            g = _guards(child)
            if g is None:
                return None
            out += g
        return out
    if kind == "comparator":
        if node.get("value") not in _ORDERING:
            return _guards({"type": "and_expression", "children": children})
        # Ordering: null unless both are numbers or both strings; a string with a number
        # raises TypeError in the jmespath library.
        left, right = children
        for a, b in ((left, right), (right, left)):
            path = field_path(a)
            if path and b.get("type") == "literal":
                value = b["value"]
                if isinstance(value, str):
                    return [Guard(path, "number")]
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return [Guard(path, "string")]
                return []
        return None
    if kind == "function_expression" and len(children) == 2:
        name = node.get("value")
        if name == "contains" and _literal_list(children[0]) is not None:
            return _guards(children[1])
        if name in ("starts_with", "ends_with"):
            path = field_path(children[0])
            lit = children[1]
            if path and lit.get("type") == "literal" and isinstance(lit["value"], str):
                return [Guard(path, "not_string")]
    return None


def _literal_list(node: Mapping[str, Any]) -> list[Any] | None:
    if node.get("type") == "literal" and isinstance(node["value"], list):
        return list(node["value"])
    if node.get("type") == "multi_select_list" and all(
        c.get("type") == "literal" for c in node["children"]
    ):
        return [c["value"] for c in node["children"]]
    return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _merge(terms: list[IndexTerm]) -> list[IndexTerm]:
    """Exact terms on one path: the value must satisfy all, so intersect their sets."""
    by_path: dict[Path, IndexTerm] = {}
    for t in terms:
        prev = by_path.get(t.path)
        if prev is None:
            by_path[t.path] = t
        else:
            by_path[t.path] = IndexTerm(
                t.path, prev.exact & t.exact, (), f"{prev.text} && {t.text}"
            )
    return list(by_path.values())


def _cap(terms: list[IndexTerm]) -> tuple[IndexTerm, ...]:
    """Leave the largest value sets out of the compound key until it expands to few keys."""
    kept = sorted(terms, key=lambda t: len(t.exact))
    while len(kept) > 1 and math.prod(len(t.exact) for t in kept) > MAX_KEYS_PER_RULE:
        kept.pop()
    order = {id(t): i for i, t in enumerate(terms)}
    return tuple(sorted(kept, key=lambda t: order[id(t)]))


def _prefix_rank(term: IndexTerm) -> tuple[int, int]:
    # Longer prefixes select more; fewer alternatives too.
    return (-min((len(p) for p in term.prefixes), default=0), len(term.exact) + len(term.prefixes))


def _dedupe(guards: list[Guard]) -> tuple[Guard, ...]:
    return tuple(dict.fromkeys(guards))


# --- rendering (for rules check / rules test; never shows event values) ---------------------


def render_path(path: Path) -> str:
    return ".".join(p if _IDENT.fullmatch(p) else json.dumps(p) for p in path)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if value in (_TRUE, _FALSE):
        return "true" if value == _TRUE else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return _show(value[1])  # a tagged key from patterns.value_key
    return "`" + json.dumps(value) + "`"


_OPS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def render(node: Mapping[str, Any]) -> str:
    """JMESPath text of an AST node (equivalent, not byte-identical, to what the user wrote)."""
    kind = node.get("type")
    ch: list[Mapping[str, Any]] = node.get("children", [])
    if kind == "field":
        return render_path((str(node["value"]),))
    if kind == "subexpression":
        return ".".join(render(c) for c in ch)
    if kind == "literal":
        value = node["value"]
        if isinstance(value, str):
            return _show(value)
        return "`" + json.dumps(value) + "`"
    if kind == "comparator":
        return f"{render(ch[0])} {_OPS.get(node['value'], node['value'])} {render(ch[1])}"
    if kind == "and_expression":
        return f"{render(ch[0])} && {render(ch[1])}"
    if kind == "or_expression":
        return f"({render(ch[0])} || {render(ch[1])})"
    if kind == "not_expression":
        return f"!{render(ch[0])}"
    if kind == "function_expression":
        return f"{node['value']}({', '.join(render(c) for c in ch)})"
    if kind == "multi_select_list":
        return "[" + ", ".join(render(c) for c in ch) + "]"
    if kind in ("current", "identity"):
        return "@"
    if kind == "index_expression":
        return "".join(render(c) for c in ch)
    if kind == "index":
        return f"[{node['value']}]"
    if kind == "expref":
        return "&" + render(ch[0])
    if kind == "pipe":
        return f"{render(ch[0])} | {render(ch[1])}"
    return f"<{kind} expression>"


# --- the index -----------------------------------------------------------------------------

# A trie of the indexed paths, so ``detail.eventBody`` is looked up once per event:
# (field name, slot or -1, children).
_Trie = tuple[tuple[str, int, "_Trie"], ...]


def _build_trie(paths: Sequence[Path]) -> _Trie:
    groups: dict[str, tuple[int, list[Path]]] = {}
    for slot, path in enumerate(paths):
        head, rest = path[0], path[1:]
        own, subs = groups.get(head, (-1, []))
        if rest:
            subs.append(rest)
        else:
            own = slot
        groups[head] = (own, subs)
    out = []
    for name, (own, subs) in groups.items():
        # Sub-paths keep their global slot numbers.
        sub_slots = [paths.index((name, *sub)) for sub in subs]
        out.append((name, own, _renumber(_build_trie(subs), sub_slots)))
    return tuple(out)


def _renumber(trie: _Trie, slots: list[int]) -> _Trie:
    return tuple(
        (name, slots[own] if own >= 0 else -1, _renumber(sub, slots)) for name, own, sub in trie
    )


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _generate(
    trie: _Trie,
    signatures: list[tuple[tuple[int, ...], dict[Hashable, int]]],
    prefixes: list[tuple[int, dict[str, int], tuple[int, ...]]],
    ranges: list[tuple[int, bool, list[float], list[int]]],
    guards: list[tuple[int, int, int, int]],
    always: int,
) -> Callable[[Mapping[str, Any]], int]:
    """The JMESPath-mode lookups of one index as one straight-line Python function.

    Per event the index does a few dozen dict lookups; as generated code they cost a fraction
    of the same work driven by loops over tables. The source holds only ``repr()``s of field
    names and references to this index's own tables: no rule text is executed.
    """
    env: dict[str, Any] = {
        "_jk": json_key,
        "_Mapping": Mapping,
        "_EMPTY": _EMPTY,
        "_bl": bisect_left,
        "_br": bisect_right,
        "ALWAYS": always,
    }
    lines = ["def candidates(n0):", "    mask = ALWAYS"]
    nodes = [0]

    def walk(node: str, sub: _Trie) -> None:
        for name, slot, children in sub:
            expr = f"{node}.get({name!r})"
            if slot >= 0:
                lines.append(f"    v{slot} = {expr}")
                expr = f"v{slot}"
            if children:
                nodes[0] += 1
                child = f"n{nodes[0]}"
                lines.append(f"    {child} = {expr}")
                # JMESPath: a field of anything but an object (a list too) is null.
                lines.append(
                    f"    if {child}.__class__ is not dict and not isinstance({child}, _Mapping):"
                )
                lines.append(f"        {child} = _EMPTY")
                walk(child, children)

    walk("n0", trie)
    keyed = sorted({slot for slots, _ in signatures for slot in slots})
    for slot in keyed:
        lines.append(f"    k{slot} = v{slot} if v{slot}.__class__ is str else _jk(v{slot})")
    for i, (slots, table) in enumerate(signatures):
        env[f"T{i}"] = table
        key = f"k{slots[0]}" if len(slots) == 1 else "(" + ", ".join(f"k{s}" for s in slots) + ")"
        lines.append(f"    mask |= T{i}.get({key}, 0)")
    for i, (slot, by_prefix, lengths) in enumerate(prefixes):
        env[f"P{i}"] = by_prefix
        # v[:n] of a shorter string is the string itself: a hit is still a true prefix.
        hits = " | ".join(f"P{i}.get(v{slot}[:{n}], 0)" for n in lengths)
        lines.append(f"    if isinstance(v{slot}, str):")
        lines.append(f"        mask |= {hits}")
    number = "v{0}.__class__ is int or v{0}.__class__ is float or " + (
        "(isinstance(v{0}, (int, float)) and not isinstance(v{0}, bool))"
    )
    for i, (slot, upper, bounds, cum) in enumerate(ranges):
        env[f"B{i}"], env[f"C{i}"] = bounds, cum
        # Bounds equal to the value count as candidates (> vs >= is the rule's job).
        lines.append(f"    if {number.format(slot)}:")
        lines.append(f"        mask |= C{i}[{'_bl' if upper else '_br'}(B{i}, v{slot})]")
    for i, (slot, not_string, string, num) in enumerate(guards):
        env[f"GN{i}"], env[f"GS{i}"], env[f"GD{i}"] = not_string, string, num
        if string:
            lines.append(f"    if isinstance(v{slot}, str):")
            lines.append(f"        mask |= GS{i}")
        if not_string:
            lines.append(f"    if not isinstance(v{slot}, str):")
            lines.append(f"        mask |= GN{i}")
        if num:
            lines.append(f"    if {number.format(slot)}:")
            lines.append(f"        mask |= GD{i}")
    lines.append("    return mask")
    code = compile("\n".join(lines) + "\n", "<fanout.rules.index>", "exec")
    exec(code, env)  # noqa: S102 - generated from field-name reprs and our own tables only
    fn: Callable[[Mapping[str, Any]], int] = env["candidates"]
    return fn


def _flatten_into(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        for v in value:
            _flatten_into(v, out)
    else:
        out.append(value)


def _walk_arrays(objs: list[Any], trie: _Trie, values: list[list[Any]]) -> None:
    """EventBridge field access: arrays on the way and at the end stand for their elements."""
    for name, slot, sub in trie:
        found: list[Any] = []
        for obj in objs:
            if isinstance(obj, Mapping) and name in obj:
                _flatten_into(obj[name], found)
        if slot >= 0:
            values[slot] = found
        if sub and found:
            _walk_arrays(found, sub, values)


@dataclass
class _Signature:
    """Rules whose exact terms are on these slots: compound key -> rule mask."""

    slots: tuple[int, ...]
    table: dict[Hashable, int] = field(default_factory=dict)
    everything: int = 0  # every rule under this signature (pattern arrays that expand too far)


class RuleIndex:
    """Candidate rules per event, as a bit mask over rule positions (bit i = rule i)."""

    def __init__(
        self,
        plans: Sequence[RulePlan],
        *,
        pattern_key: Callable[[Any], Hashable] | None = None,
    ) -> None:
        self._pattern_key = pattern_key
        self._slots: dict[Mode, dict[Path, int]] = {"jmespath": {}, "pattern": {}}
        self._sigs: dict[Mode, dict[tuple[int, ...], _Signature]] = {"jmespath": {}, "pattern": {}}
        self._prefixes: dict[tuple[Mode, int], dict[str, int]] = {}
        self._guards: dict[int, list[int]] = {}  # slot -> [not_string, string, number] masks
        ranges: dict[tuple[int, bool], list[tuple[float, int]]] = {}
        self.always = 0
        for i, plan in enumerate(plans):
            bit = 1 << i
            if plan.mode == "pattern" and plan.indexed and pattern_key is None:
                raise ValueError("pattern rules need pattern_key")
            for g in plan.guards:
                masks = self._guards.setdefault(self._slot("jmespath", g.path), [0, 0, 0])
                masks[("not_string", "string", "number").index(g.kind)] |= bit
            if plan.exact:
                self._add_exact(plan.mode, plan.exact, bit)
            else:
                singles = plan.any_of or tuple(t for t in (plan.prefix, plan.range) if t)
                if not singles or (plan.mode == "pattern" and any(t.op for t in singles)):
                    self.always |= bit
                    continue
                for term in singles:
                    slot = self._slot(plan.mode, term.path)
                    if term.op:
                        upper = term.op in ("lt", "lte")
                        ranges.setdefault((slot, upper), []).append((term.bound, bit))
                        continue
                    if term.exact or not term.prefixes:
                        self._add_exact(plan.mode, (term,), bit)
                    if term.prefixes:
                        table = self._prefixes.setdefault((plan.mode, slot), {})
                        for p in term.prefixes:
                            table[p] = table.get(p, 0) | bit
        # Per slot: bounds ascending with the OR of the masks below (gt/gte: value > bound)
        # or from there up (lt/lte: value < bound); one bisect per event finds them all.
        ranges_list: list[tuple[int, bool, list[float], list[int]]] = []
        for (slot, upper), entries in ranges.items():
            entries.sort(key=lambda e: e[0])
            bounds = [b for b, _ in entries]
            masks = [m for _, m in entries]
            if upper:
                cum = [*reversed(list(accumulate(reversed(masks), operator.or_))), 0]
            else:
                cum = [0, *accumulate(masks, operator.or_)]
            ranges_list.append((slot, upper, bounds, cum))
        jm_paths = list(self._slots["jmespath"])
        pt_paths = list(self._slots["pattern"])
        self._pt_trie = _build_trie(pt_paths)
        self._pt_count = len(pt_paths)
        self._pt = list(self._sigs["pattern"].values())
        jm_prefix = [
            (slot, table, tuple(sorted({len(p) for p in table})))
            for (mode, slot), table in self._prefixes.items()
            if mode == "jmespath"
        ]
        self._pt_prefix = [
            (slot, table, tuple(sorted({len(p) for p in table})))
            for (mode, slot), table in self._prefixes.items()
            if mode == "pattern"
        ]
        self._pt_candidates = self._generate_pattern() if self._pt_count else _no_candidates
        guard_list = [(slot, m[0], m[1], m[2]) for slot, m in self._guards.items()]
        self._jm_candidates = _generate(
            _build_trie(jm_paths),
            [(sig.slots, sig.table) for sig in self._sigs["jmespath"].values()],
            jm_prefix,
            ranges_list,
            guard_list,
            self.always,
        )

    def _slot(self, mode: Mode, path: Path) -> int:
        slots = self._slots[mode]
        return slots.setdefault(path, len(slots))

    def _add_exact(self, mode: Mode, terms: tuple[IndexTerm, ...], bit: int) -> None:
        slots = tuple(self._slot(mode, t.path) for t in terms)
        order = sorted(range(len(terms)), key=lambda k: slots[k])
        slots = tuple(slots[k] for k in order)
        sets = [terms[k].exact for k in order]
        sig = self._sigs[mode].setdefault(slots, _Signature(slots))
        sig.everything |= bit
        for combo in product(*sets):
            key = combo[0] if len(combo) == 1 else combo
            sig.table[key] = sig.table.get(key, 0) | bit

    def candidates(self, data: Mapping[str, Any]) -> int:
        """Mask of the rules that may match ``data`` (a superset of the ones that do)."""
        mask = self._jm_candidates(data)
        if self._pt_count:
            mask |= self._pt_candidates(data)
        return mask

    def _generate_pattern(self) -> Callable[[Mapping[str, Any]], int]:
        """Pattern-mode lookups as straight-line code for events with no array on an indexed
        path's way (the usual case); anything else takes the general walk."""
        key = self._pattern_key
        assert key is not None
        env: dict[str, Any] = {
            "_vk": key,
            "_MISS": _MISSING,
            "_EMPTY": _EMPTY,
            "_SLOW": self._pattern_candidates,
            "_LK": lambda v: _list_keys(key, v),
            "_PROD": _product_lookup,
            "_PFX": _prefix_lookup,
            "_SCALARS": (str, int, float, bool, type(None)),
        }
        lines = [
            "def candidates(n0):",
            "    if n0.__class__ is not dict:",
            "        return _SLOW(n0)",
        ]
        lines.append("    mask = 0")
        nodes = [0]

        def walk(node: str, sub: _Trie) -> None:
            for name, slot, children in sub:
                if slot >= 0:
                    lines.append(f"    v{slot} = {node}.get({name!r}, _MISS)")
                if children:
                    nodes[0] += 1
                    child = f"n{nodes[0]}"
                    lines.append(f"    {child} = {node}.get({name!r})")
                    lines.append(f"    if {child}.__class__ is not dict:")
                    lines.append(f"        if {child}.__class__ not in _SCALARS:")
                    lines.append("            return _SLOW(n0)")
                    lines.append(f"        {child} = _EMPTY")
                    walk(child, children)

        walk("n0", self._pt_trie)
        for slot in range(self._pt_count):
            lines.append(
                f"    k{slot} = () if v{slot} is _MISS else "
                f"(_LK(v{slot}) if v{slot}.__class__ is list else (_vk(v{slot}),))"
            )
        for i, sig in enumerate(self._pt):
            env[f"S{i}"], env[f"T{i}"] = sig, sig.table
            ks = [f"k{slot}" for slot in sig.slots]
            single = " and ".join(f"len({k}) == 1" for k in ks)
            first = ks[0] + "[0]" if len(ks) == 1 else "(" + ", ".join(k + "[0]" for k in ks) + ")"
            lines.append(f"    if {single}:")
            lines.append(f"        mask |= T{i}.get({first}, 0)")
            lines.append(f"    elif {' and '.join(ks)}:")
            lines.append(f"        mask |= _PROD(S{i}, ({', '.join(ks)},))")
        for i, (slot, by_prefix, lengths) in enumerate(self._pt_prefix):
            env[f"P{i}"], env[f"L{i}"] = by_prefix, lengths
            hits = " | ".join(f"P{i}.get(v{slot}[:{n}], 0)" for n in lengths)
            lines.append(f"    if v{slot}.__class__ is str:")
            lines.append(f"        mask |= {hits}")
            lines.append(f"    elif v{slot}.__class__ is list:")
            lines.append(f"        mask |= _PFX(P{i}, L{i}, v{slot})")
        lines.append("    return mask")
        code = compile("\n".join(lines) + "\n", "<fanout.rules.index patterns>", "exec")
        exec(code, env)  # noqa: S102 - generated from field-name reprs and our own tables only
        fn: Callable[[Mapping[str, Any]], int] = env["candidates"]
        return fn

    def _pattern_candidates(self, data: Mapping[str, Any]) -> int:
        """The general pattern-mode walk: arrays anywhere on the way stand for their elements."""
        mask = 0
        found: list[list[Any]] = [[] for _ in range(self._pt_count)]
        _walk_arrays([data], self._pt_trie, found)
        pattern_key = self._pattern_key
        assert pattern_key is not None
        keys = [tuple(pattern_key(v) for v in vs) for vs in found]
        for sig in self._pt:
            mask |= _product_lookup(sig, tuple(keys[s] for s in sig.slots))
        for slot, by_prefix, lengths in self._pt_prefix:
            mask |= _prefix_lookup(by_prefix, lengths, found[slot])
        return mask


_MISSING: Hashable = _NoKey()


def _list_keys(key: Callable[[Any], Hashable], values: list[Any]) -> tuple[Hashable, ...]:
    flat: list[Any] = []
    _flatten_into(values, flat)
    return tuple(key(v) for v in flat)


def _no_candidates(data: Any) -> int:
    return 0


def _product_lookup(sig: _Signature, parts: tuple[tuple[Hashable, ...], ...]) -> int:
    """Rules of ``sig`` whose compound key is one of the combinations of the slots' keys."""
    count = math.prod(len(p) for p in parts)
    if count == 0:
        return 0
    if count > MAX_KEYS_PER_RULE:
        return sig.everything  # a huge array: test every rule of this signature
    mask = 0
    for combo in product(*parts):
        mask |= sig.table.get(combo[0] if len(combo) == 1 else combo, 0)
    return mask


def _prefix_lookup(by_prefix: dict[str, int], lengths: tuple[int, ...], values: Any) -> int:
    mask = 0
    flat: list[Any] = []
    _flatten_into(values, flat)
    for text in flat:
        if isinstance(text, str):
            for n in lengths:
                mask |= by_prefix.get(text[:n], 0)
    return mask
