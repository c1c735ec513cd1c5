"""Broken rules files stop ``python -m fanout run`` with exit 2, one line, in bounded time.

tests/test_rules.py checks every load error of the core at unit level; this runs each kind
through the real CLI as a user would (a subprocess), plus what can hurt a loader rather than
just confuse it: a billion-laughs YAML bomb, a recursive alias, deep nesting, a 10 MB file.
Rules are loaded before any queue is touched, so no SQS server is needed: the endpoint is a
closed loopback port that nothing may ever reach.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import fanout.rules.loader
from fanout.errors import RulesError
from fanout.rules import load_rules
from fanout.rules.loader import MAX_RULES_FILE_BYTES, MAX_YAML_NODES
from tests.support.harness import run_fanout_cli

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/"
TARGET = f'targets:\n  a: {{queue_url: "{URL}a"}}\n'
TIMEOUT = 60.0  # per run; each must finish well under it
BOUND = 20.0  # seconds: python start-up (~1 s idle) on a shared, noisy 2-core machine


def rule(condition: str = "detail.x == 'y'", rule_id: str = "r1", targets: str = "[a]") -> str:
    return f"  - id: {rule_id}\n    condition: {condition}\n    targets: {targets}\n"


def one_rule(condition: str = "detail.x == 'y'", extra: str = "") -> str:
    return TARGET + "rules:\n" + rule(condition) + extra


def billion_laughs(levels: int = 9) -> str:
    """Each rule's targets is 9 aliases of the previous rule's: 9**(levels+1) strings last."""
    lines = [TARGET, "rules:\n", rule(targets="&l0 [a, a, a, a, a, a, a, a, a]", rule_id="l0")]
    for i in range(1, levels + 1):
        laughs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(rule(rule_id=f"l{i}", targets=f"&l{i} [{laughs}]"))
    return "".join(lines)


def padded(size: int) -> str:
    """A valid rules file padded with a comment to ``size`` bytes."""
    head = one_rule() + "# "
    return head + "x" * (size - len(head) - 1) + "\n"


@dataclass(frozen=True)
class Case:
    id: str
    content: Callable[[], str | bytes | None]  # None: a directory
    where: str | None  # the rule or target the line must name; None: a whole-file problem
    fragments: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


CASES = [
    # A few of the core's error kinds (all of them: tests/test_rules.py), through the CLI.
    Case(
        "duplicate-yaml-key",
        lambda: one_rule() + "    targets: [a]\n",
        "line 7, column 5",
        ("found duplicate key 'targets'",),
    ),
    Case(
        "wrong-arity-nested",
        # Buried in a condition that is otherwise fine: checked at load, not per event.
        lambda: one_rule("detail.x == 'y' && starts_with(detail.queueId) || `false`"),
        "rule 'r1'",
        ("starts_with() takes 2 argument(s), got 1",),
    ),
    Case(
        "unset-env-var",
        lambda: 'targets:\n  crit: {queue_url: "${REL2_UNSET_QUEUE_URL}"}\n',
        "target 'crit'",
        ("${REL2_UNSET_QUEUE_URL}", "not set"),
    ),
    Case(
        "just-over-size-limit",
        lambda: padded(MAX_RULES_FILE_BYTES + 1),
        None,
        (f"file is {MAX_RULES_FILE_BYTES + 1} bytes", f"more than the {MAX_RULES_FILE_BYTES}"),
    ),
    # What attacks the loader itself.
    Case(
        "ten-megabytes",
        lambda: padded(10 * 1000 * 1000),
        None,
        ("file is 10000000 bytes",),
    ),
    Case(
        "billion-laughs",
        billion_laughs,
        None,
        (f"YAML aliases expand to more than {MAX_YAML_NODES} nodes",),
    ),
    Case(
        "recursive-alias",
        lambda: TARGET + "rules:\n" + rule(targets="&loop [a, *loop]"),
        None,
        ("YAML aliases expand",),
    ),
    Case(
        "nested-100000-deep",
        lambda: TARGET + "rules: " + "[" * 100_000 + "]" * 100_000 + "\n",
        None,
        ("YAML nested too deeply",),
    ),
    Case(
        "not-utf8",
        lambda: b"targets:\n  a: {queue_url: '\xff\xfe'}\n",
        None,
        ("cannot read", "UTF-8"),
    ),
    Case("a-directory", lambda: None, None, ("cannot read: Is a directory",)),
    Case("empty-file", lambda: "", None, ("expected a mapping",)),
]


@dataclass(frozen=True)
class Outcome:
    path: Path
    code: int
    stdout: str
    stderr: str
    elapsed: float


async def run_cli(path: Path, env: dict[str, str]) -> Outcome:
    started = time.monotonic()
    code, out, err = await run_fanout_cli(
        "run",
        "--rules",
        str(path),
        "--source-queue-url",
        "http://127.0.0.1:9/source",
        "--endpoint-url",
        "http://127.0.0.1:9",
        env={**os.environ, **env},
        timeout=TIMEOUT,
    )
    return Outcome(path, code, out, err, time.monotonic() - started)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case run once; two at a time (the machine has 2 cores)."""
    root = tmp_path_factory.mktemp("broken-rules")

    async def run_all() -> dict[str, Outcome]:
        gate = asyncio.Semaphore(2)

        async def one(case: Case) -> tuple[str, Outcome]:
            path = root / f"{case.id}.yaml"
            content = case.content()
            if content is None:
                path.mkdir()
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            async with gate:
                return case.id, await run_cli(path, dict(case.env))

        return dict(await asyncio.gather(*(one(c) for c in CASES)))

    return asyncio.run(run_all())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_rules_file_stops_the_start(outcomes: dict[str, Outcome], case: Case) -> None:
    result = outcomes[case.id]
    assert result.code == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()  # one line, nothing else
    prefix = f"fanout: error: {result.path}: "
    assert line.startswith(prefix + (f"{case.where}: " if case.where else "")), line
    assert "(fix: " in line
    for fragment in case.fragments:
        assert fragment in line
    assert result.elapsed < BOUND, f"{case.id} took {result.elapsed:.1f}s"


# --- the loader's protections, in process --------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_aliases_within_the_bound_still_load(tmp_path: Path) -> None:
    # Anchors that share a target list are ordinary YAML: only runaway expansion is refused.
    text = TARGET + "rules:\n" + rule(targets="&both [a]") + rule("x", "r2", targets="*both")
    rules = load_rules(write(tmp_path, text), env={})
    assert [r.id for r in rules.rules] == ["r1", "r2"]
    assert [t.name for t in rules.rules[1].targets] == ["a"]


def test_expansion_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout.rules.loader, "MAX_YAML_NODES", 9**5)
    # 3 levels, 9**4 strings in the last rule: under the bound, so the file reaches the schema
    # check (a rule's targets must be names, not lists); 4 levels, 9**5 strings: refused.
    with pytest.raises(RulesError) as under:
        load_rules(write(tmp_path, billion_laughs(3)), env={})
    assert under.value.where == "rule 'l1'" and "aliases" not in str(under.value)
    with pytest.raises(RulesError, match="YAML aliases expand to more than 59049 nodes"):
        load_rules(write(tmp_path, billion_laughs(4)), env={})


def test_billion_laughs_is_refused_before_it_is_walked(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(RulesError, match="YAML aliases expand"):
        load_rules(write(tmp_path, billion_laughs(12)), env={})  # 9**13 strings if expanded
    assert time.monotonic() - started < BOUND
