"""`fanout rules check --strict` exit codes and `fanout topics`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fanout.cli import main

ROOT = Path(__file__).resolve().parents[3]
BAD = """
targets:
  t: {queue_url: "http://127.0.0.1:9/t"}
rules:
  - id: long-calls
    targets: [t]
    condition: >-
      "detail-type" == 'v2.detail.events.conversation.{id}.user.end'
      && detail.eventBody.interactingDurationMS > `600000`
  - id: abandons
    targets: [t]
    pattern:
      detail-type: ['v2.detail.events.conversation.{id}.acd.end']
      detail: {eventBody: {acdOutcome: ['Abandon'], mediaTyp: ['VOICE']}}
"""


@pytest.fixture
def bad_rules(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def test_rules_check_warns_and_strict_exits_1(
    bad_rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", str(bad_rules)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{bad_rules}: 3 warnings, 2 rules")
    assert f"warning: {bad_rules}: rule 'long-calls': detail.eventBody.interactingDurationMS" in err
    assert "did you mean `interactingDurationMs`?" in err
    assert "rule 'abandons': 'Abandon': acdOutcome is one of" in err
    assert "rule 'abandons': detail.eventBody.mediaTyp:" in err and "`mediaType`" in err
    assert main(["rules", "check", "--strict", str(bad_rules)]) == 1
    assert capsys.readouterr().err.count("error: ") == 3


def test_rules_check_json_carries_the_warnings(
    bad_rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", "--json", "--strict", str(bad_rules)]) == 1
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["strict"] is True
    assert [(w["rule"], w["path"]) for w in doc["warnings"]] == [
        ("long-calls", "interactingDurationMS"),
        ("abandons", "acdOutcome"),
        ("abandons", "mediaTyp"),
    ]
    assert doc["warnings"][1]["fix"] == "write 'ABANDON' (values are case-sensitive)"


def test_the_shipped_rules_pass_strict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", "--strict", str(ROOT / "rules.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "rules.yaml: OK, 8 rules" in out and err == ""


def test_topics_list_search_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("40 topics (from purecloudplatformclientv2 269.0.0, MIT")
    assert "v2.users.{id}.routingStatus" in out
    assert main(["topics", "acdOutcome"]) == 0  # a field name finds its topics
    assert (
        capsys.readouterr()
        .out.splitlines()[1]
        .startswith("v2.detail.events.conversation.{id}.acd.end")
    )
    assert main(["topics", "show", "v2.detail.events.conversation.{id}.acd.end"]) == 0
    out = capsys.readouterr().out
    assert "acdOutcome" in out and "one of: UNKNOWN, ABANDON, ANSWERED, FLOW_OUT" in out
    assert main(["topics", "show", "v2.users.0f5b1a4e.presence", "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["pattern"] == "v2.users.{id}.presence"
    assert doc["fields"]["presenceDefinition.systemPresence"]["type"] == "string"
    assert main(["topics", "--json", "audits"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert [t["pattern"] for t in doc["topics"]] == ["v2.audits.entitytype.{id}.entityid.{id}"]
    assert doc["provenance"]["sdk_version"] == "269.0.0"


def test_topics_show_an_unknown_topic_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "show", "v2.nope"]) == 2
    assert "no topic 'v2.nope' in the catalog" in capsys.readouterr().err
    assert main(["topics", "nothing-like-this"]) == 1
