"""The official JMESPath compliance suite against the compiled evaluator (fanout.rules.jmescompile).

Every case must pass; the same cases must also give what `jmespath.search` gives (the library
is the reference for the compiled evaluator). Bench cases have no expected result: they are
checked against the library only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jmespath
import pytest
from jmespath import exceptions

from fanout.rules.jmescompile import InvalidSliceStepError, compile_expression
from tests.support.jsonsame import same_json

# The suite lives in the repository; tests/data/jmespath-compliance/PROVENANCE.md says where from.
SUITE_DIR = Path(__file__).resolve().parents[2] / "data" / "jmespath-compliance"
SUITE_CASES = 908  # 16 files of jmespath/jmespath.test at commit 53abcc3, bench cases included

# The suite's error kinds and the exception the compiled evaluator must raise for each.
ERROR_KINDS: dict[str, type[Exception]] = {
    "syntax": exceptions.ParseError,
    "invalid-arity": exceptions.ArityError,
    "invalid-type": exceptions.JMESPathTypeError,
    "invalid-value": InvalidSliceStepError,
    "unknown-function": exceptions.UnknownFunctionError,
}


def _load_cases() -> list[Any]:
    params: list[Any] = []
    for path in sorted(SUITE_DIR.glob("*.json")):
        if path.name == "schema.json":
            continue
        for s, suite in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            for c, case in enumerate(suite["cases"]):
                params.append(pytest.param(suite["given"], case, id=f"{path.stem}-{s}-{c}"))
    return params


CASES = _load_cases()


def test_suite_is_complete() -> None:
    assert len(CASES) == SUITE_CASES


def _compiled(expression: str, given: Any) -> Any:
    return compile_expression(expression).search(given)


@pytest.mark.parametrize(("given", "case"), CASES)
def test_compliance_case(given: Any, case: dict[str, Any]) -> None:
    expression = case["expression"]
    if "error" in case:
        expected = ERROR_KINDS[case["error"]]
        with pytest.raises(expected):
            _compiled(expression, given)
        # The library raises the same class (or, for a zero slice step, a bare ValueError,
        # which InvalidSliceStepError subclasses).
        try:
            jmespath.search(expression, given)
        except ValueError as exc:
            library_error: type[Exception] = type(exc)
        else:
            pytest.fail(f"jmespath.search raised no error for {expression!r}")
        with pytest.raises(library_error):
            _compiled(expression, given)
        return
    result = _compiled(expression, given)
    if "result" in case:
        assert same_json(result, case["result"]), (expression, result, case["result"])
    assert same_json(result, jmespath.search(expression, given)), expression
