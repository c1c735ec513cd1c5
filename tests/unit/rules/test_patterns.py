"""EventBridge event patterns: operators, arrays, $or, validation, explain, index terms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.rules.patterns import (
    PatternError,
    PatternTerm,
    compile_pattern,
    value_key,
    values_at,
)

# The example event of AWS's content-filtering docs (and event-ruler's README).
EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "012345679012",
    "time": "2017-10-02T16:24:49Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.33",
        "instance-id": "i-000000aaaaaa00000",
        "state": "running",
    },
}


def m(pattern: Any, event: Any) -> bool:
    return compile_pattern(pattern).matches(event)


# --- examples from the AWS event-pattern docs -----------------------------------------------


# (pattern, matches EC2_EVENT): the examples of AWS's event-pattern docs, plus near misses.
DOC_EXAMPLES: list[tuple[dict[str, Any], bool]] = [
    (
        {
            "detail-type": ["EC2 Instance State-change Notification"],
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
            "detail": {"state": ["initializing", "running"]},
        },
        True,
    ),
    ({"time": [{"prefix": "2017-10-02"}]}, True),
    ({"time": [{"prefix": "2017-10-03"}]}, False),
    ({"source": [{"prefix": {"equals-ignore-case": "AWS.EC"}}]}, True),
    ({"source": [{"suffix": "ec2"}]}, True),
    ({"source": [{"suffix": {"equals-ignore-case": "EC2"}}]}, True),
    ({"source": [{"equals-ignore-case": "AWS.EC2"}]}, True),
    ({"detail": {"state": [{"anything-but": "initializing"}]}}, True),
    ({"detail": {"state": [{"anything-but": "running"}]}}, False),
    ({"detail": {"x-limit": [{"anything-but": 123}]}}, True),
    ({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}, True),
    ({"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}, True),
    ({"detail": {"x-limit": [{"anything-but": [301.8]}]}}, False),
    ({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, True),
    ({"detail": {"state": [{"anything-but": {"prefix": ["init", "run"]}}]}}, False),
    ({"detail": {"instance-id": [{"anything-but": {"suffix": "1234"}}]}}, True),
    ({"detail": {"instance-id": [{"anything-but": {"suffix": ["1234", "000"]}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"equals-ignore-case": "RUNNING"}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["x", "y"]}}]}}, True),
    ({"detail": {"state": [{"anything-but": {"wildcard": "r*g"}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"wildcard": ["x*", "*y"]}}]}}, True),
    (
        {
            "detail": {
                "c-count": [{"numeric": [">", 0, "<=", 5]}],
                "d-count": [{"numeric": ["<", 10]}],
                "x-limit": [{"numeric": ["=", 3.018e2]}],
            }
        },
        True,
    ),
    ({"detail": {"c-count": [{"numeric": [">", 5]}]}}, False),
    ({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}, True),
    ({"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}, False),
    ({"detail": {"c-count": [{"exists": True}]}}, True),
    ({"detail": {"c-count": [{"exists": False}]}}, False),
    ({"detail": {"e-count": [{"exists": False}]}}, True),
    ({"source": [{"wildcard": "aws.*"}]}, True),
    ({"source": [{"wildcard": "*.ec2"}]}, True),
    ({"source": [{"wildcard": "*.s3"}]}, False),
    (
        {
            "time": [{"prefix": "2017-10-02"}],
            "detail": {
                "state": [{"anything-but": "initializing"}],
                "c-count": [{"numeric": [">", 0, "<=", 5]}],
                "d-count": [{"numeric": ["<", 10]}],
                "x-limit": [{"anything-but": [100, 200, 300]}],
                "source-ip": [{"cidr": "10.0.0.0/8"}],
            },
        },
        True,
    ),
    (
        {
            "source": ["aws.ec2"],
            "$or": [{"detail": {"state": ["stopped"]}}, {"detail": {"c-count": [5]}}],
        },
        True,
    ),
    (
        {
            "source": ["aws.ec2"],
            "$or": [{"detail": {"state": ["stopped"]}}, {"detail": {"c-count": [6]}}],
        },
        False,
    ),
]


@pytest.mark.parametrize(("pattern", "expected"), DOC_EXAMPLES)
def test_doc_examples(pattern: dict[str, Any], expected: bool) -> None:
    p = compile_pattern(pattern)
    assert p.matches(EC2_EVENT) is expected
    assert (p.explain(EC2_EVENT) is None) is expected


def test_exists_false_matches_non_leaf_field() -> None:
    # AWS docs: exists only works on leaf nodes; an object-valued c-count "does not exist".
    event = {"detail": {"state": ["initializing", "running"], "c-count": {"c1": 100}}}
    assert m({"detail": {"c-count": [{"exists": False}]}}, event)
    assert not m({"detail": {"c-count": [{"exists": True}]}}, event)


def test_null_and_empty_string_are_distinct() -> None:
    event = {"detail": {"eventVersion": "", "responseElements": None}}
    assert m({"detail": {"eventVersion": [""]}}, event)
    assert m({"detail": {"responseElements": [None]}}, event)
    assert not m({"detail": {"eventVersion": [None]}}, event)
    assert not m({"detail": {"responseElements": [""]}}, event)
    assert not m({"detail": {"missing": [None]}}, event)
    assert m({"detail": {"responseElements": [{"exists": True}]}}, event)


# --- types -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "event_value", "expected"),
    [
        ("1", 1, False),
        (1, "1", False),
        (1, True, False),
        (True, 1, False),
        (None, "null", False),
        (False, 0, False),
        (300, 300.0, True),
        (3.018e2, 301.8, True),
        (0.5, 0.5, True),
        (2**60, float(2**60), True),
        (2**60 + 1, float(2**60), False),
        (True, True, True),
    ],
)
def test_exact_values_are_type_strict(value: Any, event_value: Any, expected: bool) -> None:
    assert m({"f": [value]}, {"f": event_value}) is expected
    key_equal = value_key(value) == value_key(event_value)
    assert key_equal is expected


def test_value_key() -> None:
    assert len({value_key(v) for v in ("1", 1, True, None, "true", "null")}) == 6
    assert value_key(1) == value_key(1.0)
    assert value_key(float("nan")) is None
    assert value_key(float("inf")) is None
    assert value_key({"a": 1}) is None
    assert value_key([1]) is None


def test_numeric_only_numbers() -> None:
    p = compile_pattern({"n": [{"numeric": [">=", 0, "<", 10]}]})
    assert p.matches({"n": 0})
    assert p.matches({"n": 9.999})
    assert not p.matches({"n": 10})
    assert not p.matches({"n": "5"})
    assert not p.matches({"n": True})
    assert not p.matches({"n": None})
    assert not p.matches({"n": 2**60 + 1})  # more digits than a double: not compared
    assert compile_pattern({"n": [{"numeric": ["=", 5]}]}).matches({"n": 5.0})


def test_string_operators_need_strings() -> None:
    for op in (
        {"prefix": "1"},
        {"suffix": "1"},
        {"equals-ignore-case": "1"},
        {"wildcard": "1*"},
        {"prefix": {"equals-ignore-case": "1"}},
        {"cidr": "10.0.0.0/8"},
    ):
        assert not m({"f": [op]}, {"f": 1}), op
        assert not m({"f": [op]}, {"f": None}), op


def test_anything_but_needs_presence_and_matches_other_types() -> None:
    p = compile_pattern({"f": [{"anything-but": "a"}]})
    assert not p.matches({})
    assert not p.matches({"f": "a"})
    assert p.matches({"f": "b"})
    assert p.matches({"f": None})
    assert p.matches({"f": 1})
    num = compile_pattern({"f": [{"anything-but": [1, 2]}]})
    assert num.matches({"f": "1"})
    assert num.matches({"f": True})
    assert not num.matches({"f": 1.0})
    assert compile_pattern({"f": [{"anything-but": {"prefix": "a"}}]}).matches({"f": 5})


def test_wildcard() -> None:
    def w(pattern: str, value: str) -> bool:
        return m({"f": [{"wildcard": pattern}]}, {"f": value})

    assert w("*hello", "hello")  # `*` matches nothing too (event-ruler tests)
    assert w("h*l*o", "hlo")
    assert w("he*l*", "helxxlxxl")
    assert not w("h*llo", "hellol")
    assert w("a\\*b", "a*b")
    assert not w("a\\*b", "axb")
    assert w("a\\\\b", "a\\b")
    assert w("x*y*x", "xyx")
    assert not w("ab*ba", "aba")


def test_cidr_ipv4_and_ipv6() -> None:
    assert m({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8:0:0:1::1"})
    assert not m({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db9::1"})
    assert m({"ip": [{"cidr": "10.1.2.3/8"}]}, {"ip": "10.200.0.1"})  # host bits are masked
    assert not m({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "not an ip"})
    # An exact IPv6 value matches other spellings of the same address, like event-ruler.
    assert m({"ip": ["2001:db8::1"]}, {"ip": "2001:DB8:0:0:0:0:0:1"})


# --- arrays and structure ----------------------------------------------------------------------


def test_array_event_values_match_any_element() -> None:
    assert m({"r": ["b"]}, {"r": ["a", "b"]})
    assert m({"r": ["b"]}, {"r": [["a"], ["b"]]})
    assert not m({"r": ["c"]}, {"r": ["a", "b"]})
    assert not m({"r": [{"exists": True}]}, {"r": []})
    assert m({"r": [{"exists": False}]}, {"r": []})
    assert m({"r": [{"anything-but": "a"}]}, {"r": ["a", "b"]})
    assert not m({"r": [{"anything-but": "a"}]}, {"r": ["a"]})


def test_arrays_of_objects_are_matched_per_element() -> None:
    # event-ruler README, "JSON Array Matching": rulesForJSONEvent (what EventBridge uses)
    # refuses matches whose fields come from different elements of one array.
    event = {
        "employees": [
            {"firstName": "John", "lastName": "Doe"},
            {"firstName": "Anna", "lastName": "Smith"},
            {"firstName": "Peter", "lastName": "Jones"},
        ]
    }
    assert m({"employees": {"firstName": ["Anna"]}}, event)
    assert m({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}, event)
    assert not m({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}, event)
    nested = {"employees": [[event["employees"][0]], [event["employees"][2]]]}
    assert m({"employees": {"firstName": ["Peter"]}}, nested)
    reason = compile_pattern({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}})
    assert reason.explain(event) is not None


def test_or_nested_and_parallel() -> None:
    p = compile_pattern(
        {
            "source": ["aws.cloudwatch"],
            "$or": [
                {"metricName": ["CPUUtilization"]},
                {
                    "metricType": ["MetricType"],
                    "namespace": ["AWS/EC2"],
                    "$or": [{"metricId": [1234]}, {"spaceId": [1000]}],
                },
            ],
        }
    )
    base = {"source": "aws.cloudwatch"}
    assert p.matches({**base, "metricName": "CPUUtilization"})
    assert p.matches({**base, "metricType": "MetricType", "namespace": "AWS/EC2", "spaceId": 1000})
    assert not p.matches({**base, "metricType": "MetricType", "namespace": "AWS/EC2"})
    assert not p.matches({"source": "x", "metricName": "CPUUtilization"})
    parallel = compile_pattern(
        {
            "$or": [{"a": ["1"]}, {"b": ["1"]}],
            "detail": {"$or": [{"c": ["1"]}, {"d": ["1"]}]},
        }
    )
    assert parallel.matches({"b": "1", "detail": {"c": "1"}})
    assert not parallel.matches({"b": "1", "detail": {"e": "1"}})


def test_json_text_source() -> None:
    p = compile_pattern('{"detail": {"state": ["running"]}}')
    assert p.matches(EC2_EVENT)
    assert not p.matches([])  # type: ignore[arg-type]


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "where", "problem"),
    [
        ("{not json", "(pattern)", "not valid JSON"),
        ("[1]", "(pattern)", "must be an object"),
        ({}, "(pattern)", "empty objects"),
        ({"detail": {}}, "detail", "empty objects"),
        ({"detail": {"eventBody": {"queueId": "abc"}}}, "detail.eventBody.queueId", "a list"),
        ({"detail": {"queueId": []}}, "detail.queueId", "empty list"),
        ({"a": [["x"]]}, "a[0]", "a value must be"),
        ({"a": [{"prefix": 1}]}, "a[0].prefix", "wants a string"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, "a[0]", "exactly one key"),
        ({"a": [{"prefix": {"ignore-case": "x"}}]}, "a[0].prefix", "unsupported prefix"),
        ({"a": [{"contains": "x"}]}, "a[0]", "unknown operator 'contains'"),
        ({"a": [{"exists": "yes"}]}, "a[0].exists", "true or false"),
        ({"a": [{"anything-but": None}]}, "a[0].anything-but", "only strings or only numbers"),
        ({"a": [{"anything-but": [1, "x"]}]}, "a[0].anything-but", "only strings"),
        ({"a": [{"anything-but": []}]}, "a[0].anything-but", "empty"),
        ({"a": [{"anything-but": {"prefix": ""}}]}, "a[0].anything-but.prefix", "empty"),
        ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "a[0].anything-but", "unsupported"),
        ({"a": [{"numeric": [">", "1"]}]}, "a[0].numeric[1]", "must be a number"),
        ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "a[0].numeric", "lower bound"),
        ({"a": [{"numeric": [">", 5, "<", 1]}]}, "a[0].numeric", "below the upper"),
        ({"a": [{"numeric": [">", 1, "<", 5, "<", 6]}]}, "a[0].numeric", "operator/number"),
        ({"a": [{"numeric": ["!=", 1]}]}, "a[0].numeric[0]", "unknown numeric operator"),
        ({"a": [{"numeric": []}]}, "a[0].numeric", "non-empty"),
        ({"a": [{"numeric": ["=", 2**64 + 1]}]}, "a[0].numeric[1]", "compared exactly"),
        ({"a": [{"cidr": "10.0.0.0"}]}, "a[0].cidr", "one '/'"),
        ({"a": [{"cidr": "10.0.0.0/x"}]}, "a[0].cidr", "integer"),
        ({"a": [{"cidr": "10.0.0.300/8"}]}, "a[0].cidr", "not an IPv4 or IPv6"),
        ({"a": [{"cidr": "10.0.0.1/32"}]}, "a[0].cidr", "below 32"),
        ({"a": [{"wildcard": "a**b"}]}, "a[0].wildcard", "consecutive"),
        ({"a": [{"wildcard": "a\\b"}]}, "a[0].wildcard", "invalid escape"),
        ({"a": [{"wildcard": "*a*b*c*d*e*f"}]}, "a[0].wildcard", "too many"),
        ({"$or": [{"a": ["x"]}]}, "$or", "at least two"),
        ({"$or": {"a": ["x"]}}, "$or", "at least two"),
        ({"$or": [{"a": ["x"]}, "b"]}, "$or[1]", "must be objects"),
        ({"$or": [{"a": ["x"]}, {"prefix": ["y"]}]}, "$or[1].prefix", "operator name"),
        ({"d": {"$or": [{"a": ["x"]}, {"b": {}}]}}, "d.$or[1].b", "empty objects"),
        ({"queueId": {"prefix": "abc"}}, "queueId.prefix", "operator"),
    ],
)
def test_invalid_patterns(pattern: Any, where: str, problem: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(pattern)
    err = info.value
    assert err.where == where, str(err)
    assert problem in err.problem, str(err)
    assert err.fix
    assert str(err).startswith(f"{where}: ")


def test_operator_names_are_fields_outside_or() -> None:
    # event-ruler only reserves operator names inside $or; elsewhere they are field names.
    assert m({"numeric": ["x"]}, {"numeric": "x"})


def test_or_expansion_is_bounded() -> None:
    two = [{"a": ["1"]}, {"b": ["1"]}]
    pattern = {f"f{i}": {"$or": two} for i in range(9)}  # 2**9 alternatives
    with pytest.raises(PatternError, match="alternatives"):
        compile_pattern(pattern)


# --- explain -----------------------------------------------------------------------------------


def test_explain_names_path_and_wants_without_event_values() -> None:
    p = compile_pattern(
        {"detail": {"eventBody": {"queueId": ["q1", "q2"], "ani": [{"prefix": "+1"}]}}}
    )
    event = {"detail": {"eventBody": {"queueId": "q9-secret", "ani": "+44 7700 900123"}}}
    reason = p.explain(event)
    assert reason is not None
    assert "detail.eventBody.queueId" in reason and '"q1"' in reason and '"q2"' in reason
    assert "q9-secret" not in reason
    reason = p.explain({"detail": {"eventBody": {"queueId": "q1", "ani": "+44 7700 900123"}}})
    assert reason is not None and "detail.eventBody.ani" in reason and "7700" not in reason
    assert "missing" in (p.explain({"detail": {}}) or "")
    assert p.explain({"detail": {"eventBody": {"queueId": "q2", "ani": "+1555"}}}) is None
    absent = compile_pattern({"a": [{"exists": False}]}).explain({"a": "secret"})
    assert absent is not None and "absent" in absent and "secret" not in absent
    either = compile_pattern({"$or": [{"a": ["x"]}, {"b": ["y"]}]}).explain({})
    assert either is not None and "(1) a" in either and "(2) b" in either


# --- index terms ---------------------------------------------------------------------------------


def test_required_terms() -> None:
    p = compile_pattern(
        {
            "source": [{"prefix": "aws.partner/genesys.com"}],
            "detail": {
                "eventBody": {
                    "queueId": ["q1", "q2"],
                    "mediaType": [{"equals-ignore-case": "voice"}],
                    "n": [5, None, True],
                }
            },
            "$or": [{"x": ["1"]}, {"y": ["2"]}],
        }
    )
    assert p.required_terms() == (
        PatternTerm(("source",), frozenset(), ("aws.partner/genesys.com",)),
        PatternTerm(
            ("detail", "eventBody", "queueId"),
            frozenset({value_key("q1"), value_key("q2")}),
            (),
        ),
        PatternTerm(
            ("detail", "eventBody", "n"),
            frozenset({value_key(5), value_key(None), value_key(True)}),
            (),
        ),
    )
    same_field = compile_pattern({"$or": [{"a": ["x"]}, {"a": [{"prefix": "y"}], "b": ["z"]}]})
    assert same_field.required_terms() == (
        PatternTerm(("a",), frozenset({value_key("x")}), ("y",)),
    )
    assert compile_pattern({"a": [{"exists": False}]}).required_terms() == ()
    assert compile_pattern({"a": ["x", {"suffix": "y"}]}).required_terms() == ()


def test_values_at_expands_arrays_anywhere() -> None:
    event = {"a": [{"b": [1, [2]]}, {"b": 3}, {"c": 4}, 5], "x": {"y": {"z": 1}}}
    assert values_at(event, ("a", "b")) == [1, 2, 3]
    assert values_at(event, ("x", "y")) == []
    assert values_at(event, ("missing",)) == []


# --- soundness of required_terms (hypothesis) ----------------------------------------------------

_FIELDS = ("a", "b", "c")
_SCALARS = st.one_of(
    st.sampled_from(["", "x", "xy", "yx", "Xy", "10.0.0.5"]),
    st.sampled_from([0, 1, 2, 2.0, -3.5]),
    st.booleans(),
    st.none(),
)
_STRS = st.sampled_from(["", "x", "xy", "y", "X"])


_OPERATOR = st.one_of(
    _SCALARS,
    st.builds(lambda s: {"prefix": s}, _STRS),
    st.builds(lambda s: {"prefix": {"equals-ignore-case": s}}, _STRS),
    st.builds(lambda s: {"suffix": s}, _STRS),
    st.builds(lambda s: {"equals-ignore-case": s}, _STRS),
    st.builds(lambda s: {"wildcard": s}, st.sampled_from(["*", "x*", "*y", "x*y"])),
    st.builds(lambda s: {"anything-but": s}, st.sampled_from(["x", 1, ["x", "y"], [1, 2]])),
    st.builds(lambda b: {"exists": b}, st.booleans()),
    st.builds(lambda n: {"numeric": [">", n]}, st.sampled_from([0, 1.5])),
    st.just({"cidr": "10.0.0.0/24"}),
)
# Strategies built once (building them per draw made the test slow): patterns three objects
# deep with `$or` at the upper two levels; events are built from the pattern (see _event_for).
_KEYS = st.sampled_from(_FIELDS)
_LEAF = st.lists(_OPERATOR, min_size=1, max_size=2)
_OBJ0 = st.dictionaries(_KEYS, _LEAF, min_size=1, max_size=2)


def _with_or(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    alternatives = st.lists(_OBJ0, min_size=2, max_size=2)
    return st.one_of(base, st.builds(lambda b, alts: {**b, "$or": alts}, base, alternatives))


_OBJ1 = _with_or(st.dictionaries(_KEYS, st.one_of(_LEAF, _OBJ0), min_size=1, max_size=2))
_PATTERN = _with_or(st.dictionaries(_KEYS, st.one_of(_LEAF, _OBJ1), min_size=1, max_size=2))
_EV0 = st.dictionaries(_KEYS, st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2)), max_size=2)


def _satisfied(term: PatternTerm, event: Any) -> bool:
    for v in values_at(event, term.path):
        if value_key(v) in term.exact:
            return True
        if isinstance(v, str) and v.startswith(term.prefixes):
            return True
    return False


def _value_for(item: Any, draw: Any) -> Any:
    """A value that the leaf item probably accepts (None stands for leaving the field out)."""
    if not isinstance(item, dict):
        return item
    ((op, arg),) = item.items()
    if op in ("prefix", "suffix"):
        text = arg if isinstance(arg, str) else arg["equals-ignore-case"].upper()
        extra = draw(_STRS)
        return text + extra if op == "prefix" else extra + text
    if op == "equals-ignore-case":
        return arg.upper()
    if op == "wildcard":
        return arg.replace("*", draw(_STRS))
    if op == "numeric":
        return arg[1] + draw(st.sampled_from([0.5, 1, -1]))
    if op == "cidr":
        return "10.0.0.7"
    if op == "exists":
        return "x" if arg else None
    return draw(_SCALARS)  # anything-but


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _event_for(pattern: dict[str, Any], draw: Any) -> dict[str, Any]:
    """An event built to match the pattern, perturbed now and then (arrays, drops, noise)."""
    event: dict[str, Any] = {}
    for key, value in pattern.items():
        if key == "$or":
            _merge(event, _event_for(draw(st.sampled_from(value)), draw))
            continue
        if isinstance(value, dict):
            built: Any = _event_for(value, draw)
            if draw(st.integers(0, 7)) == 0:
                built = [draw(_EV0), built]
        else:
            built = _value_for(draw(st.sampled_from(value)), draw)
            if built is None and not any(i is None for i in value):
                continue
            if draw(st.integers(0, 7)) == 0:
                built = [draw(_SCALARS), built]
        if draw(st.integers(0, 14)) == 0:
            continue  # drop the field
        event[key] = draw(_SCALARS) if draw(st.integers(0, 14)) == 0 else built
    return event


@settings(max_examples=150, deadline=None)
@given(pattern=_PATTERN, data=st.data())
def test_required_terms_are_sound(pattern: dict[str, Any], data: st.DataObject) -> None:
    try:
        compiled = compile_pattern(pattern)
    except PatternError:
        return  # e.g. a generated mix the validator rejects
    events = [_event_for(pattern, data.draw) for _ in range(3)]
    for event in events:
        matched = compiled.matches(event)
        assert (compiled.explain(event) is None) is matched
        if matched:
            for term in compiled.required_terms():
                assert _satisfied(term, event), (json.dumps(pattern), term)
