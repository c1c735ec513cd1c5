"""ruleindex.py and the indexed RuleSet.match: the index changes cost, never results.

The differential tests compare ``RuleSet.match`` (indexed, compiled) with a naive evaluation of
every rule in file order through the jmespath library, including ``match: first``, ``stop``,
default targets and which rule raises first.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jmespath
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from jmespath import exceptions as jmespath_errors
from jmespath.parser import ParsedResult, Parser

from fanout.errors import RulesError
from fanout.local.synthetic import GenesysEventGenerator
from fanout.rules import RuleError, RuleSet, load_rules
from fanout.rules.index import NO_KEY, RuleIndex, RulePlan, json_key, plan_jmespath
from fanout.rules.model import is_truthy
from fanout.testing.rulesets import ruleset_yaml

BENCH_ENV = {
    f"{t}_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/123456789012/{t.lower()}"
    for t in ("CRITICAL", "HIGH", "STANDARD")
}
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/"
ABC = "targets:\n" + "".join(f"  {t}: {{queue_url: '{URL}{t}'}}\n" for t in "abc")

Outcome = tuple[str, tuple[str, ...], tuple[str, ...], bool] | tuple[str, str]


def plan(condition: str) -> RulePlan:
    return plan_jmespath(Parser().parse(condition).parsed)


def outcome(rules: RuleSet, data: Any) -> Outcome:
    try:
        m = rules.match(data)
    except RuleError as exc:
        return ("error", exc.rule_id)
    return ("ok", m.rule_ids, tuple(t.name for t in m.targets), m.by_default)


_LIBRARY: dict[str, ParsedResult] = {}


def library(condition: str) -> ParsedResult:
    """The jmespath library's own interpreter (its parse cache holds only 128 expressions)."""
    parsed = _LIBRARY.get(condition)
    if parsed is None:
        parsed = _LIBRARY[condition] = jmespath.compile(condition)
    return parsed


def naive(rules: RuleSet, data: Any, test: Callable[[Any, Any], bool] | None = None) -> Outcome:
    """Every rule in order through the jmespath library: what the index must reproduce."""
    matched: list[str] = []
    targets: dict[str, None] = {}
    for rule in rules.rules:
        try:
            hit = (
                test(rule, data)
                if test is not None
                else is_truthy(library(rule.condition).search(data))
            )
        except (jmespath_errors.JMESPathError, TypeError, ValueError):
            return ("error", rule.id)
        if not hit:
            continue
        matched.append(rule.id)
        targets.update(dict.fromkeys(t.name for t in rule.targets))
        if rule.stop or rules.mode == "first":
            break
    if not matched:
        defaults = tuple(t.name for t in rules.default_targets)
        return ("ok", (), defaults, bool(defaults))
    return ("ok", tuple(matched), tuple(targets), False)


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (0, 0.0, True),
        (True, 1, False),
        (False, 0, False),
        (True, 1.0, False),
        (None, False, False),
        ("1", 1, False),
        (2**53 + 1, float(2**53 + 1), False),  # Python (and the library) compare exactly
        (10**20, 1e20, True),
    ],
)
def test_json_key_follows_jmespath_equality(a: Any, b: Any, equal: bool) -> None:
    assert (json_key(a) == json_key(b)) is equal
    assert jmespath.search("a == b", {"a": a, "b": b}) is equal


@pytest.mark.parametrize("value", [[1], {"a": 1}, float("nan"), float("inf") * 0])
def test_values_no_literal_equals_have_no_key(value: Any) -> None:
    assert json_key(value) is NO_KEY


# --- plans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "paths", "complete"),
    [
        ("a.b == 'x'", [("a", "b")], True),
        ("'x' == a.b", [("a", "b")], True),
        ("\"detail-type\" == 'x' && detail.q == `1`", [("detail-type",), ("detail", "q")], True),
        ("contains(['x', 'y'], a)", [("a",)], True),
        ("contains(`[1, 2]`, a)", [("a",)], True),
        ("(a == 'x' && b == 'y') && c == `true`", [("a",), ("b",), ("c",)], True),
        ("a == 'x' && b > `1`", [("a",)], False),
        ("a == 'x' && a == 'y'", [("a",)], True),  # one slot: the intersection (empty)
    ],
)
def test_exact_plans(condition: str, paths: list[tuple[str, ...]], complete: bool) -> None:
    p = plan(condition)
    assert [t.path for t in p.exact] == paths
    assert p.complete is complete
    assert p.describe()


def test_contains_keys_follow_python_in() -> None:
    # jmespath's contains() is Python `in`: true is in [1] and 1.0 is in [true].
    (term,) = plan("contains([`1`, 'x'], a)").exact
    assert term.exact == {json_key(1), json_key(True), "x"}
    assert jmespath.search("contains([`1`], a)", {"a": True}) is True
    (term,) = plan("contains([`2`], a)").exact
    assert term.exact == {2}


@pytest.mark.parametrize(
    ("condition", "kind"),
    [
        ("a == 'x' || b == `2`", "any_of"),
        ("starts_with(source, 'aws.')", "prefix"),
        ("detail.n > `5`", "range"),
        ("`5` < detail.n", "range"),
    ],
)
def test_other_plans(condition: str, kind: str) -> None:
    p = plan(condition)
    assert p.indexed and not p.exact and getattr(p, kind)
    assert not p.complete


@pytest.mark.parametrize(
    "condition",
    [
        "length(a) > `1`",
        "a != 'x'",
        "a.b",
        "a == 'x' || length(b) > `0`",
        "a[0] == 'x'",
        "a == `[1]`",
        "a == `NaN`",
        "contains(b, 'x')",
        "starts_with(a, `1`)",
    ],
)
def test_unindexable(condition: str) -> None:
    p = plan(condition)
    assert not p.indexed and p.reason


def test_terms_after_one_that_may_raise_are_not_used() -> None:
    # length(b) raises on a number: skipping the rule because a != 'x' would hide that error.
    p = plan("length(b) > `1` && a == 'x'")
    assert not p.indexed and "may raise" in p.reason
    # Before it, they are fine.
    assert [t.path for t in plan("a == 'x' && length(b) > `1`").exact] == [("a",)]


def test_guards_keep_type_errors() -> None:
    p = plan("starts_with(s, 'x') && a == 'y' && n > `3`")
    assert {(g.path, g.kind) for g in p.guards} == {(("s",), "not_string")}
    p = plan("n > `3` && a == 'y'")
    assert {(g.path, g.kind) for g in p.guards} == {(("n",), "string")}
    index = RuleIndex([p])
    assert index.candidates({"a": "z", "n": 5}) == 0
    assert index.candidates({"a": "z", "n": "5"}) == 1  # the library raises TypeError here
    with pytest.raises(TypeError):
        jmespath.search("n > `3` && a == 'y'", {"a": "y", "n": "5"})


def test_index_arrays_only_in_pattern_mode() -> None:
    # A JMESPath field of a list is null: a.b == 'x' never matches {"a": [{"b": "x"}]}.
    index = RuleIndex([plan("a.b == 'x'")])
    assert index.candidates({"a": [{"b": "x"}]}) == 0
    assert index.candidates({"a": {"b": "x"}}) == 1


def test_ranges() -> None:
    plans = [plan(c) for c in ("n > `5`", "n >= `5`", "n < `5`", "n <= `5`", "`7` > n")]
    index = RuleIndex(plans)
    hits = {v: index.candidates({"n": v}) for v in (4, 5, 6, 7.5, True, "5", None)}
    assert hits[4] == 0b11100
    assert hits[5] & 0b00110 == 0b00110  # the >= and <= rules at the boundary
    assert hits[6] == 0b10011
    assert hits[7.5] == 0b00011
    assert hits[True] == 0  # a bool is not a number
    assert hits[None] == 0
    assert hits["5"] == 0b11111  # string vs number raises: every rule is evaluated


# --- differential: generated realistic rule sets ---------------------------------------------


def _events(seed: int, n: int) -> list[dict[str, Any]]:
    gen = GenesysEventGenerator(seed=seed)
    return [gen.event() for _ in range(n)]


WEIRD = [None, True, False, 0, 1, 1.0, "", "x", [], ["VOICE"], {}, {"a": 1}, 600001, "600001"]
PATHS = [
    ("detail-type",),
    ("source",),
    ("detail",),
    ("detail", "eventBody"),
    ("detail", "eventBody", "queueId"),
    ("detail", "eventBody", "mediaType"),
    ("detail", "eventBody", "wrapupCode"),
    ("detail", "eventBody", "interactingDurationMs"),
    ("detail", "eventBody", "routingPriority"),
    ("detail", "eventBody", "divisionId"),
    ("detail", "tags", "priority"),
    ("detail", "duration_ms"),
]


def mutate(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    node: Any = out
    for name in path[:-1]:
        if not isinstance(node, dict):
            return out
        node = node.setdefault(name, {})
    if isinstance(node, dict):
        node[path[-1]] = copy.deepcopy(value)
    return out


@pytest.fixture(scope="module")
def bench_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[int, RuleSet]:
    folder = tmp_path_factory.mktemp("bench-sets")
    out = {}
    for n, seed in ((3, 0), (10, 1), (100, 2), (1000, 3)):
        path = folder / f"rules-{n}.yaml"
        path.write_text(ruleset_yaml(n, seed=seed), encoding="utf-8")
        out[n] = load_rules(path, env=BENCH_ENV)
    return out


@pytest.mark.parametrize("n", [3, 10, 100, 1000])
def test_bench_rule_sets_match_like_naive(bench_sets: dict[int, RuleSet], n: int) -> None:
    rules = bench_sets[n]
    events = _events(n, {3: 1500, 10: 1500, 100: 500, 1000: 120}[n])
    matched = 0
    for event in events:
        got = outcome(rules, event)
        assert got == naive(rules, event)
        matched += got[0] == "ok" and bool(got[1])
    assert matched > 0  # the generated rules do route the generated events


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 10**6),
    st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(WEIRD)), min_size=1, max_size=3),
)
def test_bench_rule_set_on_mutated_events(
    bench_sets: dict[int, RuleSet], seed: int, mutations: list[tuple[tuple[str, ...], Any]]
) -> None:
    (event,) = _events(seed, 1)
    for path, value in mutations:
        event = mutate(event, path, value)
    for rules in (bench_sets[100], bench_sets[1000]):
        assert outcome(rules, event) == naive(rules, event)


# --- differential: hypothesis-built rule sets that stress types ----------------------------

FIELDS = ["a", "b", "a.b", "a.c", '"x-y"', "a.b.c"]
LITERALS = [
    "`true`",
    "`false`",
    "`null`",
    "`0`",
    "`1`",
    "`1.0`",
    "`0.0`",
    "`2`",
    "`-1`",
    "`NaN`",
    "`1e400`",
    "'1'",
    "'a'",
    "''",
    "'ab'",
    "`[1]`",
    '`{"b": 1}`',
]
SCALARS: list[Any] = [None, True, False, 0, 1, 1.0, 0.0, 2, -1, math.inf, math.nan, "1", "a", ""]
SCALARS += ["ab", "abc", "b"]
KEYS = ["a", "b", "c", "x-y"]

fields = st.sampled_from(FIELDS)
literals = st.sampled_from(LITERALS)
strings = st.sampled_from(["'a'", "''", "'ab'", "`1`"])


@st.composite
def eq_terms(draw: st.DrawFn) -> str:
    f, lit = draw(fields), draw(literals)
    return f"{f} == {lit}" if draw(st.booleans()) else f"{lit} == {f}"


@st.composite
def terms(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 10))
    f = draw(fields)
    if kind <= 2:
        return draw(eq_terms())
    if kind == 3:
        return f"{f} != {draw(literals)}"
    if kind == 4:
        items = draw(st.lists(literals, min_size=1, max_size=3))
        return f"contains([{', '.join(items)}], {f})"
    if kind == 5:
        values = draw(st.lists(st.sampled_from([*SCALARS[:10], "1", "a"]), max_size=3))
        values = [v for v in values if not (isinstance(v, float) and not math.isfinite(v))]
        return f"contains(`{json.dumps(values)}`, {f})"
    if kind == 6:
        return f"starts_with({f}, {draw(strings)})"
    if kind == 7:
        op = draw(st.sampled_from(["<", "<=", ">", ">="]))
        lit = draw(st.sampled_from(["`1`", "`0.5`", "`2`", "'a'", "`true`", "`null`"]))
        return f"{f} {op} {lit}" if draw(st.booleans()) else f"{lit} {op} {f}"
    if kind == 8:
        return f"({draw(eq_terms())} || {draw(eq_terms())})"
    if kind == 9:
        return draw(st.sampled_from([f, f"!{f}", f"not_null({f})", f"length({f}) > `0`"]))
    return f"ends_with({f}, {draw(strings)})"


@st.composite
def conditions(draw: st.DrawFn) -> str:
    parts = draw(st.lists(terms(), min_size=1, max_size=4))
    text = parts[0]
    for part in parts[1:]:
        # Mixed grouping: (a && b) && c and a && (b && c) are both conjunctions.
        text = f"({text}) && {part}" if draw(st.booleans()) else f"{text} && ({part})"
    return text


json_values = st.recursive(
    st.sampled_from(SCALARS),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=3)
    ),
    max_leaves=8,
)
documents = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    lines = [ABC, f"match: {draw(st.sampled_from(['all', 'first']))}"]
    if draw(st.booleans()):
        lines.append("default_targets: [c]")
    lines.append("rules:")
    for i, cond in enumerate(draw(st.lists(conditions(), min_size=1, max_size=8))):
        target = draw(st.sampled_from(["a", "b", "c", "a, b"]))
        stop = draw(st.booleans()) and draw(st.booleans())
        lines.append(
            f"  - {{id: r{i}, condition: {json.dumps(cond)}, targets: [{target}], "
            f"stop: {str(stop).lower()}}}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated") / "rules.yaml"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_files(), st.lists(documents, min_size=1, max_size=6))
def test_generated_rule_sets_match_like_naive(
    scratch: Path, text: str, docs: list[dict[str, Any]]
) -> None:
    scratch.write_text(text, encoding="utf-8")
    rules = load_rules(scratch, env={})
    for doc in docs:
        assert outcome(rules, doc) == naive(rules, doc), text


# --- differential: EventBridge-pattern rule sets ------------------------------------------


def pattern_test(rule: Any, data: Any) -> bool:
    matched: bool = rule.compiled.matches(data)
    return matched


@pytest.fixture(scope="module")
def pattern_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[int, RuleSet]:
    folder = tmp_path_factory.mktemp("pattern-sets")
    out = {}
    for n, seed in ((10, 4), (100, 5), (1000, 6)):
        path = folder / f"rules-{n}.yaml"
        path.write_text(ruleset_yaml(n, flavour="pattern", seed=seed), encoding="utf-8")
        out[n] = load_rules(path, env=BENCH_ENV)
    return out


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_bench_pattern_sets_match_like_naive(pattern_sets: dict[int, RuleSet], n: int) -> None:
    rules = pattern_sets[n]
    assert all(r.kind == "pattern" for r in rules.rules)
    matched = 0
    for event in _events(100 + n, 300 if n == 1000 else 1000):
        got = outcome(rules, event)
        assert got == naive(rules, event, pattern_test)
        matched += got[0] == "ok" and bool(got[1])
    assert matched > 0


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 10**6),
    st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(WEIRD)), min_size=1, max_size=3),
)
def test_bench_pattern_set_on_mutated_events(
    pattern_sets: dict[int, RuleSet], seed: int, mutations: list[tuple[tuple[str, ...], Any]]
) -> None:
    (event,) = _events(seed, 1)
    for path, value in mutations:
        event = mutate(event, path, value)
    rules = pattern_sets[1000]
    assert outcome(rules, event) == naive(rules, event, pattern_test)


PATTERN_SCALARS: list[Any] = ["1", 1, 1.0, 2, True, False, None, "a", "ab", ""]
leaf_matchers = st.one_of(
    st.sampled_from(PATTERN_SCALARS),
    st.builds(lambda p: {"prefix": p}, st.sampled_from(["a", "ab", ""])),
    st.builds(lambda n: {"numeric": [">", n]}, st.sampled_from([0, 1, 1.5])),
    st.builds(lambda b: {"exists": b}, st.booleans()),
    st.builds(lambda v: {"anything-but": v}, st.sampled_from(["a", 1])),
)
leaf_lists = st.lists(leaf_matchers, min_size=1, max_size=3)


@st.composite
def patterns(draw: st.DrawFn) -> dict[str, Any]:
    def level(depth: int) -> dict[str, Any]:
        keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True))
        out: dict[str, Any] = {}
        for key in keys:
            nested = depth < 2 and draw(st.integers(0, 3)) == 0
            out[key] = level(depth + 1) if nested else draw(leaf_lists)
        return out

    pattern = level(0)
    if draw(st.integers(0, 4)) == 0:
        pattern["$or"] = [level(1), level(1)]
    return pattern


@st.composite
def pattern_files(draw: st.DrawFn) -> str:
    lines = [ABC, f"match: {draw(st.sampled_from(['all', 'first']))}", "rules:"]
    for i, pattern in enumerate(draw(st.lists(patterns(), min_size=1, max_size=6))):
        stop = draw(st.booleans()) and draw(st.booleans())
        lines.append(
            f"  - {{id: p{i}, pattern: {json.dumps(json.dumps(pattern))}, targets: [a], "
            f"stop: {str(stop).lower()}}}"
        )
    return "\n".join(lines) + "\n"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern_files(), st.lists(documents, min_size=1, max_size=6))
def test_generated_pattern_sets_match_like_naive(
    scratch: Path, text: str, docs: list[dict[str, Any]]
) -> None:
    scratch.write_text(text, encoding="utf-8")
    try:
        rules = load_rules(scratch, env={})
    except RulesError:
        reject()  # a combination EventBridge rejects too (e.g. an empty $or branch)
    for doc in docs:
        assert outcome(rules, doc) == naive(rules, doc, pattern_test), text
