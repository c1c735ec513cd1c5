"""Realistic generated rule sets (rules.yaml text) for the rule-engine bench and the tests.

``ruleset_yaml(n)`` writes ``n`` rules of the kinds real Genesys deployments have: per-queue
routes, wrap-up code sets, media type + duration thresholds, source / detail-type prefixes,
division routes, the original simplified shape, bare numeric thresholds, ``||`` of two
equalities, and a few conditions no index can serve (``length()``, ``not_null()``). Ids come
from ``fanout.local.synthetic``'s pools and the field paths are the ones ``GenesysEventGenerator``
produces, so generated events really match.

``flavour="pattern"`` writes the same routes as EventBridge event patterns (``pattern:``);
where JMESPath has no pattern equivalent (``length()``) the closest pattern is used instead.
The same ``(n, seed)`` gives the same routes in both flavours, and the first rules of every
set are the same, so ``n=3`` reads like a tiny hand-written file.

    python -m bench.rulesets 10 [--flavour pattern] [--seed 0]   # print one
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from fanout.local.synthetic import DEFAULT_ORG_ID, DIVISIONS, QUEUES, WRAPUP_CODES

Flavour = Literal["jmespath", "pattern"]

CONV = "v2.detail.events.conversation.{id}."
PRESENCE_TYPE = "v2.users.{id}.presence"
AUDIT_TYPE = "v2.audits.entitytype.{id}.entityid.{id}"
GENESYS_SOURCE = "aws.partner/genesys.com"
# Conversation steps whose eventBody carries queueId (see GenesysEventGenerator).
QUEUE_STEPS = ("acd.start", "acd.end", "user.start", "user.end", "wrapup", "acw")
DIVISION_STEPS = ("customer.start", "customer.end", "acd.end", "user.end", "contact")
MEDIA_TYPES = ("VOICE", "MESSAGE", "EMAIL", "CALLBACK", "CHAT")
PRESENCES = ("AVAILABLE", "ON_QUEUE", "BUSY", "AWAY", "BREAK", "MEAL", "OFFLINE")
AUDIT_ENTITIES = ("Queue", "WrapupCode", "Flow", "Role", "Campaign", "ScheduleGroup", "Trigger")
AUDIT_ACTIONS = ("Update", "Create", "Delete", "Publish")
TARGETS = ("critical", "high", "standard")
# The first rules of every set, in this order; later ones are drawn with these weights.
_FIRST_KINDS = (
    "queue",
    "wrapup",
    "media",
    "division",
    "prefix",
    "threshold",
    "queue",
    "wrapup",
    "simplified",
    "queue_set",
)
_KIND_WEIGHTS = {
    "queue": 34,
    "queue_set": 6,
    "wrapup": 18,
    "media": 12,
    "division": 12,
    "prefix": 8,
    "simplified": 4,
    "threshold": 2,
    "either": 1,
    "unindexable": 1,
}


@dataclass(frozen=True)
class _Route:
    slug: str
    description: str
    condition: str
    pattern: dict[str, Any]
    targets: tuple[str, ...]


def _q(text: str) -> str:
    """A JMESPath raw string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _body(**fields: Any) -> dict[str, Any]:
    """A pattern on detail.eventBody fields."""
    return {"detail": {"eventBody": fields}}


def _with_type(detail_type: str, pattern: dict[str, Any]) -> dict[str, Any]:
    return {"detail-type": [detail_type], **pattern}


class _Draw:
    """Seeded drawing of one route per kind; both flavours come from the same draws."""

    def __init__(self, seed: int) -> None:
        # Synthetic bench data, not security-sensitive: a seedable PRNG is the point.
        self.rng = random.Random(seed)

    def pick(self, items: tuple[Any, ...] | list[Any]) -> Any:
        return self.rng.choice(items)

    def targets(self, critical: bool = False) -> tuple[str, ...]:
        if critical:
            return ("critical",)
        r = self.rng.random()
        if r < 0.15:
            return ("high", "standard")
        return ("high",) if r < 0.45 else ("standard",)

    def queue(self) -> _Route:
        name, qid = self.pick(QUEUES)
        step = self.pick(QUEUE_STEPS)
        cond = f'"detail-type" == {_q(CONV + step)} && detail.eventBody.queueId == {_q(qid)}'
        fields: dict[str, Any] = {"queueId": [qid]}
        desc = f"{name}: {step} events"
        if self.rng.random() < 0.3:
            media = self.pick(MEDIA_TYPES)
            # Literal on the left now and then: users write it both ways.
            if self.rng.random() < 0.5:
                cond += f" && {_q(media)} == detail.eventBody.mediaType"
            else:
                cond += f" && detail.eventBody.mediaType == {_q(media)}"
            fields["mediaType"] = [media]
            desc += f" ({media.lower()})"
        critical = "VIP" in name or "Fraud" in name
        return _Route(
            f"queue-{_slug(name)}-{step.replace('.', '-')}",
            desc,
            cond,
            _with_type(CONV + step, _body(**fields)),
            self.targets(critical),
        )

    def queue_set(self) -> _Route:
        picked = self.rng.sample(QUEUES, self.rng.randint(2, 4))
        step = self.pick(("acd.end", "user.end", "acw"))
        ids = [q for _, q in picked]
        cond = (
            f'"detail-type" == {_q(CONV + step)}'
            f" && contains([{', '.join(_q(i) for i in ids)}], detail.eventBody.queueId)"
        )
        names = ", ".join(n for n, _ in picked)
        return _Route(
            f"queues-{_slug(picked[0][0])}-and-{len(ids) - 1}-more",
            f"{step} events from {names}",
            cond,
            _with_type(CONV + step, _body(queueId=ids)),
            self.targets(),
        )

    def wrapup(self) -> _Route:
        picked = self.rng.sample(WRAPUP_CODES, self.rng.randint(1, 4))
        ids = [w for _, w in picked]
        cond = (
            f'"detail-type" == {_q(CONV + "acw")}'
            f" && contains([{', '.join(_q(i) for i in ids)}], detail.eventBody.wrapupCode)"
        )
        fields: dict[str, Any] = {"wrapupCode": ids}
        desc = "After-call work with wrap-up " + ", ".join(n for n, _ in picked)
        if self.rng.random() < 0.4:
            qname, qid = self.pick(QUEUES)
            cond += f" && detail.eventBody.queueId == {_q(qid)}"
            fields["queueId"] = [qid]
            desc += f" in {qname}"
        critical = any("Fraud" in n or "Complaint" in n for n, _ in picked)
        return _Route(
            f"wrapup-{_slug(picked[0][0])}",
            desc,
            cond,
            _with_type(CONV + "acw", _body(**fields)),
            self.targets(critical),
        )

    def media(self) -> _Route:
        media = self.pick(("VOICE", "VOICE", "VOICE", "MESSAGE", "CALLBACK", "CHAT"))
        minutes = self.pick((2, 5, 10, 15, 20, 30))
        ms = minutes * 60_000
        cond = (
            f'"detail-type" == {_q(CONV + "user.end")}'
            f" && detail.eventBody.mediaType == {_q(media)}"
            f" && detail.eventBody.interactingDurationMs > `{ms}`"
        )
        fields: dict[str, Any] = {
            "mediaType": [media],
            "interactingDurationMs": [{"numeric": [">", ms]}],
        }
        desc = f"{media.lower()} interactions over {minutes} minutes"
        if self.rng.random() < 0.6:
            qname, qid = self.pick(QUEUES)
            cond += f" && detail.eventBody.queueId == {_q(qid)}"
            fields["queueId"] = [qid]
            desc += f" in {qname}"
        return _Route(
            f"long-{media.lower()}-{minutes}m",
            desc[0].upper() + desc[1:],
            cond,
            _with_type(CONV + "user.end", _body(**fields)),
            self.targets(),
        )

    def division(self) -> _Route:
        dname, did = self.pick(DIVISIONS)
        step = self.pick(DIVISION_STEPS)
        cond = f'detail.eventBody.divisionId == {_q(did)} && "detail-type" == {_q(CONV + step)}'
        fields: dict[str, Any] = {"divisionId": [did]}
        desc = f"{dname} division: {step} events"
        if step == "customer.end" and self.rng.random() < 0.5:
            cond += " && detail.eventBody.disconnectType == 'ENDPOINT'"
            fields["disconnectType"] = ["ENDPOINT"]
            desc += " where the customer hung up"
        return _Route(
            f"division-{_slug(dname)}-{step.replace('.', '-')}",
            desc,
            cond,
            _with_type(CONV + step, _body(**fields)),
            self.targets(),
        )

    def prefix(self) -> _Route:
        r = self.rng.random()
        if r < 0.4:
            presence = self.pick(PRESENCES)
            return _Route(
                f"presence-{presence.lower()}",
                f"Agents going {presence.replace('_', ' ').lower()}",
                f"starts_with(source, {_q(GENESYS_SOURCE)})"
                f' && "detail-type" == {_q(PRESENCE_TYPE)}'
                f" && detail.eventBody.presenceDefinition.systemPresence == {_q(presence)}",
                {
                    "source": [{"prefix": GENESYS_SOURCE}],
                    "detail-type": [PRESENCE_TYPE],
                    "detail": {"eventBody": {"presenceDefinition": {"systemPresence": [presence]}}},
                },
                self.targets(),
            )
        if r < 0.8:
            entity = self.pick(AUDIT_ENTITIES)
            action = self.pick(AUDIT_ACTIONS)
            return _Route(
                f"audit-{entity.lower()}-{action.lower()}",
                f"Audit: {entity} {action.lower()}",
                "starts_with(\"detail-type\", 'v2.audits.')"
                f" && detail.eventBody.entityType == {_q(entity)}"
                f" && detail.eventBody.action == {_q(action)}",
                {
                    "detail-type": [{"prefix": "v2.audits."}],
                    **_body(entityType=[entity], action=[action]),
                },
                self.targets(action == "Delete"),
            )
        org_source = f"{GENESYS_SOURCE}/cloud/{DEFAULT_ORG_ID}"
        return _Route(
            "org-failed-audits",
            "Failed changes in the production org",
            f"starts_with(source, {_q(org_source)}) && detail.eventBody.status == 'FAILURE'",
            {"source": [{"prefix": org_source}], **_body(status=["FAILURE"])},
            ("critical",),
        )

    def simplified(self) -> _Route:
        r = self.rng.random()
        if r < 0.5:
            priority = self.pick(("critical", "high", "normal", "low"))
            return _Route(
                f"priority-{priority}",
                f"{priority.capitalize()}-priority interactions",
                f"detail.tags.priority == {_q(priority)}",
                {"detail": {"tags": {"priority": [priority]}}},
                self.targets(priority == "critical"),
            )
        channel = self.pick(("voice", "chat", "email"))
        outcome = self.pick(("completed", "abandoned", "transferred"))
        return _Route(
            f"{channel}-{outcome}",
            f"{channel.capitalize()} interactions {outcome}",
            f"detail.channel == {_q(channel)} && detail.outcome == {_q(outcome)}",
            {"detail": {"channel": [channel], "outcome": [outcome]}},
            self.targets(),
        )

    def threshold(self) -> _Route:
        """A bare numeric threshold (no equality to narrow it down)."""
        if self.rng.random() < 0.5:
            level = self.pick((10, 50, 100))
            return _Route(
                f"routing-priority-{level}",
                f"Conversations routed with priority {level} or more",
                f"detail.eventBody.routingPriority >= `{level}`",
                _body(routingPriority=[{"numeric": [">=", level]}]),
                self.targets(level == 100),
            )
        minutes = self.pick((2, 5, 10))
        return _Route(
            f"slow-simplified-{minutes}m",
            f"Interactions longer than {minutes} minutes (simplified shape)",
            f"detail.duration_ms > `{minutes * 60_000}`",
            {"detail": {"duration_ms": [{"numeric": [">", minutes * 60_000]}]}},
            self.targets(),
        )

    def either(self) -> _Route:
        """An || of two equalities on different fields."""
        outcome = self.pick(("ABANDON", "FLOW_OUT"))
        failure = self.pick(("TRANSPORT_FAILURE", "ERROR", "SYSTEM"))
        return _Route(
            f"{outcome.lower().replace('_', '-')}-or-{failure.lower().replace('_', '-')}",
            f"{outcome.capitalize()} in queue, or a {failure.lower()} disconnect",
            f"detail.eventBody.acdOutcome == {_q(outcome)}"
            f" || detail.eventBody.disconnectType == {_q(failure)}",
            {
                "$or": [
                    _body(acdOutcome=[outcome]),
                    _body(disconnectType=[failure]),
                ]
            },
            ("high",),
        )

    def unindexable(self) -> _Route:
        """Conditions no index serves: they are evaluated for every event."""
        if self.rng.random() < 0.5:
            count = self.pick((1, 2))
            # No pattern counts list elements: "has an external organisation" is the closest.
            return _Route(
                f"more-than-{count}-contacts",
                f"Conversations with more than {count} external contacts",
                f"length(detail.eventBody.conversationExternalContactIds || `[]`) > `{count}`",
                _body(externalOrganizationId=[{"exists": True}]),
                ("standard",),
            )
        field = self.pick(("externalOrganizationId", "outboundCampaignId", "callbackUserName"))
        return _Route(
            f"has-{_slug(field)}",
            f"Events that carry {field}",
            f"not_null(detail.eventBody.{field})",
            _body(**{field: [{"exists": True}]}),
            ("standard",),
        )


def _routes(n: int, seed: int) -> list[_Route]:
    draw = _Draw(seed)
    makers: dict[str, Callable[[], _Route]] = {
        "queue": draw.queue,
        "queue_set": draw.queue_set,
        "wrapup": draw.wrapup,
        "media": draw.media,
        "division": draw.division,
        "prefix": draw.prefix,
        "simplified": draw.simplified,
        "threshold": draw.threshold,
        "either": draw.either,
        "unindexable": draw.unindexable,
    }
    kinds = list(_KIND_WEIGHTS)
    weights = list(_KIND_WEIGHTS.values())
    routes = []
    for i in range(n):
        kind = _FIRST_KINDS[i] if i < len(_FIRST_KINDS) else draw.rng.choices(kinds, weights)[0]
        routes.append(makers[kind]())
    return routes


def ruleset_yaml(n: int, *, flavour: Flavour = "jmespath", seed: int = 0) -> str:
    """rules.yaml text with ``n`` rules sending to targets critical, high and standard."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if flavour not in ("jmespath", "pattern"):
        raise ValueError(f"flavour must be 'jmespath' or 'pattern', got {flavour!r}")
    lines = [
        f"# Generated by bench/rulesets.py: {n} {flavour} rules, seed {seed}.",
        "match: all",
        "",
        "targets:",
        *(f"  {t}:\n    queue_url: ${{{t.upper()}_QUEUE_URL}}" for t in TARGETS),
        "",
        "rules:" if n else "rules: []",
    ]
    seen: dict[str, int] = {}
    for route in _routes(n, seed):
        count = seen[route.slug] = seen.get(route.slug, 0) + 1
        rule_id = route.slug if count == 1 else f"{route.slug}-{count}"
        lines.append(f"  - id: {rule_id}")
        lines.append(f"    description: {json.dumps(route.description)}")
        if flavour == "jmespath":
            # A folded block scalar: no YAML escaping of the quotes and backticks in JMESPath.
            folded = route.condition.replace(" && ", "\n      && ")
            lines.append(f"    condition: >-\n      {folded}")
        else:
            block = yaml.safe_dump(route.pattern, default_flow_style=False, sort_keys=False)
            lines.append("    pattern:")
            lines.extend("      " + line for line in block.splitlines())
        lines.append(f"    targets: [{', '.join(route.targets)}]")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--flavour", choices=("jmespath", "pattern"), default="jmespath")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(ruleset_yaml(args.n, flavour=args.flavour, seed=args.seed), end="")


if __name__ == "__main__":
    main()
