"""rules.py: loading, load errors, matching, truthiness and FIFO ids (pure, no SQS)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import jmespath
import pytest

import fanout.rules.loader
from fanout.aws.urls import queue_name
from fanout.errors import ConfigError, RulesError
from fanout.events import parse_event
from fanout.rules import RuleError, RuleSet, load_rules, load_rules_unresolved
from fanout.rules.model import is_truthy
from tests.support.samples import dumps, sample, simplified

SHIPPED = Path(__file__).resolve().parents[3] / "rules.yaml"
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/"
# The variables the original design documents; the shipped file may reference more.
DOCUMENTED_VARS = (
    "CRITICAL_QUEUE_URL",
    "HIGH_QUEUE_URL",
    "STANDARD_QUEUE_URL",
    "SUPERVISORS_QUEUE_URL",
    "QUALITY_QUEUE_URL",
    "WRAPUP_LEDGER_QUEUE_URL",
)
FIFO_VARS = frozenset({"WRAPUP_LEDGER_QUEUE_URL"})
SQS_GROUP_ID = re.compile(r"[!-~]{1,128}")  # alphanumerics and punctuation, at most 128

ABC = f"""\
targets:
  a: {{queue_url: "{URL}a"}}
  b: {{queue_url: "{URL}b"}}
  c: {{queue_url: "{URL}c"}}
"""
FIFO_TARGETS = f"""\
targets:
  ledger: {{queue_url: "{URL}ledger.fifo", fifo: {{message_group_id: detail.conversationId}}}}
  audit: {{queue_url: "{URL}audit.fifo", fifo: {{message_group_id: detail.conversationId}}}}
  bycontent: {{queue_url: "{URL}bycontent.fifo", fifo: {{deduplication: content}}}}
  implicit: {{queue_url: "{URL}implicit.fifo"}}
  plain: {{queue_url: "{URL}plain"}}
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def ruleset(tmp_path: Path, text: str) -> RuleSet:
    return load_rules(write(tmp_path, text), env={})


def names(targets: Any) -> tuple[str, ...]:
    return tuple(t.name for t in targets)


def shipped_env(*, without: str | None = None) -> dict[str, str]:
    """A URL for every ${VAR} the shipped file references (FIFO ones end in .fifo)."""
    refs = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", SHIPPED.read_text()))
    return {
        var: URL + var.lower() + (".fifo" if var in FIFO_VARS else "")
        for var in refs
        if var != without
    }


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(SHIPPED, env=shipped_env())


# --- the shipped rules.yaml ----------------------------------------------------------------


def test_shipped_rules_load_with_every_documented_variable(shipped: RuleSet) -> None:
    assert shipped.mode == "all"
    assert [r.id for r in shipped.rules][:3] == ["critical", "high", "standard"]
    assert shipped.default_targets == ()
    urls = {t.queue_url for t in shipped.targets.values()}
    assert all("${" not in url for url in urls)
    assert {URL + v.lower() + (".fifo" if v in FIFO_VARS else "") for v in DOCUMENTED_VARS} <= urls
    ledger = shipped.targets["wrapup-ledger"]
    assert ledger.fifo is not None
    assert ledger.fifo.message_group_id == "detail.eventBody.conversationId"
    assert [n for n, t in shipped.targets.items() if t.fifo is not None] == ["wrapup-ledger"]


@pytest.mark.parametrize("var", DOCUMENTED_VARS)
def test_shipped_rules_name_an_unset_variable_and_its_target(var: str) -> None:
    unresolved = load_rules_unresolved(SHIPPED)
    target = next(n for n, t in unresolved.targets.items() if t.queue_url == f"${{{var}}}")
    with pytest.raises(RulesError) as info:
        load_rules(SHIPPED, env=shipped_env(without=var))
    assert info.value.where == f"target '{target}'"
    assert f"${{{var}}}" in str(info.value) and f"export {var}=" in str(info.value)


@pytest.mark.parametrize(
    ("event", "rule_ids"),
    [
        pytest.param(simplified("critical", channel="chat"), ("critical",), id="critical"),
        pytest.param(simplified("high", channel="chat"), ("high",), id="high-by-priority"),
        pytest.param(simplified(duration_ms=120_001, channel="chat"), ("high",), id="long"),
        pytest.param(simplified(duration_ms=120_000, channel="chat"), (), id="exactly-2-min"),
        pytest.param(simplified(duration_ms=120_000.5, channel="chat"), ("high",), id="float"),
        pytest.param(simplified(), ("standard",), id="standard"),
        pytest.param(simplified(outcome="abandoned"), (), id="abandoned-voice"),
        pytest.param(
            simplified("critical", duration_ms=200_000),
            ("critical", "high", "standard"),
            id="critical+high+standard",
        ),
    ],
)
def test_shipped_original_design_rules(
    shipped: RuleSet, event: dict[str, Any], rule_ids: tuple[str, ...]
) -> None:
    match = shipped.match(parse_event(dumps(event)).data)
    assert match.rule_ids == rule_ids
    # In the shipped file each of these rules has the target of the same name.
    assert names(match.targets) == rule_ids
    assert match.by_default is False


@pytest.mark.parametrize(
    ("interacting_ms", "targets"),
    [(654_321, ("supervisors", "quality")), (600_000, ())],
)
def test_shipped_long_voice_calls(
    shipped: RuleSet, interacting_ms: int, targets: tuple[str, ...]
) -> None:
    event = sample("conversation_user_end")
    event["detail"]["eventBody"]["interactingDurationMs"] = interacting_ms
    assert names(shipped.match(parse_event(dumps(event)).data).targets) == targets


def test_shipped_wrapup_ledger_groups_by_conversation(shipped: RuleSet) -> None:
    event = sample("conversation_user_end")
    event["detail-type"] = "v2.detail.events.conversation.{id}.wrapup"
    match = shipped.match(event)
    assert names(match.targets) == ("wrapup-ledger",)
    assert match.targets[0].message_group_id(event) == "a7f3c2e1-0b9d-4e8f-8c6a-5d4b3a2f1e0c"


# --- matching ------------------------------------------------------------------------------

ALL_XYZ = {"x": 1, "y": 1, "z": 1}


@pytest.mark.parametrize(
    ("rules", "rule_ids", "targets", "by_default"),
    [
        pytest.param(
            """rules:
  - {id: r3, condition: x, targets: [c]}
  - {id: r1, condition: y, targets: [a]}
  - {id: r2, condition: z, targets: [b]}
""",
            ("r3", "r1", "r2"),
            ("c", "a", "b"),
            False,
            id="all-in-file-order",
        ),
        pytest.param(
            """match: first
rules:
  - {id: r1, condition: missing, targets: [c]}
  - {id: r2, condition: x, targets: [a]}
  - {id: r3, condition: y, targets: [b]}
""",
            ("r2",),
            ("a",),
            False,
            id="first",
        ),
        pytest.param(
            """rules:
  - {id: r1, condition: x, targets: [a]}
  - {id: r2, condition: y, targets: [b], stop: true}
  - {id: r3, condition: z, targets: [c]}
""",
            ("r1", "r2"),
            ("a", "b"),
            False,
            id="stop-ends-all",
        ),
        pytest.param(
            """rules:
  - {id: r1, condition: missing, targets: [a], stop: true}
  - {id: r2, condition: y, targets: [b]}
""",
            ("r2",),
            ("b",),
            False,
            id="stop-only-when-matched",
        ),
        pytest.param(
            """rules:
  - {id: r1, condition: x, targets: [b, a, b]}
  - {id: r2, condition: y, targets: [a, c]}
  - {id: r3, condition: z, targets: [c]}
""",
            ("r1", "r2", "r3"),
            ("b", "a", "c"),
            False,
            id="each-target-once",
        ),
        pytest.param(
            """default_targets: [c, a]
rules:
  - {id: r1, condition: missing, targets: [b]}
""",
            (),
            ("c", "a"),
            True,
            id="defaults-when-unmatched",
        ),
        pytest.param(
            """default_targets: [c]
rules:
  - {id: r1, condition: x, targets: [b]}
""",
            ("r1",),
            ("b",),
            False,
            id="defaults-unused-when-matched",
        ),
        pytest.param(
            """rules:
  - {id: r1, condition: missing, targets: [b]}
""",
            (),
            (),
            False,
            id="no-defaults",
        ),
    ],
)
def test_match(
    tmp_path: Path,
    rules: str,
    rule_ids: tuple[str, ...],
    targets: tuple[str, ...],
    by_default: bool,
) -> None:
    match = ruleset(tmp_path, ABC + rules).match(ALL_XYZ)
    assert match.rule_ids == rule_ids
    assert names(match.targets) == targets
    assert match.by_default is by_default


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (0, True),
        (0.0, True),
        (-1, True),
        (True, True),
        ("x", True),
        (" ", True),
        ([0], True),
        ({"k": None}, True),
        ("", False),
        ([], False),
        ({}, False),
        (None, False),
        (False, False),
    ],
)
def test_truthiness(tmp_path: Path, value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy
    # jmespath's own truthiness (a filter keeps truthy elements) agrees.
    assert jmespath.search("[?@]", [value]) == ([value] if truthy else [])
    rules = ruleset(tmp_path, ABC + "rules:\n  - {id: v, condition: detail.v, targets: [a]}\n")
    assert rules.match({"detail": {"v": value}}).rule_ids == (("v",) if truthy else ())


def test_condition_that_raises_names_the_rule(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        ABC
        + """rules:
  - {id: fine, condition: x, targets: [a]}
  - {id: typed, condition: "contains(detail.n, 'x')", targets: [b]}
""",
    )
    assert rules.match({"x": 1, "detail": {"n": "xyz"}}).rule_ids == ("fine", "typed")
    with pytest.raises(RuleError) as info:
        rules.match({"x": 1, "detail": {"n": 5}})
    assert info.value.rule_id == "typed"
    assert str(info.value).startswith("rule 'typed': ")
    assert "contains" in str(info.value)


# --- FIFO targets ----------------------------------------------------------------------------

LONG = "g" * 129


@pytest.mark.parametrize(
    ("value", "group"),
    [
        ("conv-1", "conv-1"),
        (42, "42"),
        (0, "0"),
        ("g" * 128, "g" * 128),
        (LONG, hashlib.sha256(LONG.encode()).hexdigest()),
        (None, "ledger"),
        ("", "ledger"),
        ({"a": 1}, "ledger"),
        (["a"], "ledger"),
        (True, "ledger"),
    ],
)
def test_message_group_id(tmp_path: Path, value: Any, group: str) -> None:
    ledger = ruleset(tmp_path, FIFO_TARGETS).targets["ledger"]
    assert ledger.message_group_id({"detail": {"conversationId": value}}) == group
    assert SQS_GROUP_ID.fullmatch(group)


def test_message_group_id_falls_back_when_field_missing_or_not_configured(tmp_path: Path) -> None:
    targets = ruleset(tmp_path, FIFO_TARGETS).targets
    assert targets["ledger"].message_group_id({"detail": {}}) == "ledger"
    assert targets["implicit"].message_group_id({"detail": {"conversationId": "c"}}) == "implicit"


@pytest.mark.parametrize("value", ["conv 1", "cönv-1"])
def test_message_group_id_is_always_valid_for_sqs(tmp_path: Path, value: str) -> None:
    ledger = ruleset(tmp_path, FIFO_TARGETS).targets["ledger"]
    assert SQS_GROUP_ID.fullmatch(ledger.message_group_id({"detail": {"conversationId": value}}))


def test_fifo_settings(tmp_path: Path) -> None:
    targets = ruleset(tmp_path, FIFO_TARGETS).targets
    ledger, audit = targets["ledger"], targets["audit"]
    first = ledger.deduplication_id("evt-1")
    assert first is not None and re.fullmatch(r"[0-9a-f]{64}", first)
    assert ledger.deduplication_id("evt-1") == first  # deterministic: redelivery is deduplicated
    assert ledger.deduplication_id("evt-2") != first
    assert audit.deduplication_id("evt-1") not in (None, first)  # one copy per target
    assert targets["bycontent"].deduplication_id("evt-1") is None
    implicit = targets["implicit"].fifo
    assert implicit is not None and implicit.deduplication == "event_id"
    assert targets["plain"].fifo is None
    assert queue_name(ledger.queue_url) == "ledger.fifo"


# --- unresolved rules and rebinding ------------------------------------------------------------

UNRESOLVED = """\
targets:
  a: {queue_url: "${A_URL}"}
  ledger: {queue_url: "${LEDGER_URL}", fifo: {message_group_id: detail.conversationId}}
default_targets: [a]
rules:
  - {id: r1, condition: x, targets: [a, ledger]}
"""


def test_unresolved_rules_keep_variables_and_rebind(tmp_path: Path) -> None:
    path = write(tmp_path, UNRESOLVED)
    with pytest.raises(RulesError):
        load_rules(path, env={})
    rules = load_rules_unresolved(path)
    assert rules.targets["a"].queue_url == "${A_URL}"
    assert rules.targets["ledger"].queue_url == "${LEDGER_URL}"
    local = "http://127.0.0.1:5000/000000000000/a"
    bound = rules.with_queue_urls({"a": local})
    assert rules.targets["a"].queue_url == "${A_URL}"  # the original is not modified
    assert bound.targets["a"].queue_url == local
    assert bound.targets["ledger"].queue_url == "${LEDGER_URL}"  # not in the mapping
    assert bound.rules[0].targets[0] is bound.targets["a"]
    assert bound.default_targets == (bound.targets["a"],)
    match = bound.match({"x": 1, "detail": {"conversationId": "c9"}})
    assert [t.queue_url for t in match.targets] == [local, "${LEDGER_URL}"]
    assert match.targets[1].message_group_id({"detail": {"conversationId": "c9"}}) == "c9"
    assert bound.match({}).targets == (bound.targets["a"],)


def test_load_rules_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, UNRESOLVED)
    monkeypatch.setenv("A_URL", URL + "from-env")
    monkeypatch.setenv("LEDGER_URL", URL + "from-env.fifo")
    assert load_rules(path).targets["a"].queue_url == URL + "from-env"


# --- load errors -------------------------------------------------------------------------------

A = f'targets:\n  a: {{queue_url: "{URL}a"}}\n'


def one_rule(condition: str = "x", extra: str = "", rule_id: str = "r1") -> str:
    return A + f"rules:\n  - id: {rule_id}\n    condition: {condition}\n    targets: [a]\n{extra}"


def load_error(path: Path, env: dict[str, str] | None = None) -> RulesError:
    with pytest.raises(RulesError) as info:
        load_rules(path, env=env or {})
    err = info.value
    assert isinstance(err, ConfigError) and err.exit_code == 2
    assert str(err).startswith(f"{path}: ")
    return err


@pytest.mark.parametrize(
    ("text", "env", "where", "fragments"),
    [
        pytest.param(
            f'targets:\n  a: {{queue_url: "{URL}a"\nrules: []\n',
            {},
            "line 3, column 1",
            ["YAML syntax error"],
            id="yaml-syntax",
        ),
        pytest.param(
            one_rule(extra="    priority: 1\n"),
            {},
            "rule 'r1'",
            ["unknown key 'priority'", "id, description, condition, targets, stop"],
            id="unknown-rule-key",
        ),
        pytest.param(
            A + "rulez: []\n",
            {},
            None,
            ["unknown key 'rulez'", "match, targets, default_targets, rules"],
            id="unknown-top-level-key",
        ),
        pytest.param(
            f'targets:\n  a: {{url: "{URL}a", queue_url: "{URL}a"}}\n',
            {},
            "target 'a'",
            ["unknown key 'url'", "queue_url, fifo"],
            id="unknown-target-key",
        ),
        pytest.param(
            f'targets:\n  a: {{queue_url: "{URL}a.fifo", fifo: {{group: x}}}}\n',
            {},
            "target 'a'",
            ["unknown key 'group'", "message_group_id, deduplication"],
            id="unknown-fifo-key",
        ),
        pytest.param(
            A + "rules:\n  - id: r1\n    targets: [a]\n",
            {},
            "rule 'r1'",
            ["missing key 'condition'", "add 'condition:'"],
            id="missing-condition",
        ),
        pytest.param(
            A + "rules:\n  - condition: x\n    targets: [a]\n",
            {},
            "rules[0]",
            ["missing key 'id'"],
            id="missing-id",
        ),
        pytest.param(
            one_rule("detail.duration_ms > 120000"),
            {},
            "rule 'r1'",
            ["JMESPath syntax error", "'detail.duration_ms > 120000'", "backticks: `120000`"],
            id="number-without-backticks",
        ),
        pytest.param(
            one_rule("detail-type == 'x'"),
            {},
            "rule 'r1'",
            ["JMESPath syntax error", 'quote names containing "-"', '"detail-type"'],
            id="unquoted-hyphen",
        ),
        pytest.param(
            one_rule().replace("[a]", "[a, nope]"),
            {},
            "rule 'r1'",
            ["unknown target 'nope'", "use one of: a"],
            id="unknown-target",
        ),
        pytest.param(
            A + "default_targets: [nope]\n",
            {},
            "default_targets",
            ["unknown target 'nope'"],
            id="unknown-default-target",
        ),
        pytest.param(
            'targets:\n  crit: {queue_url: "${CRIT_URL}"}\n',
            {"OTHER_URL": URL + "other"},
            "target 'crit'",
            ["${CRIT_URL}", "not set", "export CRIT_URL="],
            id="unset-env-var",
        ),
        pytest.param(
            'targets:\n  crit: {queue_url: "${CRIT_URL}"}\n',
            {"CRIT_URL": ""},
            "target 'crit'",
            ["${CRIT_URL}", "not set"],
            id="empty-env-var",
        ),
        pytest.param(
            'targets:\n  crit: {queue_url: "${CRIT_URL}"}\n',
            {"CRIT_URL": "critical-queue"},
            "target 'crit'",
            ["'critical-queue' is not an SQS queue URL", "https://sqs."],
            id="not-a-url",
        ),
        pytest.param(
            one_rule() + "  - {id: r1, condition: y, targets: [a]}\n",
            {},
            "rule 'r1'",
            ["duplicate rule id"],
            id="duplicate-rule-id",
        ),
        pytest.param(
            one_rule("lenght(detail.tags) > `0`"),
            {},
            "rule 'r1'",
            ["unknown JMESPath function 'lenght()'", "length"],
            id="unknown-function",
        ),
        pytest.param(
            one_rule("length(a, b)"),
            {},
            "rule 'r1'",
            ["length() takes 1 argument(s), got 2"],
            id="wrong-arity",
        ),
        pytest.param(
            one_rule("not_null()"),
            {},
            "rule 'r1'",
            ["not_null() takes at least 1 argument(s), got 0"],
            id="variadic-arity",
        ),
        pytest.param(
            f'targets:\n  a: {{queue_url: "{URL}a", fifo: {{message_group_id: x}}}}\n',
            {},
            "target 'a'",
            ["does not end in .fifo", "remove the fifo: block"],
            id="fifo-on-standard-queue",
        ),
        pytest.param(
            f'targets:\n  a: {{queue_url: "{URL}a.fifo", fifo: {{message_group_id: "f(x)"}}}}\n',
            {},
            "target 'a'",
            ["unknown JMESPath function 'f()'"],
            id="bad-group-expression",
        ),
        pytest.param(
            "- id: r1\n  condition: x\n",
            {},
            None,
            ["expected a mapping with 'targets:' and 'rules:'"],
            id="top-level-list",
        ),
        pytest.param("", {}, None, ["expected a mapping"], id="empty-file"),
        pytest.param(
            one_rule() + "    targets: [a]\n",
            {},
            "line 7, column 5",
            ["found duplicate key 'targets'"],
            id="duplicate-yaml-key",
        ),
    ],
)
def test_load_error(
    tmp_path: Path, text: str, env: dict[str, str], where: str | None, fragments: list[str]
) -> None:
    err = load_error(write(tmp_path, text), env)
    assert err.where == where
    if where is not None:
        assert str(err).startswith(f"{tmp_path / 'rules.yaml'}: {where}: ")
    assert err.fix and str(err).endswith(f"(fix: {err.fix})")
    for fragment in fragments:
        assert fragment in str(err)


def test_misspelt_key_is_reported_as_unknown(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, A + "rules:\n  - id: r1\n    conditon: x\n    targets: [a]\n"))
    assert err.where == "rule 'r1'"
    assert "unknown key 'conditon'" in str(err)
    assert "id, description, condition, targets, stop" in str(err)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(A + "match: any\n", id="match"),
        pytest.param(one_rule(extra="    stop: maybe\n"), id="stop"),
        pytest.param(
            f'targets:\n  a: {{queue_url: "{URL}a.fifo", fifo: {{deduplication: hash}}}}\n',
            id="deduplication",
        ),
    ],
)
def test_value_errors_have_a_fix(tmp_path: Path, text: str) -> None:
    assert load_error(write(tmp_path, text)).fix


def test_file_not_found(tmp_path: Path) -> None:
    err = load_error(tmp_path / "rules.yaml")
    assert "file not found" in str(err) and "--rules" in err.fix


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = one_rule()
    monkeypatch.setattr(fanout.rules.loader, "MAX_RULES_FILE_BYTES", len(text.encode()))
    assert load_rules(write(tmp_path, text), env={}).rules[0].id == "r1"  # exactly at the limit
    err = load_error(write(tmp_path, text + "#"))
    assert f"more than the {len(text.encode())} allowed" in str(err)


# --- pattern: rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        '{detail: {tags: {priority: [critical, {prefix: "hi"}]}}}',
        """'{"detail": {"tags": {"priority": ["critical", {"prefix": "hi"}]}}}'""",
    ],
    ids=["yaml-mapping", "json-string"],
)
def test_pattern_rules_match(tmp_path: Path, pattern: str) -> None:
    rules = ruleset(
        tmp_path,
        ABC + f"rules:\n  - {{id: p, pattern: {pattern}, targets: [a]}}\n"
        "  - {id: j, condition: detail.tags.priority == 'critical', targets: [b]}\n",
    )
    assert rules.rules[0].kind == "pattern" and rules.rules[1].kind == "jmespath"
    assert rules.rules[0].plan.indexed
    assert rules.match(simplified("critical")).rule_ids == ("p", "j")
    assert rules.match(simplified("high")).rule_ids == ("p",)
    assert rules.match(simplified("normal")).rule_ids == ()


@pytest.mark.parametrize(
    ("rule", "fragments"),
    [
        (
            '{id: r1, pattern: {detail: {n: [{numeric: [">", x]}]}}, targets: [a]}',
            ["invalid event pattern at detail.n[0].numeric[1]", "must be a number"],
        ),
        ("{id: r1, pattern: '{not json', targets: [a]}", ["not valid JSON"]),
        (
            "{id: r1, condition: x, pattern: {a: [1]}, targets: [a]}",
            ["has both condition: and pattern:", "keep one"],
        ),
        ("{id: r1, targets: [a]}", ["missing key 'condition'", "or 'pattern:'"]),
    ],
)
def test_pattern_load_errors(tmp_path: Path, rule: str, fragments: list[str]) -> None:
    err = load_error(write(tmp_path, A + f"rules:\n  - {rule}\n"))
    assert err.where == "rule 'r1'" and err.fix
    for fragment in fragments:
        assert fragment in str(err)


MERGE_RULES = """
x-defaults:
  fifo: &fifo {message_group_id: detail.id, deduplication: content}
  voice: &voice
    condition: detail.channel == 'voice'
    targets: [standard]
targets:
  standard: {queue_url: "http://127.0.0.1:9/standard"}
  ledger:
    queue_url: "http://127.0.0.1:9/ledger.fifo"
    fifo:
      <<: *fifo
      deduplication: event_id
rules:
  - <<: *voice
    id: voice
  - <<: *voice
    id: voice-critical
    condition: detail.tags.priority == 'critical'
    targets: [standard, ledger]
"""


def test_yaml_merge_keys_work_and_explicit_keys_override(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, MERGE_RULES)
    assert [r.id for r in rules.rules] == ["voice", "voice-critical"]
    voice, critical = rules.rules
    assert voice.condition == "detail.channel == 'voice'"
    assert names(voice.targets) == ("standard",)
    assert critical.condition == "detail.tags.priority == 'critical'"
    assert names(critical.targets) == ("standard", "ledger")
    fifo = rules.targets["ledger"].fifo
    assert fifo is not None
    assert (fifo.message_group_id, fifo.deduplication) == ("detail.id", "event_id")


def test_yaml_merge_of_a_non_mapping_is_one_clear_line(tmp_path: Path) -> None:
    text = MERGE_RULES.replace("  - <<: *voice\n    id: voice\n", "  - <<: [1, 2]\n    id: voice\n")
    with pytest.raises(RulesError) as caught:
        ruleset(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    assert "merging" in message and "line 15" in message
    assert "`<<: *name` merges a mapping" in message


def test_duplicate_keys_next_to_a_merge_are_still_refused(tmp_path: Path) -> None:
    text = MERGE_RULES.replace("    id: voice\n", "    id: voice\n    id: again\n", 1)
    with pytest.raises(RulesError, match="duplicate key 'id'"):
        ruleset(tmp_path, text)


def test_only_x_prefixed_top_level_keys_are_ignored(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="unknown key 'defaults'"):
        ruleset(tmp_path, MERGE_RULES.replace("x-defaults:", "defaults:"))
