"""``fanout topics [SEARCH]`` and ``fanout topics show TOPIC``: the Genesys topic catalog, so
rules are written from the real field names, types and enum values instead of guesses."""

from __future__ import annotations

import argparse
import sys

import orjson

from fanout.genesys.catalog import Catalog, Topic


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser(
        "topics",
        help="Genesys topics: list or search them; `show TOPIC` for fields, types, enums",
        description="fanout topics [SEARCH]  |  fanout topics show TOPIC",
    )
    topics.add_argument(
        "words",
        nargs="*",
        metavar="SEARCH | show TOPIC",
        help="text in a topic's pattern, family or model, or a field name; `show` and a "
        "detail-type (or a concrete topic name) for its fields",
    )
    topics.add_argument("--json", action="store_true", help="one JSON document")


def main(args: argparse.Namespace) -> int:
    catalog = Catalog.packaged()
    words: list[str] = list(args.words)
    if words and words[0] == "show":
        if len(words) != 2:
            print("fanout: error: usage: fanout topics show TOPIC", file=sys.stderr)
            return 2
        topic = catalog.topic(words[1])
        if topic is None:
            near = [t.pattern for t in catalog.search(words[1].split(".")[-1])][:3]
            hint = f"; did you mean {', '.join(near)}?" if near else "; list them: fanout topics"
            print(f"fanout: error: no topic {words[1]!r} in the catalog{hint}", file=sys.stderr)
            return 2
        _show(topic, as_json=args.json)
        return 0
    found = catalog.search(" ".join(words) if words else None)
    if args.json:
        doc = {
            "provenance": catalog.provenance,
            "topics": [_summary(t) for t in found],
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    prov = catalog.provenance
    print(f"{len(found)} topics (from {prov['sdk']} {prov['sdk_version']}, {prov['license']})")
    for t in found:
        sure = "" if t.confidence == "high" else f"  [model mapping: {t.confidence}]"
        print(f"{t.pattern:<58} {t.family:<28} {len(t.fields):>4} fields{sure}")
    return 0 if found else 1


def _summary(topic: Topic) -> dict[str, object]:
    return {
        "pattern": topic.pattern,
        "family": topic.family,
        "model": topic.model,
        "mapping": {"confidence": topic.confidence, "note": topic.note},
        "fields": len(topic.fields),
    }


def _show(topic: Topic, *, as_json: bool) -> None:
    if as_json:
        doc = _summary(topic)
        doc["fields"] = {
            p: {
                k: v
                for k, v in (
                    ("type", f.type),
                    ("items", f.items),
                    ("enum", list(f.enum)),
                    ("format", f.format),
                )
                if v
            }
            for p, f in topic.fields.items()
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    print(f"{topic.pattern}  ({topic.family}; SDK model {topic.model})")
    print(f"model mapping: {topic.confidence}: {topic.note}")
    print("fields under detail.eventBody (rules: detail.eventBody.<path>):")
    width = max((len(p) for p in topic.fields), default=0)
    for path, f in topic.fields.items():
        enum = f"  one of: {', '.join(f.enum)}" if f.enum else ""
        print(f"  {path:<{width}}  {f.describe()}{enum}")
