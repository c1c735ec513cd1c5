"""Differential property test: compiled JMESPath (fanout.rules.jmescompile) vs `jmespath.search`.

Expressions come from a grammar over the same few field names the generated JSON documents
use, so paths mostly hit; function calls get the right arity most of the time and arguments of
any type, so type, arity and unknown-function errors are exercised too. The compiled result must
equal the library's (type-strict: 1, 1.0 and true differ), or both must raise, the compiled
error being the library's class (or a subclass: a zero slice step raises InvalidSliceStepError
where the library raises a bare ValueError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import jmespath
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jmespath.functions import Functions

from fanout.rules.jmescompile import compile_expression
from tests.support.jsonsame import same_json

FIELDS = ["a", "b", "c", "d-e"]
STRINGS = ["", "a", "ab", "b", "B", "1", "2.5", "abc", "x y"]
FUNCTIONS: dict[str, int] = {
    name: len(spec["signature"]) for name, spec in Functions.FUNCTION_TABLE.items()
}

# --- JSON documents ----------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 2, 3, 10]),
    st.integers(-1000, 1000),
    st.sampled_from([0.0, 1.0, -1.5, 2.5, 3.0]),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
    st.sampled_from(STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4),
    ),
    max_leaves=20,
)
# Mostly objects using the grammar's field names (like events), so paths usually resolve.
documents = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=2),
    st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=2),
    json_values,
)

# --- expressions -------------------------------------------------------------------------


def _ident(name: str) -> str:
    return name if name.isidentifier() else json.dumps(name)


field = st.sampled_from(FIELDS).map(_ident)
path = st.lists(field, min_size=1, max_size=4).map(".".join)  # a.b.c: compiled specially
literal_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, 2, -1, 1.0, 2.5, 0.0])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.sampled_from(STRINGS)),
    max_leaves=4,
)
literal = literal_json.map(lambda v: f"`{json.dumps(v)}`")
raw_string = st.sampled_from(STRINGS).map(lambda s: f"'{s}'")
index = st.integers(-3, 3).map(lambda i: f"[{i}]")
slice_part = st.one_of(st.just(""), st.integers(-4, 4).map(str))
slices = st.tuples(slice_part, slice_part, slice_part).map(
    lambda p: f"[{p[0]}:{p[1]}:{p[2]}]" if p[2] else f"[{p[0]}:{p[1]}]"
)
comparator = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
leaf = st.one_of(field, field, st.just("@"), literal, raw_string)


def _compose(e: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    p = e.map(lambda s: f"({s})")  # parenthesised operand: always valid whatever s is
    fn_name = st.one_of(st.sampled_from(sorted(FUNCTIONS)), st.just("no_such_fn"))
    arg = st.one_of(e, e, e.map(lambda s: f"&{s}"))

    def call(name: str, draw_args: Callable[[int], st.SearchStrategy[list[str]]]) -> Any:
        arity = FUNCTIONS.get(name, 1)
        counts = st.one_of(st.just(arity), st.just(arity), st.integers(0, 3))
        return counts.flatmap(draw_args).map(lambda args: f"{name}({', '.join(args)})")

    # to_string(&x) prints the reference object's address: different in every evaluator.
    calls = fn_name.flatmap(
        lambda n: call(
            n, lambda k: st.lists(e if n == "to_string" else arg, min_size=k, max_size=k)
        )
    )
    return st.one_of(
        st.tuples(p, field).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(field, field, field).map(".".join),
        st.tuples(p, index).map("".join),
        st.tuples(p, slices).map("".join),
        st.tuples(field, slices, field).map(lambda t: f"{t[0]}{t[1]}.{t[2]}"),
        st.tuples(p, field).map(lambda t: f"{t[0]}[*].{t[1]}"),
        st.tuples(p, field).map(lambda t: f"{t[0]}.*.{t[1]}"),
        p.map(lambda s: f"{s}[]"),
        p.map(lambda s: f"{s}.*"),
        st.tuples(p, p).map(lambda t: f"{t[0]}[?{t[1]}]"),
        st.tuples(field, p, field).map(lambda t: f"{t[0]}[?{t[1]}].{t[2]}"),
        st.tuples(p, comparator, p).map(" ".join),
        st.tuples(path, comparator, st.one_of(literal, raw_string)).map(" ".join),
        st.tuples(st.one_of(literal, raw_string), comparator, path).map(" ".join),
        st.lists(p, min_size=2, max_size=4).map(" && ".join),
        st.lists(p, min_size=2, max_size=4).map(" || ".join),
        st.tuples(p, p, p).map(lambda t: f"{t[0]} || {t[1]} && !{t[2]}"),
        p.map(lambda s: f"!{s}"),
        st.tuples(p, p).map(" | ".join),
        st.lists(e, min_size=1, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        st.lists(e, min_size=1, max_size=3).map(
            lambda xs: "{" + ", ".join(f"k{i}: {x}" for i, x in enumerate(xs)) + "}"
        ),
        st.tuples(p, st.lists(e, min_size=1, max_size=2)).map(
            lambda t: f"{t[0]}.[{', '.join(t[1])}]"
        ),
        calls,
        # Rule-engine shapes the compiler specialises.
        st.tuples(st.lists(literal_json, max_size=4), path).map(
            lambda t: f"contains(`{json.dumps(t[0])}`, {t[1]})"
        ),
        # ['x', `1`] is a multiselect of literals: null (then a type error) on a null node.
        st.tuples(p, st.lists(st.one_of(literal, raw_string), max_size=3), path).map(
            lambda t: f"{t[0]}[*].contains([{', '.join(t[1]) or '`1`'}], {t[2]})"
        ),
        st.tuples(path, raw_string).map(lambda t: f"starts_with({t[0]}, {t[1]})"),
        st.tuples(path, raw_string).map(lambda t: f"ends_with({t[0]}, {t[1]})"),
    )


expressions = st.recursive(leaf, _compose, max_leaves=8)


# to_string(&x) prints the reference object's address, different in every evaluation.
_EXPREF_REPR = re.compile(r"<[\w.]+\._Expression object at 0x[0-9a-f]+>")


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return _EXPREF_REPR.sub("<expref>", value)
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def _outcome(run: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", _normalise(run())
    except Exception as exc:  # any class: the two evaluators must agree on it
        return "error", exc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=expressions, data=documents)
def test_compiled_matches_library(expression: str, data: Any) -> None:
    lib_kind, lib_value = _outcome(lambda: jmespath.search(expression, data))
    our_kind, our_value = _outcome(lambda: compile_expression(expression).search(data))
    assert our_kind == lib_kind, (expression, data, lib_value, our_value)
    if lib_kind == "error":
        assert isinstance(our_value, type(lib_value)), (expression, data, lib_value, our_value)
    else:
        assert same_json(our_value, lib_value), (expression, data, lib_value, our_value)
