"""``fanout rules check``, ``fanout rules test`` and ``fanout rules diff``: the rule set
explained, offline (``diff --from-dlq`` reads a DLQ, releasing what it read).

``check`` loads and compiles a rules file and shows how the index finds each rule (or why it
is tested on every event). ``test`` runs events through the rule set as the service would and
says, per event, which rules matched, which targets would get a copy and, for every rule that
did not match, the first term that failed. Event field values are never printed (they may hold
personal data): only event ids, rule text from the rules file, and value *types*.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import jmespath
import orjson
from jmespath.parser import ParsedResult

from fanout.errors import ConfigError
from fanout.events import InvalidEvent, parse_event
from fanout.outcomes import DlqReason
from fanout.rules.index import conjunction_terms, render
from fanout.rules.lint import lint_rules
from fanout.rules.loader import load_rules, load_rules_unresolved
from fanout.rules.model import Rule, RuleError, RuleSet, evaluation_error, is_truthy

_RULE_FILE_SUFFIXES = (".yaml", ".yml")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``rules`` command and its ``check`` / ``test`` / ``diff`` subcommands."""
    rules = sub.add_parser("rules", help="check a rules file, or test events against it")
    commands = rules.add_subparsers(dest="rules_command", required=True)
    check = commands.add_parser(
        "check", help="load and compile the rules; show each rule's index keys"
    )
    check.add_argument(
        "rules", nargs="?", type=Path, help="rules file (default: FANOUT_RULES or rules.yaml)"
    )
    check.add_argument(
        "--resolve-env",
        action="store_true",
        help="also require every ${VAR} queue URL to be set, as `fanout run` does",
    )
    check.add_argument("--json", action="store_true", help="one JSON document instead of text")
    check.add_argument(
        "--strict",
        action="store_true",
        help="Genesys schema warnings (unknown eventBody field, out-of-enum value, string/number "
        "mix) are errors: exit 1",
    )
    test = commands.add_parser(
        "test", help="which rules match these events, which targets get them, and why not"
    )
    test.add_argument(
        "paths",
        nargs="+",
        metavar="[RULES] EVENT",
        help="a rules file (*.yaml, optional) then event files: one JSON event per file, or "
        "one per line; - reads stdin",
    )
    test.add_argument("--rules", type=Path, dest="rules_file", help="rules file (any name)")
    test.add_argument(
        "--no-validate",
        action="store_true",
        help="match the raw JSON without the envelope / Genesys checks the service applies",
    )
    test.add_argument("--json", action="store_true", help="one JSON object per event")
    diff = commands.add_parser(
        "diff", help="which events the NEW rules would send to different targets than OLD"
    )
    diff.add_argument("old", type=Path, metavar="OLD", help="the rules file in use")
    diff.add_argument("new", type=Path, metavar="NEW", help="the rules file to compare")
    diff.add_argument(
        "events",
        nargs="*",
        metavar="EVENTS",
        help="event files: one JSON event per file, or one per line; - reads stdin",
    )
    diff.add_argument(
        "--from-dlq",
        metavar="URL",
        help="also the events of this DLQ's records (read, then released: none consumed)",
    )
    diff.add_argument("--endpoint-url", help="for --from-dlq: FANOUT_ENDPOINT_URL")
    diff.add_argument("--region", help="for --from-dlq: FANOUT_REGION")
    diff.add_argument("--limit", type=int, metavar="N", help="--from-dlq: read at most N records")
    diff.add_argument("--json", action="store_true", help="one JSON document")


def main(args: argparse.Namespace) -> int:
    try:
        if args.rules_command == "check":
            return check_rules(
                args.rules, resolve_env=args.resolve_env, as_json=args.json, strict=args.strict
            )
        if args.rules_command == "diff":
            return diff_command(args)
        paths: list[str] = list(args.paths)
        rules_path: Path | None = args.rules_file
        if rules_path is None and paths[0].endswith(_RULE_FILE_SUFFIXES):
            rules_path = Path(paths.pop(0))
        if not paths:
            raise ConfigError("no events given: pass event files, or - to read stdin")
        return run_events(rules_path, paths, validate=not args.no_validate, as_json=args.json)
    except ConfigError as exc:
        print(f"fanout: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _rules_path(path: Path | None) -> Path:
    if path is not None:
        return path
    from fanout.config import load_settings

    return load_settings().rules


# --- check ---------------------------------------------------------------------------------


def check_rules(
    path: Path | None, *, resolve_env: bool = False, as_json: bool = False, strict: bool = False
) -> int:
    """Exit 0; 1 with ``strict`` when the Genesys schema checks warn (fanout.rules.lint)."""
    rules_path = _rules_path(path)
    ruleset = load_rules(rules_path) if resolve_env else load_rules_unresolved(rules_path)
    report = [_rule_report(rule) for rule in ruleset.rules]
    indexed = sum(1 for r in report if r["indexed"])
    warnings = lint_rules(ruleset)
    status = 1 if strict and warnings else 0
    if as_json:
        doc = {
            "file": ruleset.path,
            "match": ruleset.mode,
            "targets": sorted(ruleset.targets),
            "default_targets": [t.name for t in ruleset.default_targets],
            "rules": report,
            "warnings": [w.as_dict() for w in warnings],
            "strict": strict,
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return status
    verdict = "OK" if not warnings else f"{len(warnings)} warnings"
    print(
        f"{ruleset.path}: {verdict}, {len(report)} rules (match: {ruleset.mode}), "
        f"{indexed} indexed, {len(report) - indexed} tested on every event"
    )
    label = "error" if strict else "warning"
    for w in warnings:
        print(f"{label}: {w.render(ruleset.path)}", file=sys.stderr)
    for r in report:
        print(f"rule '{r['id']}' ({r['kind']}) -> {', '.join(r['targets'])}")
        if r["indexed"]:
            for line in r["index"]:
                print(f"    index: {line}")
            if r["complete"]:
                print("    a key hit is a match: the condition itself is not evaluated")
        else:
            print(f"    not indexed: {r['reason']}")
    return status


def _rule_report(rule: Rule) -> dict[str, Any]:
    plan = rule.plan
    return {
        "id": rule.id,
        "kind": rule.kind,
        "targets": [t.name for t in rule.targets],
        "stop": rule.stop,
        "indexed": plan.indexed,
        "index": plan.describe(),
        "complete": plan.complete,
        "reason": plan.reason,
    }


# --- diff ----------------------------------------------------------------------------------


def diff_command(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """Exit 0 when no event would be routed differently, 1 when some would (as diff(1))."""
    from fanout.ops import rulediff

    old = load_rules_unresolved(args.old)
    new = load_rules_unresolved(args.new)
    if not args.events and not args.from_dlq:
        raise ConfigError("no events given: pass event files, - for stdin, or --from-dlq URL")
    bodies = [item.body for item in _read_events(args.events, stdin or sys.stdin)]
    if args.from_dlq:
        bodies.extend(_dlq_bodies(args))
    diff = rulediff.diff_events(old, new, bodies)
    if args.json:
        sys.stdout.write(orjson.dumps(diff, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(rulediff.render(diff))
    return 1 if diff["changed"] else 0


def _dlq_bodies(args: argparse.Namespace) -> list[str]:
    from fanout.aws.client import create_client
    from fanout.commands.common import read_all, run_async
    from fanout.config import load_settings

    settings = load_settings(
        dlq_url=args.from_dlq, endpoint_url=args.endpoint_url, region=args.region
    )

    async def read() -> list[str]:
        async with create_client(settings) as client:
            records = await read_all(
                client, settings, args.from_dlq, limit=args.limit, hold_seconds=60
            )
        return [r.body for r in records]

    return run_async(read())


# --- test ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Input:
    where: str  # file:line, for the report
    body: str


def _read_events(paths: Sequence[str], stdin: TextIO) -> Iterator[_Input]:
    for name in paths:
        if name == "-":
            text, label = stdin.read(), "stdin"
        else:
            try:
                text, label = Path(name).read_text(encoding="utf-8"), name
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{name}: cannot read events: {exc}") from None
        try:
            whole = orjson.loads(text)
        except orjson.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            yield _Input(label, text)
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield _Input(f"{label}:{number}", line)


def run_events(
    path: Path | None,
    events: Sequence[str],
    *,
    validate: bool = True,
    as_json: bool = False,
    stdin: TextIO | None = None,
) -> int:
    ruleset = load_rules_unresolved(_rules_path(path))
    status = 0
    for item in _read_events(events, stdin if stdin is not None else sys.stdin):
        result = explain_event(ruleset, item.body, validate=validate)
        result["input"] = item.where
        if result["outcome"] in ("invalid", "error"):
            status = 1
        if as_json:
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
        else:
            _print_result(result)
    return status


def explain_event(ruleset: RuleSet, body: str, *, validate: bool = True) -> dict[str, Any]:
    """What the service would do with ``body``, and why each rule did or did not match."""
    data: Any
    if validate:
        try:
            event = parse_event(body)
        except InvalidEvent as exc:
            return {"id": _event_id(body), "outcome": "invalid", "reason": exc.reason,
                    "detail": exc.detail}  # fmt: skip
        data, event_id = event.data, event.id
        out: dict[str, Any] = {"id": event_id}
    else:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return {"outcome": "invalid", "reason": DlqReason.INVALID_JSON, "detail": str(exc)}
        raw_id = data.get("id") if isinstance(data, Mapping) else None
        out = {"id": raw_id if isinstance(raw_id, str) else None}
    try:
        match = ruleset.match(data)
    except RuleError as exc:
        rule = next(r for r in ruleset.rules if r.id == exc.rule_id)
        out.update(outcome="error", rule=rule.id, detail=_first_failure(rule, data))
        return out
    out.update(
        outcome="matched" if match.rule_ids else ("default" if match.by_default else "unmatched"),
        matched=list(match.rule_ids),
        targets=[t.name for t in match.targets],
    )
    # Why the others did not match; rules after the one that ended matching were not tested.
    last = match.rule_ids[-1] if match.rule_ids else None
    stopped_by = None
    if last is not None:
        last_rule = next(r for r in ruleset.rules if r.id == last)
        if ruleset.mode == "first" or last_rule.stop:
            stopped_by = last
    failed: dict[str, str] = {}
    skipped: list[str] = []
    stopped = False
    for rule in ruleset.rules:
        if stopped:
            skipped.append(rule.id)
        elif rule.id in match.rule_ids:
            stopped = rule.id == stopped_by
        else:
            failed[rule.id] = _first_failure(rule, data)
    out["not_matched"] = failed
    if stopped_by is not None:
        why = "match: first" if ruleset.mode == "first" else f"rule '{stopped_by}' has stop: true"
        out["not_tested"] = {"because": why, "rules": skipped}
    return out


def _first_failure(rule: Rule, data: Any) -> str:
    """The first top-level && term that is false (or raises), as rule text; never a value."""
    if rule.kind == "pattern":
        explain = getattr(rule.compiled, "explain", None)
        reason = explain(data) if explain is not None else None
        return str(reason) if reason else "the pattern does not match"
    for term in conjunction_terms(_ast(rule.condition)):
        text = render(term)
        try:
            # The library's own interpreter on the sub-tree (its stubs want a TypedDict).
            value = ParsedResult(text, cast(Any, term)).search(data)
        except Exception as exc:  # as RuleSet.match: any failure is the event's
            return f"{text} -> raised: {evaluation_error(exc)}"
        if not is_truthy(value):
            return f"{text} -> {_falsy_name(value)}"
    return "the condition is false"


def _event_id(body: str) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _ast(expression: str) -> Any:
    # The stubs type the AST as a TypedDict; ruleindex reads it as the plain dict it is.
    return jmespath.compile(expression).parsed


def _falsy_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string"
    if isinstance(value, list):
        return "an empty array"
    if isinstance(value, dict):
        return "an empty object"
    return "false"


def _print_result(result: Mapping[str, Any]) -> None:
    head = f"event {result.get('id') or '(no id)'} from {result['input']}"
    outcome = result["outcome"]
    if outcome == "invalid":
        print(f"{head}: invalid, would go to the DLQ: {result['reason']}: {result['detail']}")
        return
    if outcome == "error":
        print(f"{head}: rule '{result['rule']}' raised, would go to the DLQ: {result['detail']}")
        return
    print(head)
    print(f"  matched: {', '.join(result['matched']) or 'no rule'}")
    targets = ", ".join(result["targets"])
    if outcome == "default":
        print(f"  targets: {targets} (default_targets)")
    elif outcome == "unmatched":
        print("  targets: none (deleted and counted as unmatched)")
    else:
        print(f"  targets: {targets}")
    for rule_id, why in result["not_matched"].items():
        print(f"  not matched: {rule_id}: {why}")
    if "not_tested" in result:
        skipped = result["not_tested"]
        if skipped["rules"]:
            print(f"  not tested ({skipped['because']}): {', '.join(skipped['rules'])}")
