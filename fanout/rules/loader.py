"""Loading rules.yaml: safe YAML, the file schema, ``${VAR}`` queue URLs, compiled conditions.

Loading either returns a complete RuleSet or raises RulesError naming the file, the rule or
target, and the fix — so a bad file stops the start before any message is touched.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import jmespath
import yaml
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fanout.aws.urls import is_fifo
from fanout.errors import RulesError
from fanout.rules.index import plan_jmespath, plan_pattern
from fanout.rules.jmescompile import CompiledExpression, compile_expression
from fanout.rules.model import FifoSettings, Rule, RuleSet, Target
from fanout.rules.patterns import EventPattern, PatternError, compile_pattern

# A real rules file is a few KiB; 1 MiB (~9,000 rules) still loads in seconds with the
# pure-Python YAML parser, while 5 MiB took most of a minute.
MAX_RULES_FILE_BYTES = 1024 * 1024
# YAML nodes after alias expansion: bounds a billion-laughs file before anything walks it.
MAX_YAML_NODES = 100_000
# YAML merge keys (`<<: *anchor`) work; anchors may be defined under top-level `x-` keys
# (as in Compose files), which the schema otherwise ignores.
_MERGE_TAG = "tag:yaml.org,2002:merge"
_EXTENSION_PREFIX = "x-"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# --- file schema ---------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FifoSpec(_Spec):
    message_group_id: str | None = None
    deduplication: Literal["event_id", "content"] = "event_id"


class _TargetSpec(_Spec):
    queue_url: str = Field(min_length=1)
    fifo: _FifoSpec | None = None


class _RuleSpec(_Spec):
    id: str = Field(min_length=1)
    description: str = ""
    condition: str | None = Field(default=None, min_length=1)
    pattern: dict[str, Any] | str | None = None
    targets: list[str] = Field(min_length=1)
    stop: bool = False


class _RulesFile(_Spec):
    match: Literal["all", "first"] = "all"
    targets: dict[str, _TargetSpec] = Field(min_length=1)
    default_targets: list[str] = Field(default_factory=list)
    rules: list[_RuleSpec] = Field(default_factory=list)


_ALLOWED_KEYS = {
    "rules": "id, description, condition, targets, stop (or pattern instead of condition)",
    "targets": "queue_url, fifo",
    "fifo": "message_group_id, deduplication",
    "": "match, targets, default_targets, rules, x-<anything> (anchors for `<<: *name`)",
}


# --- loading -------------------------------------------------------------------------------


def load_rules(path: Path | str, env: Mapping[str, str] | None = None) -> RuleSet:
    """Load and compile ``path``; ``env`` resolves ``${VAR}`` queue URLs (default os.environ)."""
    return _load(Path(path), os.environ if env is None else env, resolve_env=True)


def load_rules_unresolved(path: Path | str) -> RuleSet:
    """Load rules without resolving ``${VAR}`` queue URLs; bind them with ``with_queue_urls``."""
    return _load(Path(path), {}, resolve_env=False)


def _load(path: Path, env: Mapping[str, str], *, resolve_env: bool) -> RuleSet:
    raw = _read_yaml(path)
    if isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if not str(k).startswith(_EXTENSION_PREFIX)}
    try:
        spec = _RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise _schema_error(path, raw, exc) from None

    targets: dict[str, Target] = {}
    for name, tspec in spec.targets.items():
        targets[name] = _build_target(path, name, tspec, env, resolve_env)

    def resolve(names: list[str], where: str) -> tuple[Target, ...]:
        for name in names:
            if name not in targets:
                raise RulesError(
                    path,
                    f"unknown target '{name}'",
                    where=where,
                    fix=f"use one of: {', '.join(sorted(targets))}, or add it under targets:",
                )
        return tuple(targets[n] for n in dict.fromkeys(names))

    rules: list[Rule] = []
    seen: set[str] = set()
    for rspec in spec.rules:
        where = f"rule '{rspec.id}'"
        if rspec.id in seen:
            raise RulesError(
                path, "duplicate rule id", where=where, fix="give each rule its own id"
            )
        seen.add(rspec.id)
        compiled: CompiledExpression | EventPattern
        if rspec.condition is not None and rspec.pattern is not None:
            raise RulesError(
                path,
                "has both condition: and pattern:",
                where=where,
                fix="keep one: a JMESPath condition or an EventBridge pattern",
            )
        if rspec.condition is not None:
            condition = rspec.condition
            compiled = compile_condition(path, where, condition)
            plan = plan_jmespath(jmespath.compile(condition).parsed)
        elif rspec.pattern is not None:
            compiled = compile_rule_pattern(path, where, rspec.pattern)
            condition = (
                rspec.pattern
                if isinstance(rspec.pattern, str)
                else json.dumps(rspec.pattern, separators=(",", ":"))
            )
            plan = plan_pattern(compiled.required_terms())
        else:
            raise RulesError(
                path,
                "missing key 'condition'",
                where=where,
                fix="add 'condition:' (JMESPath) or 'pattern:' (an EventBridge event pattern)",
            )
        rules.append(
            Rule(
                id=rspec.id,
                condition=condition,
                targets=resolve(rspec.targets, where),
                description=rspec.description,
                stop=rspec.stop,
                compiled=compiled,
                plan=plan,
            )
        )
    defaults = resolve(spec.default_targets, "default_targets")
    return RuleSet(str(path), spec.match, tuple(rules), targets, defaults)


def _read_yaml(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_RULES_FILE_BYTES:
            raise RulesError(
                path,
                f"file is {size} bytes, more than the {MAX_RULES_FILE_BYTES} allowed",
                fix="split it or remove generated rules",
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(
            path, "file not found", fix="pass --rules PATH or set FANOUT_RULES"
        ) from None
    except UnicodeDecodeError as exc:
        raise RulesError(path, f"cannot read: {exc}", fix="save it as UTF-8 text") from None
    except OSError as exc:
        raise RulesError(
            path, f"cannot read: {exc.strerror or exc}", fix="pass the path of a readable file"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except _TooManyNodes:
        raise RulesError(
            path,
            f"YAML aliases expand to more than {MAX_YAML_NODES} nodes",
            fix="remove the anchors/aliases (&name / *name) that repeat large blocks",
        ) from None
    except RecursionError:
        raise RulesError(
            path, "YAML nested too deeply", fix="a rules file needs a few levels of nesting"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        fix = "check indentation and quoting"
        if "merging" in problem:  # `<<: *x` where x is not a mapping
            fix = "`<<: *name` merges a mapping (or a list of mappings) defined with &name"
        raise RulesError(path, f"YAML syntax error: {problem}", where=where, fix=fix) from None


class _TooManyNodes(Exception):
    pass


def _expanded_nodes(root: yaml.Node) -> int:
    """Node count with every alias expanded, computed without expanding (memoised per node;
    a recursive alias counts as too many)."""
    over = MAX_YAML_NODES + 1
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if children_done:
            visiting.discard(id(node))
            sizes[id(node)] = min(over, 1 + sum(sizes.get(id(c), over) for c in children))
        elif id(node) not in sizes and id(node) not in visiting:
            visiting.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children)
    return sizes[id(root)]


class _StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (YAML would silently keep the last one) and
    files whose aliases expand past MAX_YAML_NODES (billion laughs)."""

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_nodes(node) > MAX_YAML_NODES:
            raise _TooManyNodes
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                # `<<: *anchor`: SafeLoader's flatten_mapping merges it below; keys written
                # next to it override the merged ones (that is the point, not a duplicate).
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _schema_error(path: Path, raw: Any, exc: ValidationError) -> RulesError:
    errors = exc.errors(include_url=False)
    # A misspelt key shows up as "unknown" and "missing": the unknown one is the useful report.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = err["loc"]
    if not isinstance(raw, dict):
        return RulesError(
            path, "expected a mapping with 'targets:' and 'rules:'", fix="see docs/rules/index.md"
        )
    where: str | None = None
    section = ""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        entries = raw.get("rules") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        rule_id = entry.get("id") if isinstance(entry, dict) else None
        where = f"rule '{rule_id}'" if rule_id else f"rules[{loc[1]}]"
        section, key_path = "rules", loc[2:]
    elif len(loc) >= 2 and loc[0] == "targets":
        where = f"target '{loc[1]}'"
        section, key_path = "targets", loc[2:]
        if key_path and key_path[0] == "fifo":
            section, key_path = "fifo", key_path[1:]
    else:
        key_path = loc
    key = ".".join(str(p) for p in key_path) if key_path else (str(loc[-1]) if loc else "file")
    if err["type"] == "extra_forbidden":
        return RulesError(
            path,
            f"unknown key '{key}'",
            where=where,
            fix=f"allowed keys here: {_ALLOWED_KEYS[section]}",
        )
    if err["type"] == "missing":
        return RulesError(path, f"missing key '{key}'", where=where, fix=f"add '{key}:'")
    return RulesError(path, f"{key}: {err['msg']}", where=where, fix="see docs/rules/index.md")


def _build_target(
    path: Path, name: str, spec: _TargetSpec, env: Mapping[str, str], resolve_env: bool
) -> Target:
    where = f"target '{name}'"
    url = spec.queue_url
    if resolve_env:
        for var in _ENV_REF.findall(url):
            if not env.get(var):
                raise RulesError(
                    path,
                    f"queue_url uses ${{{var}}}, which is not set",
                    where=where,
                    fix=f"export {var}=<queue URL>, or run with --local",
                )
        url = _ENV_REF.sub(lambda m: env[m.group(1)], url)
        if not url.startswith(("https://", "http://")):
            raise RulesError(
                path,
                f"queue_url {url!r} is not an SQS queue URL",
                where=where,
                fix="use https://sqs.<region>.amazonaws.com/<account>/<queue>",
            )
    fifo_spec = spec.fifo
    if fifo_spec is None and is_fifo(url):
        fifo_spec = _FifoSpec()
    if fifo_spec is not None and resolve_env and not is_fifo(url):
        raise RulesError(
            path,
            "has fifo settings but its queue URL does not end in .fifo",
            where=where,
            fix="point it at a FIFO queue or remove the fifo: block",
        )
    fifo = None
    if fifo_spec is not None:
        expr = fifo_spec.message_group_id
        fifo = FifoSettings(
            message_group_id=expr,
            deduplication=fifo_spec.deduplication,
            group_expression=compile_condition(path, where, expr) if expr else None,
        )
    return Target(name=name, queue_url=url, fifo=fifo)


def compile_rule_pattern(
    path: Path | str, where: str, source: Mapping[str, Any] | str
) -> EventPattern:
    """Compile an EventBridge event pattern (mapping or JSON text), or raise RulesError."""
    try:
        return compile_pattern(source)
    except PatternError as exc:
        at = f" at {exc.where}" if exc.where else ""
        raise RulesError(
            path, f"invalid event pattern{at}: {exc.problem}", where=where, fix=exc.fix
        ) from None


def compile_condition(path: Path | str, where: str, expression: str) -> CompiledExpression:
    """Compile a JMESPath expression and check its function calls, or raise RulesError."""
    try:
        parsed = jmespath.compile(expression)
    except jmespath_errors.JMESPathError as exc:
        column = getattr(exc, "lex_position", None)
        at = f" at column {column + 1}" if isinstance(column, int) else ""
        token = getattr(exc, "token_value", None)
        problem = f"JMESPath syntax error{at} in {expression!r}"
        if token not in (None, ""):
            problem += f" near {token!r}"
        raise RulesError(path, problem, where=where, fix=_syntax_hint(expression, token)) from None
    _check_functions(path, where, dict(parsed.parsed))
    return compile_expression(expression)


def _syntax_hint(expression: str, token: object) -> str:
    if isinstance(token, (int, float)) and not isinstance(token, bool):
        return f"numbers are JSON literals in backticks: `{token}`"
    if token == "-":  # noqa: S105 - a JMESPath token, not a password
        return 'quote names containing "-", e.g. "detail-type"'
    if '"' in expression and "'" not in expression:
        return "string literals use single quotes: 'critical'; double quotes name fields"
    return "see https://jmespath.org/specification.html"


def _check_functions(path: Path | str, where: str, node: dict[str, Any]) -> None:
    """Unknown functions and wrong arity are load errors, not per-event surprises."""
    if node.get("type") == "function_expression":
        name = node["value"]
        table = Functions.FUNCTION_TABLE
        if name not in table:
            raise RulesError(
                path,
                f"unknown JMESPath function '{name}()'",
                where=where,
                fix=f"use one of: {', '.join(sorted(table))}",
            )
        signature = table[name]["signature"]
        given = len(node["children"])
        variadic = bool(signature) and bool(signature[-1].get("variadic"))
        if (variadic and given < len(signature)) or (not variadic and given != len(signature)):
            expected = f"at least {len(signature)}" if variadic else str(len(signature))
            raise RulesError(
                path,
                f"{name}() takes {expected} argument(s), got {given}",
                where=where,
                fix="see https://jmespath.org/specification.html#built-in-functions",
            )
    for child in node.get("children", ()):
        if isinstance(child, dict):
            _check_functions(path, where, child)
