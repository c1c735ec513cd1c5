"""Compile JMESPath expressions into Python closures (the per-event hot path of rule matching).

``compile_expression(text)`` parses with the jmespath library's own parser (same syntax errors)
and turns the AST into nested closures, so evaluating a condition costs a handful of Python
calls instead of a tree walk through ``TreeInterpreter`` (which ``jmespath.search`` and
``ParsedResult.search`` also rebuild on every call).

Semantics are those of the installed jmespath library, quirks included, because it is the
reference the tests compare against: ``==`` is Python equality except that 0/1 never equal a
boolean at the top level (so ``[1] == [true]`` and ``contains([1], true)`` are true, as in the
library); ``<`` etc. compare numbers or strings and give null otherwise (number vs string raises
Python's ``TypeError``, as in the library); ``false, null, '', [], {}`` are false and ``0`` is
true. Functions check argument types on a fast path and hand anything unusual to the library's
``Functions.call_function``, so type, arity and unknown-function errors are the library's own
exception classes, raised at evaluation time in the same order. One deliberate difference: a
slice step of 0 applied to an array raises ``InvalidSliceStepError`` (a ``JMESPathError``, which
is a ``ValueError``) where the library raises a bare ``ValueError``.

Common rule shapes are specialised: field chains (``a.b.c``), comparisons with a literal,
``contains(<literal list>, path)`` (a frozenset lookup, which matches Python's list ``in``
exactly for hashable scalars), and ``starts_with``/``ends_with`` with a literal. An expression
reference (``&expr``) that is not a direct function argument is left to the library's
interpreter, so its value is the library's own object; ``fully_compiled`` is False then.
Data is JSON-typed (dict, list, str, int, float, bool, None), as decoded events are.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, cast

from jmespath import exceptions
from jmespath.functions import Functions
from jmespath.parser import Parser
from jmespath.visitor import TreeInterpreter

from fanout.jsontypes import is_number

Fn = Callable[[Any], Any]

__all__ = ["CompiledExpression", "InvalidSliceStepError", "compile_expression"]


class InvalidSliceStepError(exceptions.JMESPathError):
    """A slice with step 0 was applied to an array (the spec's invalid-value error)."""


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A compiled JMESPath expression; ``search(data)`` evaluates it (one closure call)."""

    expression: str
    ast: dict[str, Any]  # the library's parsed AST (shared with its parse cache: read only)
    search: Fn
    fully_compiled: bool


def compile_expression(expression: str) -> CompiledExpression:
    """Parse ``expression`` (raises the library's ParseError & co.) and compile it."""
    # The stubs type the AST as a TypedDict; this module reads it as the plain dict it is.
    parsed = cast(dict[str, Any], Parser().parse(expression).parsed)
    compiler = _Compiler()
    fn = compiler.compile(parsed)
    return CompiledExpression(expression, parsed, fn, compiler.fully_compiled)


# --- value helpers (exactly the library's rules) --------------------------------------------


def _is_false(x: Any) -> bool:
    """JMESPath falsiness: the library's test (equality, not Python truth), cheapest first."""
    return x is None or x is False or x == "" or x == [] or x == {}


def _equals(x: Any, y: Any) -> Any:
    """The library's ``==``: Python equality, but 0/1 never equal a boolean."""
    if is_number(x) and x in (0, 1):
        if isinstance(y, bool):
            return False
    elif is_number(y) and y in (0, 1) and isinstance(x, bool):
        return False
    return x == y


def _is_comparable(x: Any) -> bool:
    t = type(x)
    if t is int or t is float or t is str:
        return True
    return x is not None and (isinstance(x, str) or is_number(x))


def _field(value: Any, key: str) -> Any:
    """Field lookup on a non-null non-dict (callers test those inline): .get() if any."""
    try:
        return value.get(key)
    except AttributeError:
        return None


class _Expression:
    """An ``&expr`` argument. The name matters: the library's type checks use the class name
    ('_Expression' is its 'expref' type), and its functions call ``visit(expression, value)``."""

    __slots__ = ("expression", "fn")

    def __init__(self, expression: dict[str, Any], fn: Fn) -> None:
        self.expression = expression
        self.fn = fn

    def visit(self, node: object, value: Any) -> Any:
        return self.fn(value)


_ORDERING: Final[Mapping[str, Callable[[Any, Any], Any]]] = MappingProxyType(
    {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}
)
# Returned by a native function when its fast type check fails: the library then decides.
_SLOW: Final = object()


# --- native functions: fast path for the types the library accepts, else _SLOW -------------


def _all_numbers(items: list[Any]) -> bool:
    for e in items:
        t = type(e)
        if t is not int and t is not float:
            return False
    return True


def _all_strings(items: list[Any]) -> bool:
    return all(type(e) is str for e in items)


def _homogeneous(items: list[Any]) -> bool:
    """array-number or array-string, as the library's dynamic subtype check decides."""
    if not items:
        return True
    t = type(items[0])
    if t is str:
        return _all_strings(items)
    return (t is int or t is float) and _all_numbers(items)


def _n_abs(x: Any) -> Any:
    t = type(x)
    return abs(x) if t is int or t is float else _SLOW


def _n_avg(x: Any) -> Any:
    if type(x) is not list or not _all_numbers(x):
        return _SLOW
    return sum(x) / len(x) if x else None


def _n_ceil(x: Any) -> Any:
    t = type(x)
    return math.ceil(x) if t is int or t is float else _SLOW


def _n_floor(x: Any) -> Any:
    t = type(x)
    return math.floor(x) if t is int or t is float else _SLOW


def _n_contains(subject: Any, search: Any) -> Any:
    t = type(subject)
    # `in` exactly as the library (list membership is Python ==; str in str is substring and
    # a non-string in a string raises TypeError, as it does there).
    return search in subject if t is list or t is str else _SLOW


def _n_starts_with(s: Any, prefix: Any) -> Any:
    return s.startswith(prefix) if type(s) is str and type(prefix) is str else _SLOW


def _n_ends_with(s: Any, suffix: Any) -> Any:
    return s.endswith(suffix) if type(s) is str and type(suffix) is str else _SLOW


def _n_join(sep: Any, items: Any) -> Any:
    if type(sep) is str and type(items) is list and _all_strings(items):
        return sep.join(items)
    return _SLOW


def _n_keys(x: Any) -> Any:
    return list(x.keys()) if type(x) is dict else _SLOW


def _n_values(x: Any) -> Any:
    return list(x.values()) if type(x) is dict else _SLOW


def _n_length(x: Any) -> Any:
    t = type(x)
    return len(x) if t is str or t is list or t is dict else _SLOW


def _n_max(x: Any) -> Any:
    if type(x) is not list or not _homogeneous(x):
        return _SLOW
    return max(x) if x else None


def _n_min(x: Any) -> Any:
    if type(x) is not list or not _homogeneous(x):
        return _SLOW
    return min(x) if x else None


def _n_sort(x: Any) -> Any:
    return sorted(x) if type(x) is list and _homogeneous(x) else _SLOW


def _n_sum(x: Any) -> Any:
    return sum(x) if type(x) is list and _all_numbers(x) else _SLOW


def _n_reverse(x: Any) -> Any:
    t = type(x)
    if t is str:
        return x[::-1]
    return list(reversed(x)) if t is list else _SLOW


def _n_to_array(x: Any) -> Any:
    return x if isinstance(x, list) else [x]


def _n_to_string(x: Any) -> Any:
    if isinstance(x, str):
        return x
    return json.dumps(x, separators=(",", ":"), default=str)


def _n_to_number(x: Any) -> Any:
    t = type(x)
    if t is int or t is float:
        return x
    if x is None or t is bool or t is list or t is dict:
        return None
    if t is not str:
        return _SLOW
    try:
        return int(x)
    except ValueError:
        try:
            return float(x)
        except ValueError:
            return None


def _n_type(x: Any) -> Any:
    if isinstance(x, str):
        return "string"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, list):
        return "array"
    if isinstance(x, dict):
        return "object"
    if isinstance(x, (float, int)):
        return "number"
    if x is None:
        return "null"
    return None


def _n_map(expref: Any, items: Any) -> Any:
    if type(expref) is _Expression and type(items) is list:
        fn = expref.fn
        return [fn(e) for e in items]
    return _SLOW


def _n_not_null(*args: Any) -> Any:
    for a in args:
        if a is not None:
            return a
    return None


def _n_merge(*args: Any) -> Any:
    merged: dict[Any, Any] = {}
    for a in args:
        if type(a) is not dict:
            return _SLOW
        merged.update(a)
    return merged


# name -> (arity, variadic, native). Functions not listed (sort_by, min_by, max_by) run the
# library's own implementation with compiled expression references.
_NATIVE: Final[Mapping[str, tuple[int, bool, Callable[..., Any]]]] = MappingProxyType(
    {
        "abs": (1, False, _n_abs),
        "avg": (1, False, _n_avg),
        "ceil": (1, False, _n_ceil),
        "contains": (2, False, _n_contains),
        "ends_with": (2, False, _n_ends_with),
        "floor": (1, False, _n_floor),
        "join": (2, False, _n_join),
        "keys": (1, False, _n_keys),
        "length": (1, False, _n_length),
        "map": (2, False, _n_map),
        "max": (1, False, _n_max),
        "merge": (1, True, _n_merge),
        "min": (1, False, _n_min),
        "not_null": (1, True, _n_not_null),
        "reverse": (1, False, _n_reverse),
        "sort": (1, False, _n_sort),
        "starts_with": (2, False, _n_starts_with),
        "sum": (1, False, _n_sum),
        "to_array": (1, False, _n_to_array),
        "to_number": (1, False, _n_to_number),
        "to_string": (1, False, _n_to_string),
        "type": (1, False, _n_type),
        "values": (1, False, _n_values),
    }
)

_HASHABLE_SCALARS: Final = (str, int, float, bool, type(None))


# --- the compiler ----------------------------------------------------------------------------


class _Compiler:
    def __init__(self) -> None:
        self.fully_compiled = True
        self._functions = Functions()
        self._interpreter: TreeInterpreter | None = None

    def compile(self, node: dict[str, Any]) -> Fn:
        method: Callable[[dict[str, Any]], Fn] | None = getattr(self, "_c_" + node["type"], None)
        if method is None:
            return self._fallback(node)
        return method(node)

    def _fallback(self, node: dict[str, Any]) -> Fn:
        """Leave this sub-expression to the library's tree interpreter."""
        self.fully_compiled = False
        if self._interpreter is None:
            self._interpreter = TreeInterpreter()
        visit = self._interpreter.visit
        tree_node = cast(Any, node)

        def fallback(v: Any) -> Any:
            return visit(tree_node, v)

        return fallback

    # -- leaves --

    def _c_literal(self, node: dict[str, Any]) -> Fn:
        value = node["value"]
        return lambda v: value

    def _c_current(self, node: dict[str, Any]) -> Fn:
        return _identity

    _c_identity = _c_current

    def _c_field(self, node: dict[str, Any]) -> Fn:
        return _field_chain([node["value"]])

    def _c_index(self, node: dict[str, Any]) -> Fn:
        i: int = node["value"]

        def index(v: Any) -> Any:
            if not isinstance(v, list):
                return None
            try:
                return v[i]
            except IndexError:
                return None

        return index

    def _c_slice(self, node: dict[str, Any]) -> Fn:
        start, stop, step = node["children"]
        if step == 0:

            def bad_slice(v: Any) -> Any:
                if isinstance(v, list):
                    raise InvalidSliceStepError("slice step cannot be zero")
                return None

            return bad_slice
        s = slice(start, stop, step)
        return lambda v: v[s] if isinstance(v, list) else None

    # -- composition --

    def _c_subexpression(self, node: dict[str, Any]) -> Fn:
        return self._sequence(node["children"])

    _c_index_expression = _c_subexpression
    _c_pipe = _c_subexpression

    def _sequence(self, children: Sequence[dict[str, Any]]) -> Fn:
        # Runs of plain fields become one closure doing successive dict lookups.
        parts: list[Fn] = []
        keys: list[str] = []
        for child in _flatten_sequence(children):
            if child["type"] == "field":
                keys.append(child["value"])
                continue
            if keys:
                parts.append(_field_chain(keys))
                keys = []
            parts.append(self.compile(child))
        if keys:
            parts.append(_field_chain(keys))
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            f, g = parts
            return lambda v: g(f(v))
        steps = tuple(parts)

        def sequence(v: Any) -> Any:
            for step in steps:
                v = step(v)
            return v

        return sequence

    def _c_projection(self, node: dict[str, Any]) -> Fn:
        left = self.compile(node["children"][0])
        right_node = node["children"][1]
        if right_node["type"] == "identity":

            def project_identity(v: Any) -> Any:
                base = left(v)
                if not isinstance(base, list):
                    return None
                return [e for e in base if e is not None]

            return project_identity
        right = self.compile(right_node)

        def project(v: Any) -> Any:
            base = left(v)
            if not isinstance(base, list):
                return None
            out = []
            for e in base:
                r = right(e)
                if r is not None:
                    out.append(r)
            return out

        return project

    def _c_value_projection(self, node: dict[str, Any]) -> Fn:
        left = self.compile(node["children"][0])
        right = self.compile(node["children"][1])

        def project_values(v: Any) -> Any:
            base = left(v)
            try:
                values = base.values()
            except AttributeError:
                return None
            out = []
            for e in values:
                r = right(e)
                if r is not None:
                    out.append(r)
            return out

        return project_values

    def _c_filter_projection(self, node: dict[str, Any]) -> Fn:
        left = self.compile(node["children"][0])
        right = self.compile(node["children"][1])
        cond = self.compile(node["children"][2])

        def filter_project(v: Any) -> Any:
            base = left(v)
            if not isinstance(base, list):
                return None
            out = []
            for e in base:
                c = cond(e)
                if c or (c is not None and c is not False and not _is_false(c)):
                    r = right(e)
                    if r is not None:
                        out.append(r)
            return out

        return filter_project

    def _c_flatten(self, node: dict[str, Any]) -> Fn:
        inner = self.compile(node["children"][0])

        def flatten(v: Any) -> Any:
            base = inner(v)
            if not isinstance(base, list):
                return None
            out: list[Any] = []
            for e in base:
                if isinstance(e, list):
                    out.extend(e)
                else:
                    out.append(e)
            return out

        return flatten

    def _c_multi_select_list(self, node: dict[str, Any]) -> Fn:
        items = tuple(self.compile(c) for c in node["children"])
        return lambda v: None if v is None else [f(v) for f in items]

    def _c_multi_select_dict(self, node: dict[str, Any]) -> Fn:
        pairs = tuple((c["value"], self.compile(c["children"][0])) for c in node["children"])
        return lambda v: None if v is None else {k: f(v) for k, f in pairs}

    # -- logic --

    def _c_or_expression(self, node: dict[str, Any]) -> Fn:
        terms = [self.compile(t) for t in _operands(node, "or_expression")]
        if len(terms) == 2:
            left, right = terms

            def or_(v: Any) -> Any:
                x = left(v)
                if x or (x is not None and x is not False and not _is_false(x)):
                    return x
                return right(v)

            return or_
        *firsts, last = terms

        def or_n(v: Any) -> Any:
            for term in firsts:
                x = term(v)
                if x or (x is not None and x is not False and not _is_false(x)):
                    return x
            return last(v)

        return or_n

    def _c_and_expression(self, node: dict[str, Any]) -> Fn:
        terms = [self.compile(t) for t in _operands(node, "and_expression")]
        if len(terms) == 2:
            left, right = terms

            def and_(v: Any) -> Any:
                x = left(v)
                if x or (x is not None and x is not False and not _is_false(x)):
                    return right(v)
                return x

            return and_
        *firsts, last = terms

        def and_n(v: Any) -> Any:
            for term in firsts:
                x = term(v)
                if not x and (x is None or x is False or _is_false(x)):
                    return x
            return last(v)

        return and_n

    def _c_not_expression(self, node: dict[str, Any]) -> Fn:
        inner = self.compile(node["children"][0])

        def not_(v: Any) -> Any:
            x = inner(v)
            # Python's `not`, except that 0 is true in JMESPath (so !0 is false).
            return False if x else not is_number(x)

        return not_

    def _c_comparator(self, node: dict[str, Any]) -> Fn:
        op: str = node["value"]
        lnode, rnode = node["children"]
        if rnode["type"] == "literal" and lnode["type"] != "literal":
            return self._compare_literal(op, lnode, rnode["value"], flipped=False)
        if lnode["type"] == "literal" and rnode["type"] != "literal":
            return self._compare_literal(op, rnode, lnode["value"], flipped=True)
        left = self.compile(lnode)
        right = self.compile(rnode)
        if op == "eq":
            return lambda v: _equals(left(v), right(v))
        if op == "ne":
            return lambda v: not _equals(left(v), right(v))
        cmp = _ORDERING[op]

        def ordering(v: Any) -> Any:
            a = left(v)
            b = right(v)
            if _is_comparable(a) and _is_comparable(b):
                return cmp(a, b)
            return None

        return ordering

    def _compare_literal(self, op: str, node: dict[str, Any], lit: Any, *, flipped: bool) -> Fn:
        """``node <op> literal`` (or ``literal <op> node`` when flipped)."""
        if op == "eq" and type(lit) is str:
            keys = field_path(node)
            if keys is not None and len(keys) <= 3:
                return _path_equals_string(keys, lit)
        side = self.compile(node)
        if op in ("eq", "ne"):
            eq = _literal_equality(side, lit)
            if op == "eq":
                return eq
            return lambda v: not eq(v)
        cmp = _ORDERING[op]
        if not _is_comparable(lit):
            # Ordering against a non-number/string literal is always null (after evaluating
            # the other side, which may raise).
            def null_ordering(v: Any) -> Any:
                side(v)
                return None

            return null_ordering
        if flipped:

            def ordering_lit_left(v: Any) -> Any:
                x = side(v)
                t = type(x)
                if t is int or t is float or (x is not None and _is_comparable(x)):
                    return cmp(lit, x)
                return None

            return ordering_lit_left

        def ordering_lit(v: Any) -> Any:
            x = side(v)
            t = type(x)
            if t is int or t is float or (x is not None and _is_comparable(x)):
                return cmp(x, lit)
            return None

        return ordering_lit

    # -- functions --

    def _c_function_expression(self, node: dict[str, Any]) -> Fn:
        name: str = node["value"]
        arg_nodes: list[dict[str, Any]] = node["children"]
        args = [self._compile_argument(a) for a in arg_nodes]
        call_function = self._functions.call_function
        spec = _NATIVE.get(name)
        arity_ok = spec is not None and (len(args) >= spec[0] if spec[1] else len(args) == spec[0])
        if spec is None or not arity_ok:
            # Unknown function, wrong arity, or sort_by/min_by/max_by: the library's
            # call_function validates and runs it (raising its own errors) after the
            # arguments are evaluated, as the interpreter does.
            arg_fns = tuple(args)
            return lambda v: call_function(name, [f(v) for f in arg_fns])
        native = spec[2]
        special = _special_function(name, arg_nodes, args, call_function)
        if special is not None:
            return special
        if len(args) == 1:
            (a0,) = args

            def call1(v: Any) -> Any:
                x = a0(v)
                r = native(x)
                return call_function(name, [x]) if r is _SLOW else r

            return call1
        if len(args) == 2:
            a0, a1 = args

            def call2(v: Any) -> Any:
                x = a0(v)
                y = a1(v)
                r = native(x, y)
                return call_function(name, [x, y]) if r is _SLOW else r

            return call2
        arg_fns = tuple(args)

        def call_n(v: Any) -> Any:
            values = [f(v) for f in arg_fns]
            r = native(*values)
            return call_function(name, values) if r is _SLOW else r

        return call_n

    def _compile_argument(self, node: dict[str, Any]) -> Fn:
        if node["type"] == "expref":
            body = node["children"][0]
            ref = _Expression(body, self.compile(body))
            return lambda v: ref
        return self.compile(node)


def _identity(v: Any) -> Any:
    return v


def _operands(node: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """``a && b && c`` in evaluation order: && and || are associative, short-circuit included."""
    if node["type"] != kind:
        return [node]
    return [t for child in node["children"] for t in _operands(child, kind)]


def _flatten_sequence(children: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nested subexpression/index_expression/pipe nodes are plain sequences: inline them."""
    out: list[dict[str, Any]] = []
    for child in children:
        if child["type"] in ("subexpression", "index_expression", "pipe"):
            out.extend(_flatten_sequence(child["children"]))
        else:
            out.append(child)
    return out


def _field_chain(keys: Sequence[str]) -> Fn:
    """``a.b.c``: successive dict lookups, null as soon as a value is not an object."""
    if len(keys) == 1:
        (k1,) = keys
        return lambda v: v.get(k1) if type(v) is dict else None if v is None else _field(v, k1)
    if len(keys) == 2:
        k1, k2 = keys

        def chain2(v: Any) -> Any:
            v = v.get(k1) if type(v) is dict else None if v is None else _field(v, k1)
            return v.get(k2) if type(v) is dict else None if v is None else _field(v, k2)

        return chain2
    if len(keys) == 3:
        k1, k2, k3 = keys

        def chain3(v: Any) -> Any:
            v = v.get(k1) if type(v) is dict else None if v is None else _field(v, k1)
            v = v.get(k2) if type(v) is dict else None if v is None else _field(v, k2)
            return v.get(k3) if type(v) is dict else None if v is None else _field(v, k3)

        return chain3
    path = tuple(keys)

    def chain(v: Any) -> Any:
        for k in path:
            v = v.get(k) if type(v) is dict else None if v is None else _field(v, k)
        return v

    return chain


def field_path(node: Mapping[str, Any]) -> tuple[str, ...] | None:
    """``a.b."c-d"`` as ("a", "b", "c-d"); None for anything that is not a chain of fields.

    Shared with fanout.rules.index, which keys its lookup tables on the same paths."""
    if node["type"] == "field":
        return (str(node["value"]),)
    if node["type"] != "subexpression":
        return None
    keys = []
    for child in _flatten_sequence(node["children"]):
        if child["type"] != "field":
            return None
        keys.append(str(child["value"]))
    return tuple(keys)


def _path_equals_string(keys: Sequence[str], lit: str) -> Fn:
    """``a.b.c == 'text'`` in one closure: the commonest indexed rule term."""
    if len(keys) == 1:
        (k1,) = keys
        return lambda v: (
            (v.get(k1) if type(v) is dict else None if v is None else _field(v, k1)) == lit
        )
    if len(keys) == 2:
        k1, k2 = keys

        def path2_equals(v: Any) -> Any:
            v = v.get(k1) if type(v) is dict else None if v is None else _field(v, k1)
            return (v.get(k2) if type(v) is dict else None if v is None else _field(v, k2)) == lit

        return path2_equals
    k1, k2, k3 = keys

    def path3_equals(v: Any) -> Any:
        v = v.get(k1) if type(v) is dict else None if v is None else _field(v, k1)
        v = v.get(k2) if type(v) is dict else None if v is None else _field(v, k2)
        return (v.get(k3) if type(v) is dict else None if v is None else _field(v, k3)) == lit

    return path3_equals


def _literal_equality(side: Fn, lit: Any) -> Fn:
    """``side == literal`` with the library's 0/1-vs-boolean rule resolved at compile time."""
    if isinstance(lit, bool):
        # 0/1 (and 0.0/1.0) never equal a boolean; other numbers never equal one anyway.
        def eq_bool(v: Any) -> Any:
            x = side(v)
            return x is lit or (not is_number(x) and x == lit)

        return eq_bool
    if is_number(lit) and lit in (0, 1):

        def eq_zero_one(v: Any) -> Any:
            x = side(v)
            return not isinstance(x, bool) and x == lit

        return eq_zero_one
    if lit is None:
        return lambda v: side(v) is None
    # Any other literal (string, other number, array, object): plain Python equality.
    return lambda v: side(v) == lit


def _constant_list(node: dict[str, Any]) -> list[Any] | None:
    """The list a literal `[...]` or a multiselect of literals (['a', 'b']) evaluates to."""
    if node["type"] == "literal":
        value = node["value"]
        return value if isinstance(value, list) else None
    if node["type"] == "multi_select_list" and all(
        c["type"] == "literal" for c in node["children"]
    ):
        return [c["value"] for c in node["children"]]
    return None


def _special_function(
    name: str,
    arg_nodes: list[dict[str, Any]],
    args: list[Fn],
    call_function: Callable[[str, list[Any]], Any],
) -> Fn | None:
    """Literal-argument shapes common in rules: precomputed sets and prefixes."""
    items = _constant_list(arg_nodes[0]) if name == "contains" else None
    if items is not None and all(type(e) in _HASHABLE_SCALARS for e in items):
        # Set membership == Python list membership for hashable scalars (hash agrees with ==,
        # including the library's 1 == 1.0 == true); a list or object search value equals no
        # scalar, so it is simply not contained.
        members = frozenset(items)
        search = args[1]
        # ['a', 'b'] (a multiselect, unlike `["a", "b"]`) is null when the current node is.
        nullable = arg_nodes[0]["type"] == "multi_select_list"

        def contains_set(v: Any) -> Any:
            x = search(v)
            t = type(x)
            if v is None and nullable:
                return call_function(name, [None, x])  # the library's type error
            if t is str or t is int or t is float or t is bool or x is None:
                return x in members
            if t is list or t is dict:
                return False
            return x in items

        return contains_set
    if name in ("starts_with", "ends_with") and arg_nodes[1]["type"] == "literal":
        affix = arg_nodes[1]["value"]
        if type(affix) is str:
            subject = args[0]
            method = str.startswith if name == "starts_with" else str.endswith

            def affix_test(v: Any) -> Any:
                x = subject(v)
                if type(x) is str:
                    return method(x, affix)
                return call_function(name, [x, affix])

            return affix_test
    return None
