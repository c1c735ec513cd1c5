"""fanout.rules.lint: rules read against the Genesys topic catalog."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fanout.rules import load_rules_unresolved
from fanout.rules.lint import lint_rules, log_warnings

ROOT = Path(__file__).resolve().parents[3]
HEAD = """
targets:
  t: {queue_url: "http://127.0.0.1:9/t"}
rules:
"""
USER_END = "v2.detail.events.conversation.{id}.user.end"
ACD_END = "v2.detail.events.conversation.{id}.acd.end"


def warnings_of(tmp_path: Path, rules: str) -> list[tuple[str, str, str]]:
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + rules)
    return [(w.rule_id, w.message, w.fix) for w in lint_rules(load_rules_unresolved(path))]


JMESPATH = f"""
  - id: misspelled
    targets: [t]
    condition: >-
      "detail-type" == '{USER_END}' && detail.eventBody.interactingDurationMS > `600000`
  - id: wrong-case
    targets: [t]
    condition: "\\"detail-type\\" == '{ACD_END}' && detail.eventBody.acdOutcome == 'Abandon'"
  - id: number-on-string
    targets: [t]
    condition: detail.eventBody.mediaType > `5`
  - id: string-on-number
    targets: [t]
    condition: detail.eventBody.interactingDurationMs == '600000'
  - id: out-of-enum-in-list
    targets: [t]
    condition: contains(['VOICE', 'Chat'], detail.eventBody.mediaType)
"""
PATTERNS = f"""
  - id: misspelled
    targets: [t]
    pattern:
      detail-type: ['{USER_END}']
      detail: {{eventBody: {{interactingDurationMS: [{{numeric: ['>', 600000]}}]}}}}
  - id: wrong-case
    targets: [t]
    pattern:
      detail-type: ['{ACD_END}']
      detail: {{eventBody: {{acdOutcome: ['Abandon']}}}}
  - id: number-on-string
    targets: [t]
    pattern: {{detail: {{eventBody: {{mediaType: [{{numeric: ['>', 5]}}]}}}}}}
  - id: string-on-number
    targets: [t]
    pattern: {{detail: {{eventBody: {{interactingDurationMs: ['600000']}}}}}}
  - id: out-of-enum-in-list
    targets: [t]
    pattern: {{detail: {{eventBody: {{mediaType: ['VOICE', 'Chat']}}}}}}
"""


@pytest.mark.parametrize("rules", [JMESPATH, PATTERNS], ids=["jmespath", "pattern"])
def test_the_lint_catches_each_mistake_in_both_rule_languages(tmp_path: Path, rules: str) -> None:
    found = warnings_of(tmp_path, rules)
    by_rule = {rule: (message, fix) for rule, message, fix in found}
    assert len(found) == 5 and set(by_rule) == {
        "misspelled",
        "wrong-case",
        "number-on-string",
        "string-on-number",
        "out-of-enum-in-list",
    }
    message, fix = by_rule["misspelled"]
    assert message == f"detail.eventBody.interactingDurationMS: not a field of {USER_END}"
    assert fix == "did you mean `interactingDurationMs`?"
    message, fix = by_rule["wrong-case"]
    assert message == "'Abandon': acdOutcome is one of UNKNOWN, ABANDON, ANSWERED, FLOW_OUT"
    assert fix == "write 'ABANDON' (values are case-sensitive)"
    assert by_rule["number-on-string"][0] == (
        "detail.eventBody.mediaType is a string, a numeric comparison never matches"
    )
    assert by_rule["string-on-number"][0] == (
        "detail.eventBody.interactingDurationMs is a number, the string '600000' never equals it"
    )
    assert by_rule["out-of-enum-in-list"][0].startswith(
        "'Chat': mediaType is one of UNKNOWN, VOICE"
    )
    assert by_rule["out-of-enum-in-list"][1] == "write 'CHAT' (values are case-sensitive)"


def test_fields_are_checked_against_the_topics_the_rule_selects(tmp_path: Path) -> None:
    found = warnings_of(
        tmp_path,
        """
  - id: acw-division
    targets: [t]
    condition: >-
      "detail-type" == 'v2.detail.events.conversation.{id}.acw'
      && detail.eventBody.divisionId == 'x'
  - id: nowhere
    targets: [t]
    condition: detail.eventBody.noSuchFieldAnywhere == 'x'
  - id: prefix-selects-all-topics
    targets: [t]
    pattern:
      detail-type: [{prefix: 'v2.audits.'}]
      detail: {eventBody: {status: [FAILURE]}}
""",
    )
    assert [(r, m) for r, m, _ in found] == [
        (
            "acw-division",
            "detail.eventBody.divisionId: not a field of v2.detail.events.conversation.{id}.acw",
        ),
        ("nowhere", "detail.eventBody.noSuchFieldAnywhere: no Genesys topic has it"),
        ("prefix-selects-all-topics", "detail.eventBody.status: no Genesys topic has it"),
    ]
    assert "select a topic that has it" in found[0][2]


def test_valid_rules_raise_no_warning(tmp_path: Path) -> None:
    found = warnings_of(
        tmp_path,
        """
  - id: free-form-map
    targets: [t]
    condition: detail.eventBody.attributes."ivr.intent" == 'billing'
  - id: list-items
    targets: [t]
    condition: >-
      "detail-type" == 'v2.users.{id}.conversations'
      && detail.eventBody.participants[0].purpose == 'agent'
      && length(detail.eventBody.participants[*].userId) > `1`
  - id: audit-sdk-shape
    targets: [t]
    pattern:
      detail-type: ['v2.audits.entitytype.{id}.entityid.{id}']
      detail: {eventBody: {propertyChanges: {property: [name]}, username: {id: [{exists: true}]}}}
  - id: unknown-topic
    targets: [t]
    condition: >-
      "detail-type" == 'v2.some.future.topic' && detail.eventBody.anything == 'x'
  - id: simplified
    targets: [t]
    condition: detail.duration_ms > `1` && detail.channel == 'voice'
""",
    )
    assert found == []


def test_the_shipped_rules_pass() -> None:
    assert lint_rules(load_rules_unresolved(ROOT / "rules.yaml")) == []


def test_log_warnings_logs_each_once_and_keeps_the_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + JMESPATH)
    ruleset = load_rules_unresolved(path)
    with caplog.at_level(logging.WARNING):
        assert log_warnings(ruleset, logging.getLogger("fanout.test")) == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5
    assert lines[0].startswith(f"rules schema check: {path}: rule 'misspelled': ")


async def test_a_reload_logs_the_warnings_once_and_applies_the_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fanout.observability.stats import Stats
    from fanout.reload import RulesChange, RulesReloader
    from fanout.rules import RuleSet

    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + JMESPATH)
    applied: list[RuleSet] = []

    async def apply(new: RuleSet) -> RulesChange:
        applied.append(new)
        return RulesChange(len(new.rules), 1, (), ())

    load = lambda: load_rules_unresolved(path)  # noqa: E731
    reloader = RulesReloader(path, load, apply, Stats(), watch=False, interval=1)
    with caplog.at_level(logging.WARNING, logger="fanout.reload"):
        assert await reloader.reload()
    assert len(applied) == 1  # warnings never refuse rules
    schema = [r for r in caplog.records if "rules schema check" in r.getMessage()]
    assert len(schema) == 5
