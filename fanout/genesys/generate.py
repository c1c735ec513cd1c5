"""Regenerate ``fanout/genesys/catalog.json`` from the official Genesys Cloud Python SDK.

Development time only: ``purecloudplatformclientv2`` is a dev extra, never imported at run time
(nor here: the model sources are read with ``ast``, which takes a second where importing the
SDK's 6,600 models takes a minute). Each topic below names the SDK model of its ``eventBody``;
the generator walks that model's ``swagger_types`` / ``attribute_map`` (nested models become
dotted paths, list items ``[]``) and the enum values its setters allow.

    python -m fanout.genesys.generate            # rewrite catalog.json
    python -m fanout.genesys.generate --check    # exit 1 when catalog.json is not what it makes
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SDK_DISTRIBUTION = "purecloudplatformclientv2"
SDK_PACKAGE = "PureCloudPlatformClientV2"
CATALOG_PATH = Path(__file__).with_name("catalog.json")
GENERATE_COMMAND = "python -m fanout.genesys.generate"
# Nested models deeper than this are left out: rules rarely reach that far, and the
# conversation topics' participant trees would multiply the catalog's size.
MAX_DEPTH = 3


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic and how its model was found.

    Parameters:
        pattern: the EventBridge ``detail-type`` ({id} placeholders).
        family: the group ``fanout topics`` lists it under.
        model: the SDK class of the ``eventBody``.
        confidence: ``high`` when the SDK names the topic in the model's name, else how sure.
        note: how the model was mapped when its name does not say.
    """

    pattern: str
    family: str
    model: str
    confidence: str = "high"
    note: str = ""


_DETAIL = "v2.detail.events.conversation.{id}."
_DETAIL_STEPS = (
    ("acd.end", "AcdEndDetailEventTopicAcdEndEvent"),
    ("acd.start", "AcdStartDetailEventTopicAcdStartEvent"),
    ("acw", "AcwDetailEventTopicAfterCallWorkEvent"),
    ("attributes", "AttributeDetailEventTopicAttributeUpdateEvent"),
    ("contact", "ContactDetailEventTopicContactUpdateEvent"),
    ("customer.end", "CustomerEndDetailEventTopicCustomerEndEvent"),
    ("customer.start", "CustomerStartDetailEventTopicCustomerStartEvent"),
    ("flow.end", "FlowEndDetailEventTopicFlowEndEvent"),
    ("flow.outcome", "FlowOutcomeDetailEventTopicFlowOutcomeEvent"),
    ("flow.start", "FlowStartDetailEventTopicFlowStartEvent"),
    ("outbound", "OutboundDetailEventTopicOutboundInitEvent"),
    ("user.end", "UserEndDetailEventTopicUserEndEvent"),
    ("user.start", "UserStartDetailEventTopicUserStartEvent"),
    ("voicemail.end", "VoicemailEndDetailEventTopicVoicemailEndEvent"),
    ("voicemail.start", "VoicemailStartDetailEventTopicVoicemailStartEvent"),
    ("wrapup", "WrapupDetailEventTopicWrapupEvent"),
)
# (topic suffix, model infix, conversation class infix)
_MEDIA = (
    ("calls", "Call", "Call"),
    ("callbacks", "Callback", "Callback"),
    ("chats", "Chat", "Chat"),
    ("cobrowsesessions", "Cobrowse", "Cobrowse"),
    ("emails", "Email", "Email"),
    ("messages", "Message", "Message"),
    ("screenshares", "ScreenShare", "ScreenShare"),
    ("socialexpressions", "SocialExpression", "Social"),
    ("videos", "Video", "Video"),
)
_QUEUE_MEDIA = ("calls", "callbacks", "chats", "cobrowsesessions", "emails", "messages",
                "screenshares")  # fmt: skip
_MEDIA_NOTE = (
    "inferred from the name: the SDK names no topic; Conversation<Media>EventTopic<Media>"
    "Conversation follows the <Topic>EventTopic naming of its notification models, and "
    "QueueConversation<Media>EventTopic* (same shape) serves the queue's per-media topic"
)


def topic_specs() -> list[TopicSpec]:
    """Every catalog topic with its model (the list the --check compares first)."""
    specs = [
        TopicSpec(
            _DETAIL + step,
            "conversation detail events",
            model,
            note=f"{model}: the {step} detail event model (<Step>DetailEventTopic<Event>)",
        )
        for step, model in _DETAIL_STEPS
    ]
    specs += [
        TopicSpec(
            "v2.audits.entitytype.{id}.entityid.{id}",
            "audits",
            "AuditTopicAuditLogMessage",
            note="AuditTopic* is the audit topic's model family; AuditLogMessage its root",
        ),
        TopicSpec(
            "v2.users.{id}.presence",
            "users",
            "PresenceEventUserPresence",
            "medium",
            "PresenceEvent* (no Topic in the name): the only user presence notification model",
        ),
        TopicSpec(
            "v2.users.{id}.routingStatus",
            "users",
            "UserRoutingStatusUserRoutingStatus",
            "medium",
            "UserRoutingStatus* (no Topic in the name): its root model has id + routingStatus",
        ),
        TopicSpec(
            "v2.users.{id}.activity",
            "users",
            "AgentActivityChangedTopicAgentActivity",
            "medium",
            "AgentActivityChangedTopic*: routing status, presence, out of office and active "
            "queues, the fields the activity topic documents",
        ),
        TopicSpec(
            "v2.users.{id}.conversations",
            "user conversations",
            "ConversationEventTopicConversation",
            "medium",
            "ConversationEventTopic* serves v2.users.{id}.conversations and "
            "v2.conversations.{id}: both carry the whole conversation",
        ),
    ]
    for suffix, media, conv in _MEDIA:
        specs.append(
            TopicSpec(
                f"v2.users.{{id}}.conversations.{suffix}",
                "user conversations",
                f"Conversation{media}EventTopic{conv}Conversation",
                "medium",
                _MEDIA_NOTE,
            )
        )
    specs.append(
        TopicSpec(
            "v2.routing.queues.{id}.conversations",
            "queue conversations",
            "QueueConversationEventTopicConversation",
            note="QueueConversationEventTopic*: the queue conversations topic's model family",
        )
    )
    for suffix, media, conv in _MEDIA:
        if suffix in _QUEUE_MEDIA:
            specs.append(
                TopicSpec(
                    f"v2.routing.queues.{{id}}.conversations.{suffix}",
                    "queue conversations",
                    f"QueueConversation{media}EventTopic{conv}Conversation",
                    note="QueueConversation<Media>EventTopic*: the queue's per-media topic",
                )
            )
    specs += [
        TopicSpec(
            "v2.analytics.conversation.{id}.metrics",
            "analytics",
            "ConversationMetricsTopicConversationMetricRecord",
            "medium",
            "ConversationMetricsTopic*: one metric record per event (metric, value, dimensions)",
        ),
        TopicSpec(
            "v2.analytics.flow.{id}.metrics",
            "analytics",
            "FlowMetricsTopicFlowMetricRecord",
            "low",
            "FlowMetricsTopic*: by analogy with the conversation metrics topic; the topic name "
            "is inferred from the model name",
        ),
    ]
    return specs


# --- reading the SDK's model sources ---------------------------------------------------------


class SdkMissing(Exception):
    pass


def _models_dir() -> Path:
    spec = importlib.util.find_spec(SDK_PACKAGE)  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise SdkMissing(
            f"the Genesys SDK is not installed: pip install -e '.[dev]' ({SDK_DISTRIBUTION})"
        )
    return Path(spec.origin).parent / "models"


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True, slots=True)
class _Model:
    types: dict[str, str]  # JSON name -> swagger type
    enums: dict[str, list[str]]  # JSON name -> allowed values


class _Sdk:
    """Parsed model sources, by class name. Parameters: models: the SDK's models directory."""

    def __init__(self, models: Path) -> None:
        self._dir = models
        self._cache: dict[str, _Model] = {}

    def model(self, name: str) -> _Model:
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = self._parse(name)
        return found

    def exists(self, name: str) -> bool:
        return (self._dir / f"{_snake(name)}.py").is_file()

    def _parse(self, name: str) -> _Model:
        path = self._dir / f"{_snake(name)}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
        swagger: dict[str, str] = {}
        attrs: dict[str, str] = {}
        enums_py: dict[str, list[str]] = {}
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Assign):
                    continue
                target = node.targets[0]
                if isinstance(target, ast.Attribute) and target.attr == "swagger_types":
                    swagger = ast.literal_eval(node.value)
                elif isinstance(target, ast.Attribute) and target.attr == "attribute_map":
                    attrs = ast.literal_eval(node.value)
                elif (
                    isinstance(target, ast.Name)
                    and target.id == "allowed_values"
                    and any(
                        isinstance(d, ast.Attribute) and d.attr == "setter"
                        for d in fn.decorator_list
                    )
                ):
                    enums_py[fn.name] = list(ast.literal_eval(node.value))
        types = {attrs[k]: v for k, v in swagger.items()}
        enums = {attrs[k]: v for k, v in enums_py.items() if k in attrs}
        return _Model(types, enums)


_SCALARS = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "datetime": "string",
    "date": "string",
    "object": "any",
}
_LIST = re.compile(r"list\[(.+)\]$")
_DICT = re.compile(r"dict\(str, (.+)\)$")


def _fields(sdk: _Sdk, model: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    _walk(sdk, model, "", out, (model,))
    return dict(sorted(out.items()))


def _walk(
    sdk: _Sdk, model: str, prefix: str, out: dict[str, dict[str, Any]], stack: tuple[str, ...]
) -> None:
    m = sdk.model(model)
    for name, swagger in m.types.items():
        path = f"{prefix}{name}"
        entry, item = _describe(swagger)
        if name in m.enums:
            entry["enum"] = m.enums[name]
        out[path] = entry
        nested = item if item not in _SCALARS else None
        if nested is None or not sdk.exists(nested):
            if nested is not None:
                entry["type"] = entry["type"] if entry["type"] == "array" else "object"
            continue
        if nested in stack or len(stack) >= MAX_DEPTH:
            continue
        child = f"{path}[]." if entry["type"] == "array" else f"{path}."
        _walk(sdk, nested, child, out, (*stack, nested))


def _describe(swagger: str) -> tuple[dict[str, Any], str]:
    """(catalog entry, the innermost type name) for one swagger type."""
    lst = _LIST.match(swagger)
    if lst is not None:
        inner = lst.group(1)
        items = _SCALARS.get(inner, "array" if _LIST.match(inner) else "object")
        return {"type": "array", "items": items}, inner
    if _DICT.match(swagger):
        return {"type": "object"}, "object"
    scalar = _SCALARS.get(swagger)
    if scalar is not None:
        entry: dict[str, Any] = {"type": scalar}
        if swagger in ("datetime", "date"):
            entry["format"] = "date-time" if swagger == "datetime" else "date"
        return entry, swagger
    return {"type": "object"}, swagger


def build_catalog() -> dict[str, Any]:
    sdk = _Sdk(_models_dir())
    version = importlib.metadata.version(SDK_DISTRIBUTION)
    topics = []
    for spec in topic_specs():
        topics.append(
            {
                "pattern": spec.pattern,
                "family": spec.family,
                "model": spec.model,
                "mapping": {"confidence": spec.confidence, "note": spec.note},
                "fields": _fields(sdk, spec.model),
            }
        )
    return {
        "provenance": {
            "sdk": SDK_DISTRIBUTION,
            "sdk_version": version,
            "license": "MIT (Genesys Cloud Platform API SDK, https://github.com/MyPureCloud/platform-client-sdk-python)",
            "generated_by": GENERATE_COMMAND,
            "types": "JSON types of the eventBody fields; datetime fields are ISO 8601 strings",
            "depth": f"nested models to depth {MAX_DEPTH}; list items as name[].field",
            "enum_case": "enum values as the SDK lists them; JSON compares them case-sensitively",
        },
        "topics": topics,
    }


def render(catalog: dict[str, Any]) -> bytes:
    """One line per field: small, and a regeneration's diff reads field by field."""
    lines = [
        "{",
        '"provenance": ' + orjson.dumps(catalog["provenance"]).decode() + ",",
        '"topics": [',
    ]
    topics = catalog["topics"]
    for i, topic in enumerate(topics):
        head = {k: v for k, v in topic.items() if k != "fields"}
        lines.append(orjson.dumps(head).decode()[:-1] + ', "fields": {')
        fields = list(topic["fields"].items())
        for j, (path, entry) in enumerate(fields):
            sep = "," if j < len(fields) - 1 else ""
            lines.append(f"  {orjson.dumps(path).decode()}: {orjson.dumps(entry).decode()}{sep}")
        lines.append("}}" + ("," if i < len(topics) - 1 else ""))
    lines += ["]", "}"]
    return "\n".join(lines).encode() + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fanout.genesys.generate")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    try:
        fresh = render(build_catalog())
    except SdkMissing as exc:
        print(f"fanout.genesys.generate: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if CATALOG_PATH.read_bytes() != fresh:
            print(f"{CATALOG_PATH}: out of date; run {GENERATE_COMMAND}", file=sys.stderr)
            return 1
        print(f"{CATALOG_PATH}: up to date")
        return 0
    CATALOG_PATH.write_bytes(fresh)
    print(f"wrote {CATALOG_PATH} ({len(fresh)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
