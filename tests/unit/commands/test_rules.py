"""``fanout rules check`` and ``fanout rules test`` through cli.main (and one real subprocess)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fanout.cli import build_parser, main
from fanout.commands.rules import run_events
from tests.support.docs import reference_hook
from tests.support.samples import dumps, sample, simplified

ROOT = Path(__file__).resolve().parents[3]
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/"

RULES = f"""\
targets:
  a: {{queue_url: "{URL}a"}}
  b: {{queue_url: "{URL}b"}}
  c: {{queue_url: "${{C_QUEUE_URL}}"}}
default_targets: [c]
rules:
  - id: critical
    condition: detail.tags.priority == 'critical'
    targets: [a]
  - id: voice-long
    condition: detail.channel == 'voice' && detail.duration_ms > `120000`
    targets: [b]
    stop: true
  - id: anything
    condition: length(detail.id) > `0`
    targets: [a, b]
"""


def write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- check ---------------------------------------------------------------------------------


def test_check_reports_index_keys_and_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, RULES, "rules.yaml")
    code, out, _ = run(["rules", "check", str(path)], capsys)
    assert code == 0
    assert f"{path}: OK, 3 rules (match: all), 2 indexed, 1 tested on every event" in out
    assert "index: detail.tags.priority == 'critical'" in out
    assert "a key hit is a match" in out
    assert "index: detail.channel == 'voice'" in out
    assert "not indexed: no top-level && term" in out  # length() is not indexable


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, RULES, "rules.yaml")
    code, out, _ = run(["rules", "check", str(path), "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["match"] == "all" and doc["default_targets"] == ["c"]
    by_id = {r["id"]: r for r in doc["rules"]}
    assert by_id["critical"]["complete"] is True
    assert by_id["voice-long"]["indexed"] and not by_id["voice-long"]["complete"]
    assert by_id["voice-long"]["stop"] is True
    assert not by_id["anything"]["indexed"] and by_id["anything"]["reason"]


def test_check_the_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["rules", "check", str(ROOT / "rules.yaml")], capsys)
    assert code == 0 and "rule 'escalation-wrapups'" in out


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            RULES.replace("`120000`", "120000"),
            ["rule 'voice-long'", "JMESPath syntax error at column", "backticks"],
        ),
        (RULES.replace("targets: [b]", "targets: [nope]"), ["rule 'voice-long'", "nope"]),
        (RULES + "  - {id: x\n", ["line ", "column ", "YAML syntax error"]),
    ],
)
def test_check_errors_exit_2_with_file_rule_and_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text, "rules.yaml")
    code, out, err = run(["rules", "check", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"fanout: error: {path}: ")
    for fragment in fragments:
        assert fragment in err


def test_check_resolve_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, RULES, "rules.yaml")
    monkeypatch.delenv("C_QUEUE_URL", raising=False)
    assert run(["rules", "check", str(path)], capsys)[0] == 0  # URLs are not needed to check
    code, _, err = run(["rules", "check", str(path), "--resolve-env"], capsys)
    assert code == 2 and "${C_QUEUE_URL}" in err
    monkeypatch.setenv("C_QUEUE_URL", URL + "c")
    assert run(["rules", "check", str(path), "--resolve-env"], capsys)[0] == 0


def test_check_defaults_to_fanout_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, RULES, "custom.yaml")
    monkeypatch.setenv("FANOUT_RULES", str(path))
    code, out, _ = run(["rules", "check"], capsys)
    assert code == 0 and out.startswith(f"{path}: OK")


# --- test ----------------------------------------------------------------------------------


def test_events_matched_targets_and_first_failing_term(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write(tmp_path, RULES, "rules.yaml")
    long_call = write(tmp_path, dumps(simplified(duration_ms=200_000, event_id="e-1")), "1.json")
    code, out, _ = run(["rules", "test", str(rules), str(long_call)], capsys)
    assert code == 0
    assert f"event e-1 from {long_call}" in out
    assert "matched: voice-long" in out
    assert "targets: b" in out
    assert "not matched: critical: detail.tags.priority == 'critical' -> false" in out
    # voice-long has stop: true, so the last rule was not tested.
    assert "not tested (rule 'voice-long' has stop: true): anything" in out


def test_events_jsonl_from_stdin_and_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = write(tmp_path, RULES, "rules.yaml")
    short = simplified(duration_ms=1000, channel="chat", event_id="e-2")
    short["detail"]["id"] = ""
    critical = simplified("critical", event_id="e-3")
    lines = dumps(short) + "\n\n" + dumps(critical) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, out, _ = run(["rules", "test", "--rules", str(rules), "-", "--json"], capsys)
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 0
    assert first["id"] == "e-2" and first["input"] == "stdin:1"
    assert first["outcome"] == "default" and first["targets"] == ["c"]
    assert first["not_matched"]["voice-long"] == "detail.channel == 'voice' -> false"
    assert first["not_matched"]["anything"] == "length(detail.id) > `0` -> false"
    assert second["input"] == "stdin:3" and second["matched"] == ["critical", "anything"]


def test_events_invalid_and_raising_exit_1_without_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write(tmp_path, RULES, "rules.yaml")
    secret = "555-0100-SECRET"
    raising = simplified(event_id="e-4")
    raising["detail"]["id"] = 12345  # length() of a number raises
    raising["detail"]["tags"]["note"] = secret
    bad = simplified(event_id="e-5")
    bad["detail"]["duration_ms"] = secret
    events = write(tmp_path, dumps(raising) + "\n" + dumps(bad) + "\n", "events.jsonl")
    code, out, _ = run(["rules", "test", str(rules), str(events)], capsys)
    assert code == 1
    # Validation already rejects a numeric detail.id, as the service would.
    assert f"event e-4 from {events}:1: invalid, would go to the DLQ: invalid_detail" in out
    assert f"event e-5 from {events}:2: invalid" in out and "detail.duration_ms" in out
    code, out, _ = run(["rules", "test", str(rules), str(events), "--no-validate"], capsys)
    assert code == 1
    assert "event e-4 from" in out and "rule 'anything' raised, would go to the DLQ" in out
    assert "length() expects string or array or object, got number" in out
    # e-5 without validation: the string duration makes `>` raise a TypeError.
    assert "event e-5 from" in out and "rule 'voice-long' raised" in out
    assert secret not in out and "12345" not in out


def test_events_match_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = write(tmp_path, "match: first\n" + RULES, "rules.yaml")
    event = write(tmp_path, dumps(simplified("critical", event_id="e-6")), "e.json")
    code, out, _ = run(["rules", "test", str(rules), str(event)], capsys)
    assert code == 0
    assert "matched: critical\n" in out
    assert "not tested (match: first): voice-long, anything" in out


def test_events_genesys_sample(capsys: pytest.CaptureFixture[str]) -> None:
    event = sample("conversation_user_end")
    event["detail"]["eventBody"]["interactingDurationMs"] = 700_000
    result = io.StringIO(dumps(event))
    code = run_events(ROOT / "rules.yaml", ["-"], validate=True, as_json=True, stdin=result)
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["matched"] == ["long-voice-calls"]
    assert doc["targets"] == ["supervisors", "quality"]


def test_events_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = write(tmp_path, RULES, "rules.yaml")
    code, _, err = run(["rules", "test", str(rules)], capsys)
    assert code == 2 and "no events given" in err
    code, _, err = run(["rules", "test", str(rules), str(tmp_path / "missing.json")], capsys)
    assert code == 2 and "cannot read events" in err


def test_subprocess_entry_point(tmp_path: Path) -> None:
    rules = write(tmp_path, RULES, "rules.yaml")
    event = dumps(simplified("critical", event_id="e-7"))
    proc = subprocess.run(
        [sys.executable, "-m", "fanout", "rules", "test", str(rules), "-"],
        input=event,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "matched: critical, anything" in proc.stdout


# --- docs ----------------------------------------------------------------------------------


def test_every_rules_flag_is_in_the_cli_reference() -> None:
    sub = build_parser()._subparsers._group_actions[0].choices["rules"]  # type: ignore[union-attr]
    commands = sub._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {"check", "test", "diff"}
    flags = [
        opt
        for command in commands.values()
        for action in command._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    ]
    assert len(flags) >= 4
    reference = reference_hook().cli_reference()
    assert [flag for flag in flags if f"`{flag}" not in reference] == []
    for command in commands:
        assert re.search(rf"^#+ fanout rules {command}$", reference, re.MULTILINE), command
    # The written docs show the tools in use, not only the generated reference.
    docs = "\n".join(page.read_text() for page in (ROOT / "docs").rglob("*.md"))
    assert "fanout rules check" in docs and "fanout rules test" in docs


def test_events_pattern_rules_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = write(
        tmp_path,
        RULES.split("rules:")[0]
        + "rules:\n  - id: pat\n    pattern: {detail: {tags: {priority: [critical]}}}\n"
        "    targets: [a]\n",
        "rules.yaml",
    )
    code, out, _ = run(["rules", "check", str(rules)], capsys)
    assert code == 0 and "rule 'pat' (pattern)" in out and "priority in ['critical']" in out
    event = write(tmp_path, dumps(simplified("normal", event_id="e-8")), "e.json")
    code, out, _ = run(["rules", "test", str(rules), str(event)], capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if "not matched: pat:" in x)
    assert "detail.tags.priority" in line and "normal" not in line  # no event values
