"""The compiled rule model (pure): targets, rules, the rule set and its ``match``.

A rule gives either a JMESPath ``condition:`` (compiled by fanout.rules.jmescompile) or an
EventBridge ``pattern:`` (fanout.rules.patterns). Matching goes through a discriminating index
(fanout.rules.index) that only skips rules which cannot match, so results are those of testing
every rule in file order.

"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jmespath import exceptions as jmespath_errors

from fanout.aws.limits import FIFO_ID
from fanout.rules.index import RuleIndex, RulePlan
from fanout.rules.jmescompile import CompiledExpression
from fanout.rules.patterns import EventPattern, value_key

# --- compiled model ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FifoSettings:
    message_group_id: str | None
    deduplication: Literal["event_id", "content"]
    group_expression: CompiledExpression | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    queue_url: str
    fifo: FifoSettings | None = None

    def message_group_id(self, data: Mapping[str, Any], source_group: str | None = None) -> str:
        """FIFO group from the configured expression; when there is none or it yields nothing,
        the source message's own group (a FIFO source queue), else the target name."""
        assert self.fifo is not None
        expr = self.fifo.group_expression
        value = expr.search(data) if expr is not None else None
        if value is None or value == "" or isinstance(value, (dict, list, bool)):
            return fifo_safe_id(source_group or self.name)
        return fifo_safe_id(str(value))

    def deduplication_id(self, event_id: str) -> str | None:
        """Deterministic per (event, target): a redelivered event is not duplicated in FIFO."""
        assert self.fifo is not None
        if self.fifo.deduplication == "content":
            return None
        return hashlib.sha256(f"{event_id}\x00{self.name}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. ``condition`` is the JMESPath text, or for a pattern rule the pattern as JSON."""

    id: str
    condition: str
    targets: tuple[Target, ...]
    description: str = ""
    stop: bool = False
    compiled: CompiledExpression | EventPattern | None = field(
        default=None, compare=False, repr=False
    )
    plan: RulePlan = field(default_factory=lambda: RulePlan("jmespath"), compare=False, repr=False)

    @property
    def kind(self) -> Literal["jmespath", "pattern"]:
        return "pattern" if isinstance(self.compiled, EventPattern) else "jmespath"

    def test(self) -> Callable[[Mapping[str, Any]], bool]:
        """The compiled predicate: True when the rule matches the event."""
        compiled = self.compiled
        if isinstance(compiled, EventPattern):
            return compiled.matches
        if compiled is None:
            raise ValueError(f"rule '{self.id}' was not compiled")
        search = compiled.search
        return lambda data: is_truthy(search(data))


@dataclass(frozen=True, slots=True)
class Match:
    rule_ids: tuple[str, ...]
    targets: tuple[Target, ...]
    by_default: bool = False


class RuleError(Exception):
    """A condition raised while evaluating an event (e.g. a function got the wrong type)."""

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(f"rule '{rule_id}': {message}")
        self.rule_id = rule_id


@dataclass(frozen=True)
class RuleSet:
    path: str
    mode: Literal["all", "first"]
    rules: tuple[Rule, ...]
    targets: Mapping[str, Target]
    default_targets: tuple[Target, ...] = ()
    index: RuleIndex = field(init=False, compare=False, repr=False)
    # None: the index key is the whole condition, a candidate is a match.
    _tests: tuple[Callable[[Mapping[str, Any]], bool] | None, ...] = field(
        init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        plans = [r.plan for r in self.rules]
        object.__setattr__(self, "index", RuleIndex(plans, pattern_key=value_key))
        tests = tuple(None if r.plan.complete else r.test() for r in self.rules)
        object.__setattr__(self, "_tests", tests)

    def match(self, data: Mapping[str, Any]) -> Match:
        """Rules in file order; ``first`` stops at the first match, ``stop`` ends ``all``.

        Only the index's candidates are tested: the others cannot match (nor raise).
        """
        matched: list[str] = []
        targets: dict[str, Target] = {}
        rules = self.rules
        tests = self._tests
        first = self.mode == "first"
        mask = self.index.candidates(data)
        while mask:
            low = mask & -mask
            mask ^= low
            i = low.bit_length() - 1
            test = tests[i]
            if test is not None:
                try:
                    hit = test(data)
                except Exception as exc:  # any failure is this event's, not the service's
                    raise RuleError(rules[i].id, evaluation_error(exc)) from None
                if not hit:
                    continue
            rule = rules[i]
            matched.append(rule.id)
            for target in rule.targets:
                targets.setdefault(target.name, target)
            if rule.stop or first:
                break
        if not matched:
            return Match((), self.default_targets, by_default=bool(self.default_targets))
        return Match(tuple(matched), tuple(targets.values()))

    def with_queue_urls(self, urls: Mapping[str, str]) -> RuleSet:
        """The same rules pointing at other queues (the embedded local run's own queues)."""
        targets = {
            name: Target(name, urls.get(name, t.queue_url), t.fifo)
            for name, t in self.targets.items()
        }

        def rebind(items: tuple[Target, ...]) -> tuple[Target, ...]:
            return tuple(targets[t.name] for t in items)

        rules = tuple(
            Rule(r.id, r.condition, rebind(r.targets), r.description, r.stop, r.compiled, r.plan)
            for r in self.rules
        )
        return RuleSet(self.path, self.mode, rules, targets, rebind(self.default_targets))


def evaluation_error(exc: Exception) -> str:
    """Why a condition failed, without the event's values: they may be phone numbers."""
    if isinstance(exc, jmespath_errors.JMESPathTypeError):
        # Its str() quotes the offending value; keep only the types.
        expected = " or ".join(exc.expected_types)
        return f"{exc.function_name}() expects {expected}, got {exc.actual_type}"
    if isinstance(exc, TypeError):
        # jmespath lets `<`/`>` compare a string with a number and Python refuses; the
        # message names only the types: "'>' not supported between instances of 'str' and..."
        return f"values of the wrong type: {exc}"
    return f"{type(exc).__name__} while evaluating the condition"


def fifo_safe_id(text: str) -> str:
    """``text`` if SQS accepts it as a FIFO id, else its SHA-256 (stable, and accepted)."""
    if FIFO_ID.fullmatch(text):
        return text
    return hashlib.sha256(text.encode()).hexdigest()


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True
