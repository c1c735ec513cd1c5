"""rulediff.py and ``fanout rules diff``: reroutes grouped by change, no event values."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from fanout.cli import build_parser
from fanout.commands import rules as rules_cli
from fanout.ops.rulediff import NONE, diff_events, render
from fanout.rules.loader import load_rules_unresolved
from tests.support.harness import dumps, simplified

OLD = """
targets:
  high: {queue_url: "http://q/high"}
  critical: {queue_url: "http://q/critical"}
  standard: {queue_url: "http://q/standard"}
rules:
  - id: high
    condition: detail.duration_ms > `120000`
    targets: [high]
  - id: standard
    condition: detail.channel == 'voice'
    targets: [standard]
"""
# Long calls escalate to critical; voice now also needs outcome completed; a rule that raises.
NEW = """
targets:
  high: {queue_url: "http://q/high"}
  critical: {queue_url: "http://q/critical"}
  standard: {queue_url: "http://q/standard"}
rules:
  - id: escalate
    condition: detail.duration_ms > `120000`
    targets: [critical]
  - id: standard
    condition: detail.channel == 'voice' && detail.outcome == 'completed'
    targets: [standard]
  - id: broken
    condition: starts_with(detail.outcome, 'x') && abs(detail.channel) > `1`
    targets: [high]
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    return old, new


def events() -> list[str]:
    long_chat = [simplified(channel="chat", duration_ms=200_000) for _ in range(3)]
    missed = simplified(channel="voice", outcome="missed")
    missed["detail"]["ani"] = "+4915112345678"
    same = [simplified(channel="voice") for _ in range(2)]
    raises = simplified(channel="chat", outcome="xfer")
    return [dumps(e) for e in [*long_chat, missed, *same, raises]] + ["{bad"]


def test_groups_reroutes_by_change(files: tuple[Path, Path]) -> None:
    old, new = (load_rules_unresolved(p) for p in files)
    diff = diff_events(old, new, events())
    assert (diff["events"], diff["changed"], diff["unchanged"]) == (8, 5, 2)
    assert diff["invalid"] == {"invalid_json": 1}
    changes = {(c["from"], c["to"]): c for c in diff["changes"]}
    assert changes["high", "critical"]["events"] == 3
    assert changes["high", "critical"]["old_rules"] == {"high": 3}
    assert changes["high", "critical"]["new_rules"] == {"escalate": 3}
    assert changes["standard", NONE]["events"] == 1
    [(_, to)] = [k for k in changes if k[0] == NONE]
    assert "rule_error" in to and "broken" in to
    assert diff["changes"][0]["from"] == "high"  # largest group first
    text = render(diff)
    assert "high -> critical: 3 events" in text
    assert "+4915112345678" not in text + orjson.dumps(diff).decode()


def test_the_command_reads_files_and_stdin(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = events()
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("\n".join(lines[:4]) + "\n")
    single = tmp_path / "one.json"
    single.write_text(orjson.dumps(orjson.loads(lines[4]), option=orjson.OPT_INDENT_2).decode())
    old, new = files
    args = build_parser().parse_args(
        ["rules", "diff", str(old), str(new), str(jsonl), str(single), "-", "--json"]
    )
    code = rules_cli.diff_command(args, stdin=io.StringIO("\n".join(lines[5:])))
    assert code == 1  # some events would be routed differently
    diff = orjson.loads(capsys.readouterr().out)
    assert diff["events"] == 8 and diff["changed"] == 5
    # The same rules on both sides: nothing changes, exit 0.
    args = build_parser().parse_args(["rules", "diff", str(old), str(old), str(jsonl)])
    assert rules_cli.diff_command(args) == 0
    assert "0 routed differently" in capsys.readouterr().out


def test_no_events_is_one_line(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = files
    assert rules_cli.main(build_parser().parse_args(["rules", "diff", str(old), str(new)])) == 2
    assert capsys.readouterr().err.startswith("fanout: error: no events given")


def test_every_dlq_flag_is_explained_on_the_dlq_page() -> None:
    """The CLI reference lists every flag (generated); the operations page must also say what
    each does."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "operations" / "dlq.md").read_text()
    dlq = build_parser()._subparsers._group_actions[0].choices["dlq"]  # type: ignore[union-attr]
    commands = dlq._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {"inspect", "redrive"}
    flags = {
        opt
        for command in commands.values()
        for action in command._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }
    assert len(flags) >= 15
    assert sorted(flag for flag in flags if f"`{flag}" not in page) == []
    assert "## `fanout dlq inspect`" in page and "## `fanout dlq redrive`" in page
