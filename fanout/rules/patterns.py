"""EventBridge event patterns (pure): validate, compile to closures, explain, index terms.

A rule may give the event pattern its EventBridge rule already uses. The semantics follow AWS
EventBridge, which matches with aws/event-ruler (its README and JsonRuleCompiler are the
reference for the details the AWS docs leave out):

- Fields in an object are ANDed; the values in a leaf array are ORed; `$or` lists
  alternative sub-patterns (at least two objects) at any object level.
- Matching is type-strict: "1", 1, true and null are different values. Exact numbers compare
  numerically (300 matches 300.0 and 3.0e2), as event-ruler does for numbers a double holds.
- When an event value is an array, the field matches if any element matches; nested arrays are
  flattened. A pattern object applied to an array of objects needs all its fields to match
  within the same element ("array-consistent" matching, event-ruler's rulesForJSONEvent).
- Only leaves are values: a field whose event value is an object (or an empty array) does not
  exist for `exists` and matches nothing else.
- `$or` is expanded into alternatives like event-ruler does (a field given again inside an
  `$or` branch replaces the outer one for that branch).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fanout.jsontypes import is_number, json_type

__all__ = [
    "EventPattern",
    "PatternError",
    "PatternTerm",
    "compile_pattern",
    "value_key",
    "values_at",
]

# Expanding `$or` multiplies alternatives; EventBridge rejects over-complex patterns too.
MAX_ALTERNATIVES: Final = 256
MAX_WILDCARDS: Final = 5  # per wildcard value; more makes matching costly (LocalStack: same cap)

_OPERATORS: Final = (
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
    "wildcard",
)
# Field names event-ruler refuses inside `$or` objects (they look like misplaced operators).
_RESERVED_IN_OR: Final = frozenset(
    {
        "exactly",
        *_OPERATORS,
        "=",
        "<",
        "<=",
        ">",
        ">=",
        "regex",
        "not-wildcard",
        "not-equals-ignore-case",
        "date-after",
        "date-on-or-after",
        "date-before",
        "date-on-or-before",
        "in-date-range",
        "ip-address-in-range",
        "ip-address-not-in-range",
    }
)
_IPV4_SHAPE: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV6_SHAPE: Final = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*")
_NULL_KEY: Final = ("null", None)


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


class PatternError(Exception):
    """An invalid event pattern: where (dotted path in the pattern), the problem, the fix."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        self.where = where or "(pattern)"
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.where}: {problem} (fix: {fix})")


@dataclass(frozen=True)
class PatternTerm:
    """A test every match needs: some value at `path` has value_key(v) in `exact` or is a
    string starting with one of `prefixes`.

    The values at `path` are those `values_at(event, path)` returns: walk objects by key, try
    every element of any array met on the way (intermediate or last), keep scalars.
    """

    path: tuple[str, ...]
    exact: frozenset[Hashable]
    prefixes: tuple[str, ...]


def value_key(value: Any) -> Hashable | None:
    """The type-tagged key of a JSON scalar: "1", 1, true and null never collide; numbers are
    equal when numerically equal (300 == 300.0, like EventBridge's exact numeric matching).
    None for values that cannot be keys (objects, arrays, NaN, infinities).

    Deliberately separate from fanout.rules.index.json_key (JMESPath equality): patterns look
    into arrays and JMESPath paths do not, so their index tables are never shared."""
    t = type(value)
    if t is str:
        return ("s", value)
    if t is int:
        return ("n", value)
    if t is bool:
        return ("b", value)
    if t is float:
        return ("n", value) if math.isfinite(value) else None
    if value is None:
        return _NULL_KEY
    if isinstance(value, str):
        return ("s", str(value))
    if isinstance(value, bool):
        return ("b", bool(value))
    if isinstance(value, int):
        return ("n", int(value))
    if isinstance(value, float):
        return ("n", float(value)) if math.isfinite(value) else None
    return None


def values_at(event: Any, path: Iterable[str]) -> list[Any]:
    """The scalar values at `path`, the way patterns see them (arrays anywhere are expanded)."""
    current: list[Any] = [event]
    for key in path:
        following: list[Any] = []
        for node in _expand(current):
            if isinstance(node, Mapping) and key in node:
                following.append(node[key])
        current = following
    return [v for v in _expand(current) if not isinstance(v, Mapping)]


def _expand(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list | tuple):
            out.extend(_expand(v))
        else:
            out.append(v)
    return out


# --- compiled leaves -------------------------------------------------------------------------

_Pred = Callable[[Any], bool]


def _true(_: Any) -> bool:
    return True


class _Leaf:
    """One field's list of alternatives, compiled to `test(raw_event_value) -> bool`."""

    __slots__ = (
        "absent_ok",
        "any_preds",
        "bools",
        "exists_true",
        "has_null",
        "indexable",
        "num_preds",
        "nums",
        "path",
        "prefixes",
        "str_preds",
        "strs",
        "test",
        "wants",
    )

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path
        self.strs: set[str] = set()
        self.nums: set[int | float] = set()
        self.bools: set[bool] = set()
        self.has_null = False
        self.prefixes: list[str] = []
        self.str_preds: list[_Pred] = []  # apply to strings only
        self.num_preds: list[_Pred] = []  # apply to JSON numbers only (not booleans)
        self.any_preds: list[_Pred] = []  # apply to any present scalar (anything-but)
        self.exists_true = False
        self.absent_ok = False  # {"exists": false}
        self.wants: list[str] = []
        self.indexable = True
        self.test: _Pred = _true

    def finish(self) -> None:
        self.test = self._build()

    def _build(self) -> _Pred:
        scalar = self._scalar()
        absent_ok = self.absent_ok

        def slow(raw: Any) -> bool:
            """Arrays, absence, objects and subclassed scalars: off the common path."""
            t = type(raw)
            if t is list or t is tuple:
                present = False
                for v in _leaf_scalars(raw):
                    present = True
                    if scalar(v):
                        return True
                return absent_ok and not present
            if raw is _MISSING or isinstance(raw, Mapping):
                return absent_ok
            return _scalar_subclass(raw, scalar)

        if self.exists_true or self.absent_ok or self.str_preds or self.any_preds:
            plain = False
        else:
            plain = not (self.nums or self.bools or self.has_null or self.num_preds)
        if plain:
            # Exact strings and plain prefixes, the usual routing field: one type check.
            strs = frozenset(self.strs)
            prefixes = tuple(self.prefixes)
            if not prefixes:

                def exact(raw: Any) -> bool:
                    if type(raw) is str:
                        return raw in strs
                    return slow(raw)

                return exact

            def exact_or_prefix(raw: Any) -> bool:
                if type(raw) is str:
                    return raw in strs or raw.startswith(prefixes)
                return slow(raw)

            return exact_or_prefix

        on_str, on_num, on_bool, on_null = self._typed()

        def test(raw: Any) -> bool:
            t = type(raw)
            if t is str:
                return on_str(raw)
            if t is int or t is float:
                return on_num(raw)
            if t is bool:
                return on_bool(raw)
            if raw is None:
                return on_null
            return slow(raw)

        return test

    def _typed(self) -> tuple[_Pred, _Pred, _Pred, bool]:
        """The smallest test per JSON type (string, number, boolean) and the answer for null."""
        if self.exists_true:
            return _true, _true, _true, True
        any_preds = list(self.any_preds)
        return (
            _any_of(frozenset(self.strs), tuple(self.prefixes), [*self.str_preds, *any_preds]),
            _any_of(frozenset(self.nums), (), [*self.num_preds, *any_preds]),
            _any_of(frozenset(self.bools), (), any_preds),
            self.has_null or any(p(None) for p in any_preds),
        )

    def _scalar(self) -> _Pred:
        on_str, on_num, on_bool, on_null = self._typed()

        def scalar(v: Any) -> bool:
            t = type(v)
            if t is str:
                return on_str(v)
            if t is int or t is float:
                return on_num(v)
            if t is bool:
                return on_bool(v)
            if v is None:
                return on_null
            return _scalar_subclass(v, scalar)

        return scalar

    def describe(self) -> str:
        shown = self.wants[:6]
        more = len(self.wants) - len(shown)
        text = " or ".join(shown)
        return f"{text} or {more} more" if more > 0 else text


def _false(_: Any) -> bool:
    return False


def _any_of(exact: frozenset[Any], prefixes: tuple[str, ...], preds: list[_Pred]) -> _Pred:
    """One value's test: in `exact`, starts with a prefix, or passes a predicate."""
    if not prefixes and not preds:
        if not exact:
            return _false
        return exact.__contains__
    if not exact and not prefixes and len(preds) == 1:
        return preds[0]
    checks = tuple(preds)

    def any_of(v: Any) -> bool:
        if v in exact or (prefixes and v.startswith(prefixes)):
            return True
        for p in checks:  # noqa: SIM110 - a loop beats any(genexpr) on the hot path
            if p(v):
                return True
        return False

    return any_of


def _scalar_subclass(v: Any, scalar: _Pred) -> bool:
    """Values of subclassed scalar types (e.g. str enums) are matched as their base type."""
    if isinstance(v, str):
        return scalar(str(v))
    if isinstance(v, bool):
        return scalar(bool(v))
    if isinstance(v, int):
        return scalar(int(v))
    if isinstance(v, float):
        return scalar(float(v))
    return False


def _leaf_scalars(values: list[Any] | tuple[Any, ...]) -> Iterable[Any]:
    for v in values:
        if type(v) is list or type(v) is tuple:
            yield from _leaf_scalars(v)
        elif not isinstance(v, Mapping):
            yield v


# --- validation and compilation of one leaf --------------------------------------------------

_KNOWN = (
    "exact values, prefix, suffix, equals-ignore-case, anything-but, numeric, exists, cidr, "
    "wildcard"
)


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _check_number(value: Any, where: str, *, compared: bool = True) -> float:
    """Finite; for ranges and anything-but also exactly a double (event-ruler compares those as
    doubles, while an exact value such as an account number may have more digits)."""
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise PatternError(where, "numbers must be finite", "use a number a double holds")
    if compared and isinstance(value, int) and f != value:
        raise PatternError(
            where,
            f"{value} cannot be compared exactly (more digits than a double holds)",
            "use a number with at most 15-17 significant digits",
        )
    return f


def _string_operand(op: str, value: Any, where: str) -> str:
    if not isinstance(value, str):
        hint = " (quote it in YAML)" if not isinstance(value, Mapping | list) else ""
        raise PatternError(
            where,
            f"{op} wants a string, got {json_type(value)}",
            f'write {{"{op}": "text"}}{hint}',
        )
    return value


def _string_list(op: str, value: Any, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PatternError(where, f"anything-but {op} list is empty", "give at least one string")
    for v in items:
        if not isinstance(v, str):
            raise PatternError(
                where,
                f"anything-but {op} wants strings, got {json_type(v)}",
                f'write {{"anything-but": {{"{op}": "text"}}}} or a list of strings',
            )
    return list(items)


def _single_key(obj: Mapping[str, Any], where: str) -> tuple[str, Any]:
    if len(obj) != 1:
        keys = ", ".join(map(str, obj)) or "none"
        raise PatternError(
            where,
            f"an operator object needs exactly one key, got {keys}",
            "split it into separate objects in the same list, e.g. "
            '[{"prefix": "a"}, {"suffix": "b"}]',
        )
    ((key, value),) = obj.items()
    return str(key), value


def _compile_leaf(values: Any, path: tuple[str, ...], where: str) -> _Leaf:
    leaf = _Leaf(path)
    if not values:
        raise PatternError(
            where, "empty list of values matches nothing", 'give at least one value, e.g. ["x"]'
        )
    for i, item in enumerate(values):
        at = f"{where}[{i}]"
        if isinstance(item, bool):
            leaf.bools.add(item)
            leaf.wants.append(json.dumps(item))
        elif item is None:
            leaf.has_null = True
            leaf.wants.append("null")
        elif isinstance(item, str):
            if _ip_literal(item) is not None and ":" in item:
                # event-ruler compares IP literals as addresses: other IPv6 spellings match too.
                leaf.str_preds.append(_same_ip(item))
                leaf.indexable = False
            else:
                leaf.strs.add(item)
            leaf.wants.append(_q(item))
        elif is_number(item):
            _check_number(item, at, compared=False)
            leaf.nums.add(item)
            leaf.wants.append(json.dumps(item))
        elif isinstance(item, Mapping):
            _compile_operator(leaf, item, at)
        else:
            raise PatternError(
                at,
                f"a value must be a string, number, true, false, null or an operator object, "
                f"got {json_type(item)}",
                'write one flat list, e.g. ["a", "b"] or [{"prefix": "a"}]',
            )
    leaf.finish()
    return leaf


def _compile_operator(leaf: _Leaf, obj: Mapping[str, Any], where: str) -> None:
    op, arg = _single_key(obj, where)
    at = f"{where}.{op}"
    if op == "prefix" or op == "suffix":
        if isinstance(arg, Mapping):
            inner, text = _single_key(arg, at)
            if inner != "equals-ignore-case":
                raise PatternError(
                    at,
                    f"unsupported {op} option {inner!r}",
                    f'use {{"{op}": {{"equals-ignore-case": "text"}}}} or {{"{op}": "text"}}',
                )
            folded = _string_operand(f"{op}/equals-ignore-case", text, at).lower()
            if op == "prefix":
                leaf.str_preds.append(lambda v: v.lower().startswith(folded))
            else:
                leaf.str_preds.append(lambda v: v.lower().endswith(folded))
            leaf.indexable = False
            leaf.wants.append(f"{op} {_q(text)} ignoring case")
            return
        text = _string_operand(op, arg, at)
        if op == "prefix":
            leaf.prefixes.append(text)
        else:
            leaf.str_preds.append(lambda v: v.endswith(text))
            leaf.indexable = False
        leaf.wants.append(f"{op} {_q(text)}")
        return
    leaf.indexable = False
    if op == "equals-ignore-case":
        folded = _string_operand(op, arg, at).lower()
        leaf.str_preds.append(lambda v: v.lower() == folded)
        leaf.wants.append(f"{_q(arg)} ignoring case")
    elif op == "anything-but":
        _compile_anything_but(leaf, arg, at)
    elif op == "numeric":
        pred, text = _compile_numeric(arg, at)
        leaf.num_preds.append(pred)
        leaf.wants.append(f"numeric {text}")
    elif op == "exists":
        if not isinstance(arg, bool):
            raise PatternError(at, "exists wants true or false", 'write {"exists": true}')
        if arg:
            leaf.exists_true = True
            leaf.wants.append("present")
        else:
            leaf.absent_ok = True
            leaf.wants.append("absent")
    elif op == "cidr":
        network = _compile_cidr(arg, at)
        leaf.str_preds.append(_in_network(network))
        leaf.wants.append(f"an IP in {arg}")
    elif op == "wildcard":
        leaf.str_preds.append(_compile_wildcard(_string_operand(op, arg, at), at))
        leaf.wants.append(f"wildcard {_q(arg)}")
    else:
        raise PatternError(where, f"unknown operator {op!r}", f"use one of: {_KNOWN}")


def _compile_anything_but(leaf: _Leaf, arg: Any, where: str) -> None:
    if isinstance(arg, Mapping):
        op, inner = _single_key(arg, where)
        if op not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
            raise PatternError(
                where,
                f"unsupported anything-but option {op!r}",
                "use a value, a list, or prefix, suffix, equals-ignore-case or wildcard",
            )
        at = f"{where}.{op}"
        texts = _string_list(op, inner, at)
        shown = ", ".join(_q(t) for t in texts)
        if op in ("prefix", "suffix"):
            if any(t == "" for t in texts):
                raise PatternError(
                    at, f"an empty anything-but {op} excludes every string", "remove it"
                )
            items = tuple(texts)
            if op == "prefix":
                leaf.any_preds.append(lambda v: not (type(v) is str and v.startswith(items)))
            else:
                leaf.any_preds.append(lambda v: not (type(v) is str and v.endswith(items)))
            leaf.wants.append(f"anything but {op} {shown}")
        elif op == "equals-ignore-case":
            folded = frozenset(t.lower() for t in texts)
            leaf.any_preds.append(lambda v: not (type(v) is str and v.lower() in folded))
            leaf.wants.append(f"anything but {shown} ignoring case")
        else:
            globs = tuple(_compile_wildcard(t, at) for t in texts)
            leaf.any_preds.append(lambda v: not (type(v) is str and any(g(v) for g in globs)))
            leaf.wants.append(f"anything but wildcard {shown}")
        return
    values: list[Any] = arg if isinstance(arg, list) else [arg]
    if isinstance(arg, list) and not arg:
        raise PatternError(where, "anything-but list is empty", "give at least one value")
    if all(isinstance(v, str) for v in values):
        excluded = frozenset(values)
        leaf.any_preds.append(lambda v: not (type(v) is str and v in excluded))
    elif all(is_number(v) for v in values):
        for v in values:
            _check_number(v, where)
        excluded_nums: frozenset[Any] = frozenset(values)
        leaf.any_preds.append(
            lambda v: not ((type(v) is int or type(v) is float) and v in excluded_nums)
        )
    else:
        raise PatternError(
            where,
            "anything-but takes a string, a number, or a list of only strings or only numbers",
            "remove null, booleans and objects; split strings and numbers into two objects",
        )
    leaf.wants.append("anything but " + ", ".join(json.dumps(v) for v in values))


_RANGE_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
}
_NUMERIC_FIX: Final = 'write e.g. ["=", 5], ["<", 10] or [">", 0, "<=", 5]'


def _compile_numeric(arg: Any, where: str) -> tuple[_Pred, str]:
    if not isinstance(arg, list) or not arg:
        raise PatternError(where, "numeric wants a non-empty list", _NUMERIC_FIX)
    if len(arg) % 2 or len(arg) > 4:
        raise PatternError(where, "numeric wants one or two operator/number pairs", _NUMERIC_FIX)
    pairs: list[tuple[str, float]] = []
    for i in range(0, len(arg), 2):
        op, num = arg[i], arg[i + 1]
        if not isinstance(op, str) or op not in _RANGE_OPS:
            raise PatternError(
                f"{where}[{i}]", f"unknown numeric operator {op!r}", "use =, <, <=, > or >="
            )
        if not is_number(num):
            raise PatternError(
                f"{where}[{i + 1}]", f"the value of {op} must be a number", _NUMERIC_FIX
            )
        pairs.append((op, _check_number(num, f"{where}[{i + 1}]")))
    if len(pairs) == 2:
        (op1, lo), (op2, hi) = pairs
        if op1 not in (">", ">=") or op2 not in ("<", "<="):
            raise PatternError(
                where,
                "a numeric range is a lower bound (> or >=) followed by an upper bound (< or <=)",
                _NUMERIC_FIX,
            )
        if lo >= hi:
            raise PatternError(where, "the lower bound must be below the upper bound", "swap them")
    checks = tuple((_RANGE_OPS[op], bound) for op, bound in pairs)

    def numeric(v: Any) -> bool:
        try:
            f = float(v)
        except OverflowError:
            return False
        if not math.isfinite(f) or (type(v) is int and f != v):
            return False  # not a number a double holds: EventBridge does not compare it
        for compare, bound in checks:  # noqa: SIM110 - hot path
            if not compare(f, bound):
                return False
        return True

    text = ", ".join(f"{op} {json.dumps(arg[2 * i + 1])}" for i, (op, _) in enumerate(pairs))
    return numeric, text


def _ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not (_IPV4_SHAPE.fullmatch(text) or _IPV6_SHAPE.fullmatch(text)):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _same_ip(text: str) -> _Pred:
    address = _ip_literal(text)

    def same(v: Any) -> bool:
        return v == text or _ip_literal(v) == address

    return same


def _compile_cidr(arg: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    fix = 'write e.g. {"cidr": "10.0.0.0/24"} or {"cidr": "2001:db8::/32"}'
    if not isinstance(arg, str):
        raise PatternError(where, f"cidr wants a string, got {json_type(arg)}", fix)
    address, slash, bits = arg.partition("/")
    if not slash or "/" in bits:
        raise PatternError(where, "malformed CIDR, exactly one '/' required", fix)
    if not bits.isdigit():
        raise PatternError(where, "malformed CIDR, mask bits must be an integer", fix)
    ip = _ip_literal(address)
    if ip is None:
        raise PatternError(where, f"{address!r} is not an IPv4 or IPv6 address", fix)
    limit = 32 if ip.version == 4 else 128
    if int(bits) >= limit:
        # event-ruler rejects a full-length mask; an exact address is written as a value.
        raise PatternError(
            where,
            f"IPv{ip.version} mask bits must be below {limit}",
            f'match one address with its value, e.g. ["{address}"]',
        )
    return ipaddress.ip_network(f"{address}/{bits}", strict=False)


def _in_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> _Pred:
    def in_network(v: Any) -> bool:
        ip = _ip_literal(v)
        return ip is not None and ip in network

    return in_network


def _compile_wildcard(text: str, where: str) -> _Pred:
    """`*` matches any run of characters (also none); `\\*` and `\\\\` are literals."""
    segments: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "*":
            if i + 1 < len(text) and text[i + 1] == "*":
                raise PatternError(
                    where, f"consecutive wildcard characters at position {i}", "use a single *"
                )
            segments.append("".join(current))
            current = []
        elif c == "\\":
            if i + 1 < len(text) and text[i + 1] in "*\\":
                current.append(text[i + 1])
                i += 1
            else:
                raise PatternError(
                    where,
                    f"invalid escape at position {i}",
                    r"a backslash escapes only * or \ (write \\ for a backslash)",
                )
        else:
            current.append(c)
        i += 1
    segments.append("".join(current))
    if len(segments) - 1 > MAX_WILDCARDS:
        raise PatternError(
            where,
            f"too many wildcard characters ({len(segments) - 1})",
            f"use at most {MAX_WILDCARDS}",
        )
    if len(segments) == 1:
        literal = segments[0]
        return lambda v: v == literal
    first, middle, last = segments[0], tuple(segments[1:-1]), segments[-1]
    min_len = sum(map(len, segments))

    def glob(v: str) -> bool:
        # Greedy leftmost placement of the middle pieces is optimal when `*` is the only
        # metacharacter, so this is linear and needs no regex backtracking.
        if len(v) < min_len or not v.startswith(first) or not v.endswith(last):
            return False
        pos, end = len(first), len(v) - len(last)
        for piece in middle:
            found = v.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return glob


# --- pattern structure: `$or` expansion and per-alternative trees ---------------------------

_Branch = dict[tuple[str, ...], _Leaf]


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _parse_object(
    obj: Mapping[str, Any],
    path: tuple[str, ...],
    where: str,
    branches: list[_Branch],
    in_or: bool,
) -> list[_Branch]:
    if not obj:
        raise PatternError(
            where or "(pattern)",
            "empty objects are not allowed",
            "give at least one field, or remove the object",
        )
    for key, value in obj.items():
        if not isinstance(key, str):
            raise PatternError(where, f"field name {key!r} is not a string", "quote it")
        at = f"{where}.{key}" if where else key
        if key == "$or":
            branches = _parse_or(value, path, at, branches)
            continue
        if in_or and key in _RESERVED_IN_OR:
            raise PatternError(
                at,
                f"{key!r} is an operator name and cannot be a field inside $or",
                f'put operators in a list under a field, e.g. {{"field": [{{"{key}": ...}}]}}',
            )
        if key in _OPERATORS and not isinstance(value, Mapping | list):
            raise PatternError(
                at,
                f"{key!r} is an operator but appears as a field name",
                f'wrap it in a list under the field, e.g. "field": [{{"{key}": ...}}]',
            )
        if isinstance(value, Mapping):
            branches = _parse_object(value, (*path, key), at, branches, in_or)
        elif isinstance(value, list):
            leaf = _compile_leaf(value, (*path, key), at)
            for branch in branches:
                branch.pop(leaf.path, None)  # a repeated field replaces the earlier one
                branch[leaf.path] = leaf
        else:
            raise PatternError(
                at,
                f"a field's value must be an object or a list, got {json_type(value)}",
                f'wrap values in a list, e.g. "{key}": [{json.dumps(value, default=str)}]',
            )
    return branches


def _parse_or(
    value: Any, path: tuple[str, ...], where: str, branches: list[_Branch]
) -> list[_Branch]:
    fix = '"$or": [{"a": ["x"]}, {"b": ["y"]}]'
    if not isinstance(value, list) or len(value) < 2:
        raise PatternError(where, "$or wants a list of at least two objects", f"write {fix}")
    expanded: list[_Branch] = []
    for i, alternative in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(alternative, Mapping):
            raise PatternError(
                at, f"$or items must be objects, got {json_type(alternative)}", f"write {fix}"
            )
        copies = [dict(b) for b in branches]
        expanded.extend(_parse_object(alternative, path, at, copies, True))
        if len(expanded) > MAX_ALTERNATIVES:
            raise PatternError(
                where,
                f"the pattern expands to more than {MAX_ALTERNATIVES} $or alternatives",
                "split it into several rules or use fewer nested $or",
            )
    return expanded


class _Tree:
    """One alternative as nested fields, compiled to `match(obj) -> bool` over one object."""

    __slots__ = ("absent_ok", "children", "match", "sub", "subtrees", "tests")

    def __init__(self) -> None:
        # A key may hold both a leaf and a subtree (pattern "a": [...] and "a.b": [...] in one
        # alternative): both are tested, so it stays a list of pairs.
        self.children: list[tuple[str, _Leaf | _Tree]] = []
        self.subtrees: dict[str, _Tree] = {}
        self.absent_ok = True
        self.match: Callable[[Mapping[str, Any]], bool] = _true
        self.sub: _Pred = _true
        self.tests: tuple[tuple[str, _Pred], ...] = ()

    @classmethod
    def build(cls, branch: _Branch) -> _Tree:
        root = cls()
        for path, leaf in branch.items():
            node = root
            for key in path[:-1]:
                child = node.subtrees.get(key)
                if child is None:
                    child = node.subtrees[key] = cls()
                    node.children.append((key, child))
                node = child
            node.children.append((path[-1], leaf))
        root.finish()
        return root

    def finish(self) -> None:
        tests: list[tuple[str, _Pred]] = []
        for key, child in self.children:
            if isinstance(child, _Tree):
                child.finish()
                tests.append((key, child.sub))
            else:
                tests.append((key, child.test))
        self.absent_ok = all(c.absent_ok for _, c in self.children)
        self.tests = tuple(tests)
        self.match = _conjunction(self.tests)
        self.sub = self._sub()

    def _sub(self) -> _Pred:
        """Test for this object's raw value in the parent: objects, arrays of objects, absence."""
        match = self.match
        absent_ok = self.absent_ok

        def slow(raw: Any) -> bool:
            if type(raw) is list or type(raw) is tuple:
                only_objects = True
                for element in _objects_and_others(raw):
                    if element is None:
                        only_objects = False
                    elif match(element):
                        return True
                return absent_ok and (not only_objects or not raw)
            if isinstance(raw, Mapping):
                return match(raw)
            return absent_ok

        return _fused_sub(self.tests, slow)


def _fused_sub(tests: tuple[tuple[str, _Pred], ...], slow: _Pred) -> _Pred:
    """The nested object's conjunction inlined for the usual dict case (one call per level)."""
    missing = _MISSING
    if len(tests) == 1:
        ((k1, t1),) = tests

        def sub1(raw: Any) -> bool:
            if type(raw) is dict:
                return t1(raw.get(k1, missing))
            return slow(raw)

        return sub1
    if len(tests) == 2:
        (k1, t1), (k2, t2) = tests

        def sub2(raw: Any) -> bool:
            if type(raw) is dict:
                get = raw.get
                return t1(get(k1, missing)) and t2(get(k2, missing))
            return slow(raw)

        return sub2
    if len(tests) == 3:
        (k1, t1), (k2, t2), (k3, t3) = tests

        def sub3(raw: Any) -> bool:
            if type(raw) is dict:
                get = raw.get
                return t1(get(k1, missing)) and t2(get(k2, missing)) and t3(get(k3, missing))
            return slow(raw)

        return sub3
    match = _conjunction(tests)

    def sub(raw: Any) -> bool:
        if type(raw) is dict:
            return match(raw)
        return slow(raw)

    return sub


def _objects_and_others(values: list[Any] | tuple[Any, ...]) -> Iterable[Mapping[str, Any] | None]:
    """The objects in an array (nested arrays flattened); None stands for each non-object."""
    for v in values:
        if isinstance(v, Mapping):
            yield v
        elif type(v) is list or type(v) is tuple:
            yield from _objects_and_others(v)
        else:
            yield None


def _conjunction(tests: tuple[tuple[str, _Pred], ...]) -> Callable[[Mapping[str, Any]], bool]:
    # Unrolled for the usual one to three fields per object: this is the per-event hot path.
    missing = _MISSING
    if len(tests) == 1:
        ((k1, t1),) = tests

        def one(obj: Mapping[str, Any]) -> bool:
            return t1(obj.get(k1, missing))

        return one
    if len(tests) == 2:
        (k1, t1), (k2, t2) = tests

        def two(obj: Mapping[str, Any]) -> bool:
            get = obj.get
            return t1(get(k1, missing)) and t2(get(k2, missing))

        return two
    if len(tests) == 3:
        (k1, t1), (k2, t2), (k3, t3) = tests

        def three(obj: Mapping[str, Any]) -> bool:
            get = obj.get
            return t1(get(k1, missing)) and t2(get(k2, missing)) and t3(get(k3, missing))

        return three

    def many(obj: Mapping[str, Any]) -> bool:
        get = obj.get
        for key, test in tests:  # noqa: SIM110 - hot path
            if not test(get(key, missing)):
                return False
        return True

    return many


# --- explain ---------------------------------------------------------------------------------


def _why_leaf(leaf: _Leaf, raw: Any) -> str:
    where = _dotted(leaf.path)
    wants = leaf.describe()
    if raw is _MISSING:
        return f"{where} is missing; the pattern wants {wants}"
    if isinstance(raw, Mapping):
        return f"{where} is an object, not a value; the pattern wants {wants}"
    scalars = list(_leaf_scalars(raw)) if isinstance(raw, list | tuple) else [raw]
    if not scalars:
        return f"{where} is an empty array; the pattern wants {wants}"
    if leaf.wants == ["absent"]:
        return f"{where} is present; the pattern wants it absent"
    kinds = sorted({json_type(v) for v in scalars})
    has = " or ".join(k if k == "null" else f"a{'n' if k[0] in 'aeiou' else ''} {k}" for k in kinds)
    many = "no element of the array matches" if isinstance(raw, list | tuple) else "no match"
    return f"{where}: {many} (the event has {has}); the pattern wants {wants}"


def _why_tree(tree: _Tree, obj: Mapping[str, Any]) -> str | None:
    for key, child in tree.children:
        raw = obj.get(key, _MISSING)
        if isinstance(child, _Leaf):
            if not child.test(raw):
                return _why_leaf(child, raw)
        elif not child.sub(raw):
            return _why_sub(child, raw)
    return None


def _why_sub(tree: _Tree, raw: Any) -> str | None:
    if isinstance(raw, Mapping):
        return _why_tree(tree, raw)
    if isinstance(raw, list | tuple):
        objects = [o for o in _objects_and_others(raw) if o is not None]
        if objects:
            reason = _why_tree(tree, objects[0])
            if reason and len(objects) > 1:
                return f"{reason} (in every element of the array)"
            if reason is None:  # each field matches somewhere, but not in one element
                return "the fields match only in different elements of an array"
            return reason
    return _why_tree(tree, {})


# --- public API ------------------------------------------------------------------------------


class EventPattern:
    """A compiled event pattern. Immutable; safe to share between tasks."""

    __slots__ = ("_matches", "_terms", "_trees", "source")

    def __init__(self, source: Mapping[str, Any], branches: list[_Branch]) -> None:
        self.source = source
        self._trees = tuple(_Tree.build(b) for b in branches)
        self._terms = _required_terms(branches)
        matchers = tuple(t.match for t in self._trees)
        if len(matchers) == 1:
            self._matches = matchers[0]
        else:

            def any_alternative(event: Mapping[str, Any]) -> bool:
                for m in matchers:  # noqa: SIM110 - hot path
                    if m(event):
                        return True
                return False

            self._matches = any_alternative

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when the event matches (a non-object event never does)."""
        if type(event) is dict or isinstance(event, Mapping):
            return self._matches(event)
        return False

    def explain(self, event: Mapping[str, Any]) -> str | None:
        """None when the event matches; else the first failing field test, without event
        values (events carry personal data) — only paths, JSON types and what was wanted."""
        if not isinstance(event, Mapping):
            return f"the event is {json_type(event)}, not an object"
        reasons = []
        for tree in self._trees:
            if tree.match(event):
                return None
            reasons.append(_why_tree(tree, event) or "no match")
        if len(reasons) == 1:
            return reasons[0]
        shown = "; ".join(f"({i + 1}) {r}" for i, r in enumerate(reasons[:3]))
        more = f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
        return f"no $or alternative matches: {shown}{more}"

    def required_terms(self) -> tuple[PatternTerm, ...]:
        """Sound index terms: every match satisfies every term (see PatternTerm)."""
        return self._terms

    def __repr__(self) -> str:
        return f"EventPattern({json.dumps(self.source, default=str)[:200]})"


def _required_terms(branches: list[_Branch]) -> tuple[PatternTerm, ...]:
    """Fields every alternative requires with only exact values / plain prefixes. A field in
    several `$or` alternatives is a term too: the union of what they accept."""
    terms = []
    for path in branches[0]:
        leaves = [b.get(path) for b in branches]
        if not all(leaf is not None and leaf.indexable for leaf in leaves):
            continue
        exact: set[Hashable] = set()
        prefixes: list[str] = []
        for leaf in leaves:
            assert leaf is not None  # narrowed by the check above
            for v in (*leaf.strs, *leaf.nums, *leaf.bools, *([None] if leaf.has_null else [])):
                key = value_key(v)
                if key is not None:
                    exact.add(key)
            prefixes.extend(p for p in leaf.prefixes if p not in prefixes)
        terms.append(PatternTerm(path, frozenset(exact), tuple(prefixes)))
    return tuple(terms)


def compile_pattern(source: Mapping[str, Any] | str) -> EventPattern:
    """Validate and compile an EventBridge event pattern (a mapping, or JSON text)."""
    if isinstance(source, str):
        try:
            parsed = json.loads(source)
        except json.JSONDecodeError as exc:
            raise PatternError(
                "(pattern)",
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                "check quotes, commas and brackets",
            ) from None
    else:
        parsed = source
    if not isinstance(parsed, Mapping):
        raise PatternError(
            "(pattern)",
            f"a pattern must be an object, got {json_type(parsed)}",
            'write e.g. {"source": ["aws.partner/genesys.com"]}',
        )
    branches = _parse_object(parsed, (), "", [{}], False)
    return EventPattern(parsed, branches)
