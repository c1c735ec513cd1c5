"""fanout.rules.jmescompile: the API the rule engine codes against, and the library quirks the
specialised shapes must keep (each checked against jmespath.search, the reference)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jmespath
import pytest
from jmespath import exceptions

from fanout.rules.jmescompile import CompiledExpression, InvalidSliceStepError, compile_expression
from tests.support.jsonsame import same_json

EVENT = {
    "detail-type": "v2.detail.events.conversation.{id}.acw",
    "source": "aws.partner/genesys.com/cloud/org/fanout",
    "detail": {
        "eventBody": {"wrapupCode": "w1", "queueId": "q1", "durationMs": 1500, "n": 1},
        "flags": [True, 1, 0, False, None, 1.0],
    },
}


def _agree(expression: str, data: Any) -> Any:
    result = compile_expression(expression).search(data)
    assert same_json(result, jmespath.search(expression, data)), expression
    return result


def test_api_shape() -> None:
    compiled = compile_expression("detail.eventBody.queueId == 'q1'")
    assert isinstance(compiled, CompiledExpression)
    assert compiled.expression == "detail.eventBody.queueId == 'q1'"
    assert compiled.ast["type"] == "comparator"
    assert compiled.fully_compiled is True
    # search is a plain attribute holding the closure: no bound-method indirection.
    assert compiled.search is compiled.search
    assert compiled.search(EVENT) is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.expression = "x"  # type: ignore[misc]


def test_syntax_errors_are_the_parsers() -> None:
    with pytest.raises(exceptions.ParseError):
        compile_expression("detail.")
    with pytest.raises(exceptions.EmptyExpressionError):
        compile_expression("")


@pytest.mark.parametrize(
    "expression",
    [
        # 0/1 never equal a boolean at the top level ...
        "detail.eventBody.n == `true`",
        "`true` == detail.eventBody.n",
        "detail.flags[0] == `1`",
        "detail.flags[1] == `1.0`",
        "detail.flags[3] != `0`",
        # ... but inside arrays Python equality applies, in the library and here.
        "detail.flags == `[true, 1, 0, false, null, 1.0]`",
        "detail.flags == `[1, true, false, 0, null, 1]`",
        # contains(<literal list>, x) is a set lookup; list membership is Python ==.
        "contains(`[1, 2]`, detail.flags[0])",
        "contains(`[true]`, detail.eventBody.n)",
        "contains(`[0]`, detail.flags[3])",
        'contains(`["w1", "w2"]`, detail.eventBody.wrapupCode)',
        'contains(`["w1"]`, detail.flags)',
        "contains(['w2', 'w1'], detail.eventBody.wrapupCode)",
        "detail.flags[:4][*].contains([`1`, 'x'], @)",
        "contains(`[[true]]`, detail.flags[:1])",
        "contains(`[null]`, detail.missing)",
        "starts_with(source, 'aws.partner/genesys.com')",
        "ends_with(\"detail-type\", '.acw')",
        "detail.eventBody.durationMs > `1000` && detail.eventBody.durationMs <= `1500`",
        "`2000` > detail.eventBody.durationMs",
        "detail.eventBody.queueId >= 'q0'",
        "detail.missing < `1`",
        "detail.eventBody.durationMs < `[1]`",
        "!detail.flags[2]",
        "!detail.flags[3]",
        "detail.flags[?@]",
        "detail.flags[::-2]",
        "detail.eventBody.[queueId, wrapupCode] | sort(@)",
        "values(detail.eventBody)[?type(@) == 'number'] | max(@)",
    ],
)
def test_specialised_shapes_agree_with_library(expression: str) -> None:
    _agree(expression, EVENT)


def test_library_quirks_are_reproduced() -> None:
    assert _agree("contains(`[1]`, `true`)", {}) is True  # list membership is Python ==
    assert _agree("`[1]` == `[true]`", {}) is True
    assert _agree("`1` == `true`", {}) is False
    assert _agree("`0` && 'zero is true'", {}) == "zero is true"


def test_type_errors_are_the_librarys() -> None:
    for expression, error in [
        ("starts_with(detail.eventBody.n, 'a')", exceptions.JMESPathTypeError),
        ("length(detail.eventBody.n)", exceptions.JMESPathTypeError),
        ("length(@, @)", exceptions.ArityError),
        ("not_null()", exceptions.VariadictArityError),
        ("nope(@)", exceptions.UnknownFunctionError),
        # ['a'] is a multiselect: null on a null node, so contains() gets a null subject.
        ("[`null`][*].contains(['a'], @)", exceptions.JMESPathTypeError),
        # Number against string: Python's TypeError, exactly as jmespath.search raises it.
        ("detail.eventBody.n < 'a'", TypeError),
    ]:
        with pytest.raises(error):
            jmespath.search(expression, EVENT)
        compiled = compile_expression(expression)  # errors come at evaluation, as there
        with pytest.raises(error):
            compiled.search(EVENT)


def test_zero_slice_step() -> None:
    compiled = compile_expression("detail.flags[::0]")
    with pytest.raises(InvalidSliceStepError):
        compiled.search(EVENT)
    assert isinstance(InvalidSliceStepError("x"), ValueError)  # what the library raises
    assert _agree("detail.eventBody[::0]", EVENT) is None  # not an array: null, as there


def test_expression_references_outside_functions_use_the_interpreter() -> None:
    compiled = compile_expression("[&a][0]")
    assert compiled.fully_compiled is False
    reference = compiled.search({})
    assert type(reference) is type(jmespath.search("&a", {}))
    # The interpreter's reference still works in a compiled function call.
    fallback = compile_expression("map([&a][0], @)")
    assert fallback.fully_compiled is False
    assert fallback.search([{"a": 1}, {"a": 2}]) == [1, 2]
    direct = compile_expression("sort_by(@, &a)[*].a")
    assert direct.fully_compiled is True
    assert _agree("sort_by(@, &a)[*].a", [{"a": 2}, {"a": 1}]) == [1, 2]
