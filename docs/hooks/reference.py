"""mkdocs hook: the reference pages' tables, generated from the code they describe.

A page line ``<!-- fanout:reference NAME -->`` becomes the generated markdown of NAME:
``settings`` (``fanout.config.Settings``), ``cli`` (the argparse parsers of
``fanout.cli.build_parser``) or ``metrics`` (the instruments ``fanout.observability.telemetry``
creates, and the supervisor's own counter). An unknown NAME is an error, so a typo fails the
build instead of leaving a page without its table.

The generators are plain functions (``settings_reference``, ``cli_reference``,
``metrics_reference``, ``render``) so that tests/unit/test_docs.py checks the same text the
site shows. They import fanout lazily: loading the hook costs nothing for pages without a marker.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page
    from opentelemetry.metrics import Meter

    from fanout.observability.stats import Stats

MARKER = re.compile(r"^[ \t]*<!--\s*fanout:reference\s+(?P<name>\S+?)\s*-->[ \t]*$", re.MULTILINE)
NONE = "—"  # an empty cell, visibly empty
# Code tokens in prose (descriptions, help): shown as code like the rest of the docs.
_CODE_TOKEN = re.compile(r"(?<![\w`/-])(FANOUT_[A-Z0-9_]*[A-Z0-9]|--[a-z][a-z0-9-]*)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_MIB = 1024 * 1024


class UnknownReferenceError(ValueError):
    """A ``<!-- fanout:reference NAME -->`` marker naming no generator."""


# --- markdown helpers ---------------------------------------------------------------------


def code(text: object) -> str:
    """``text`` as a code span (a longer fence when it holds backticks)."""
    value = str(text)
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def prose(text: str | None) -> str:
    """Help or description text for a table cell: one line, ``|`` escaped (Python-Markdown
    splits cells on it outside code spans only), ``<`` and ``*`` literal, and ``FANOUT_*``
    names and ``--flags`` as code."""
    if not text:
        return ""
    text = " ".join(text.split())
    parts: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(text):
        parts.append(_plain(text[last : span.start()]))
        parts.append(span.group(0))  # already code: a pipe inside does not split the cell
        last = span.end()
    parts.append(_plain(text[last:]))
    return "".join(parts)


def _plain(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("<", "&lt;")
    pieces = _CODE_TOKEN.split(text)
    # split() with one group: odd indexes are the matched tokens.
    return "".join(code(p) if i % 2 else p.replace("|", "\\|") for i, p in enumerate(pieces))


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(cell or NONE for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def slug(title: str) -> str:
    """The anchor Python-Markdown's toc extension gives a plain ``fanout rules check`` heading."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


def number(value: float) -> str:
    """``20.0`` as ``20`` (what one would write in the variable), ``0.02`` as is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- settings -----------------------------------------------------------------------------


def settings_reference() -> str:
    """The configuration table: one row per ``Settings`` field."""
    from fanout.cli import build_parser
    from fanout.config import Settings, env_name

    flags = run_flags(build_parser())
    rows = []
    for name, info in Settings.model_fields.items():
        variables = [env_name(name), *alias_env_names(info.validation_alias, env_name(name))]
        variable = code(variables[0])
        if len(variables) > 1:
            variable += " (also " + ", ".join(code(v) for v in variables[1:]) + ")"
        flag = flags.get(name)
        rows.append(
            [
                variable,
                type_name(info.annotation),
                setting_default(name, info.default),
                ", ".join(bounds(info.annotation, info.metadata)),
                code(flag) if flag else NONE,
                prose(info.description),
            ]
        )
    return table(["variable", "type", "default", "bounds", "`fanout run` flag", "meaning"], rows)


def run_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``fanout run``'s long flag for each destination: run_command passes every flag whose
    dest is a Settings field as that field's init value, which wins over the environment."""
    run = subcommands(parser)["run"][0]
    return {
        action.dest: max(action.option_strings, key=len)
        for action in run._actions
        if action.option_strings
    }


def alias_env_names(alias: object, own: str) -> list[str]:
    """The other variable names a ``validation_alias`` accepts (``GENESYS_SOURCE_QUEUE_URL``)."""
    choices = getattr(alias, "choices", None)
    names = choices if choices is not None else [alias] if isinstance(alias, str) else []
    return [n for n in names if isinstance(n, str) and n.upper() != own]


def _union_members(annotation: object) -> list[object]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for m in typing.get_args(annotation) if m is not type(None)]
    return [annotation]


def type_name(annotation: object) -> str:
    """``int``, ``float``, ``bool``, ``text``, ``path``, the choices of a Literal, or
    ``N`` or ``auto`` for a number that may also be a word."""
    words = {bool: "bool", int: "int", float: "float", str: "text", Path: "path"}
    choices: list[str] = []
    kinds: list[str] = []
    for member in _union_members(annotation):
        if typing.get_origin(member) is typing.Annotated:
            member = typing.get_args(member)[0]
        if typing.get_origin(member) is typing.Literal:
            choices.extend(code(v) for v in typing.get_args(member))
        else:
            kinds.append(words.get(member, getattr(member, "__name__", str(member))))  # type: ignore[call-overload]
    if choices and kinds:  # e.g. FANOUT_PROCESSES: a count, or auto
        numbers = [code("N") if k in ("int", "float") else k for k in kinds]
        return " or ".join([*numbers, " / ".join(choices)])
    return " / ".join(choices) if choices else " or ".join(kinds)


def bounds(annotation: object, metadata: Iterable[object]) -> list[str]:
    """The ge/gt/le/lt constraints of a field, also those inside an Annotated union member."""
    found = list(metadata)
    for member in _union_members(annotation):
        if typing.get_origin(member) is typing.Annotated:
            for extra in typing.get_args(member)[1:]:
                found.extend(getattr(extra, "metadata", [extra]))
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    out = []
    for item in found:
        for attribute, symbol in symbols.items():
            value = getattr(item, attribute, None)
            if isinstance(value, int | float):
                out.append(f"{symbol} {number(value)}")
    return out


def setting_default(name: str, value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return code(str(value).lower())
    if isinstance(value, int | float):
        text = code(number(value))
        if name.endswith("_bytes") and isinstance(value, int) and value % _MIB == 0:
            text += f" ({value // _MIB} MiB)"
        return text
    return code(value)


# --- CLI ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One parser of the command tree: ``path`` is ("fanout", "rules", "check")."""

    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str | None

    @property
    def title(self) -> str:
        return " ".join(self.path)


def subcommands(
    parser: argparse.ArgumentParser,
) -> dict[str, tuple[argparse.ArgumentParser, str | None]]:
    """A parser's subcommands with the help line their parent gave them."""
    found: dict[str, tuple[argparse.ArgumentParser, str | None]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                found[name] = (child, helps.get(name))
    return found


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """The top-level parser then every subcommand, depth first, in definition order."""

    def walk(
        path: tuple[str, ...], node: argparse.ArgumentParser, help: str | None
    ) -> Iterator[Command]:
        yield Command(path, node, help)
        for name, (child, child_help) in subcommands(node).items():
            yield from walk((*path, name), child, child_help)

    return list(walk((parser.prog,), parser, None))


def usage(parser: argparse.ArgumentParser) -> str:
    """The usage line at a fixed width (the terminal's would make the page vary by machine)."""
    formatter = argparse.HelpFormatter(parser.prog, width=90)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def cli_reference() -> str:
    """Every command's help, usage and arguments, a section each (anchor ``fanout-rules-check``)."""
    from fanout.cli import build_parser

    sections = []
    for command in commands(build_parser()):
        parser = command.parser
        # fanout and its commands at level 2, each nested command one level down.
        depth = "#" * min(max(2, len(command.path)), 6)
        lines = [f"{depth} {command.title}", ""]
        for text in dict.fromkeys(t for t in (command.help, parser.description) if t):
            lines += [prose(text), ""]
        lines += ["```text", usage(parser), "```", ""]
        children = subcommands(parser)
        if children:
            rows = [
                [f"[{code(name)}](#{slug(f'{command.title} {name}')})", prose(help)]
                for name, (_, help) in children.items()
            ]
            lines += ["**commands**", "", table(["command", "what it does"], rows), ""]
        for group in parser._action_groups:
            rows = [
                argument_row(parser, action)
                for action in group._group_actions
                if action.help != argparse.SUPPRESS
                and not isinstance(action, argparse._SubParsersAction)
            ]
            if rows:
                lines += [f"**{prose(group.title)}**", ""]
                if group.description:
                    lines += [prose(group.description), ""]
                lines += [table(["argument", "default", "meaning"], rows), ""]
        sections.append("\n".join(lines).rstrip())
    return "\n\n".join(sections)


def argument_row(parser: argparse.ArgumentParser, action: argparse.Action) -> list[str]:
    formatter = argparse.HelpFormatter(parser.prog)
    invocation = formatter._format_action_invocation(action)
    help = formatter._expand_help(action) if action.help else ""
    return [code(invocation), argument_default(action), prose(help)]


def argument_default(action: argparse.Action) -> str:
    if action.required and action.option_strings:
        return "required"
    # A flag (store_true, store_const, help, version) has no value to default.
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS, []):
        return NONE
    if isinstance(action.default, int | float):
        return code(number(action.default))
    return code(action.default)


# --- metrics ------------------------------------------------------------------------------


@dataclass
class Instrument:
    """What one ``create_*`` call on the recording meter was given."""

    kind: str  # "counter", "histogram", "observable gauge"...
    name: str
    unit: str
    description: str
    callbacks: list[Callable[[Any], Iterable[Any]]] = field(default_factory=list)
    recorded: list[Mapping[str, Any]] = field(default_factory=list)  # add()/record() attributes

    @property
    def observable(self) -> bool:
        return self.kind.startswith("observable")

    def attribute_keys(self) -> list[str]:
        """The keys the callbacks observe with, else those recorded through add/record."""
        from opentelemetry.metrics import CallbackOptions

        keys: dict[str, None] = {}
        for callback in self.callbacks:
            for observation in callback(CallbackOptions()):
                keys.update(dict.fromkeys(observation.attributes or {}))
        for attributes in self.recorded:
            keys.update(dict.fromkeys(attributes))
        return list(keys)


@dataclass
class _RecordingInstrument:
    instrument: Instrument

    def _record(self, amount: float, attributes: Mapping[str, Any] | None = None, *_: Any) -> None:
        self.instrument.recorded.append(dict(attributes or {}))

    add = record = set = _record


@dataclass
class RecordingMeter:
    """Stands in for an OpenTelemetry ``Meter``: keeps what each ``create_*`` call was given.

    Only the name, kind, unit, description and callbacks matter to the reference; anything
    else (bucket advisories) is accepted and ignored."""

    instruments: list[Instrument] = field(default_factory=list)

    def _create(
        self,
        kind: str,
        name: str,
        unit: str = "",
        description: str = "",
        callbacks: Sequence[Callable[[Any], Iterable[Any]]] | None = None,
    ) -> _RecordingInstrument:
        instrument = Instrument(kind, name, unit, description, list(callbacks or ()))
        self.instruments.append(instrument)
        return _RecordingInstrument(instrument)

    def create_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> _RecordingInstrument:
        return self._create("counter", name, unit, description)

    def create_up_down_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> _RecordingInstrument:
        return self._create("up-down counter", name, unit, description)

    def create_histogram(
        self, name: str, unit: str = "", description: str = "", **_: Any
    ) -> _RecordingInstrument:
        return self._create("histogram", name, unit, description)

    def create_gauge(
        self, name: str, unit: str = "", description: str = ""
    ) -> _RecordingInstrument:
        return self._create("gauge", name, unit, description)

    def create_observable_counter(
        self,
        name: str,
        callbacks: Sequence[Any] | None = None,
        unit: str = "",
        description: str = "",
    ) -> _RecordingInstrument:
        return self._create("observable counter", name, unit, description, callbacks)

    def create_observable_up_down_counter(
        self,
        name: str,
        callbacks: Sequence[Any] | None = None,
        unit: str = "",
        description: str = "",
    ) -> _RecordingInstrument:
        return self._create("observable up-down counter", name, unit, description, callbacks)

    def create_observable_gauge(
        self,
        name: str,
        callbacks: Sequence[Any] | None = None,
        unit: str = "",
        description: str = "",
    ) -> _RecordingInstrument:
        return self._create("observable gauge", name, unit, description, callbacks)


def _populated_stats() -> Stats:
    """A Stats with one count under every per-key counter, so that each observable callback
    observes something and shows its attribute keys."""
    from fanout.observability.stats import Stats

    stats = Stats(pollers=1)
    for item in dataclasses.fields(Stats):
        value = getattr(stats, item.name)
        if isinstance(value, dict):  # Counter or dict
            value["example"] = 1
    stats.concurrency["delete"] = 1  # the deletes' limit is a gauge of its own
    return stats


def record_instruments() -> list[Instrument]:
    """Every instrument fanout creates, as the recording meter saw it: the hot-path ones
    (``Instruments.create``) and the observed ones, in the order they are created."""
    from fanout.observability import telemetry

    recorder = RecordingMeter()
    meter = cast("Meter", recorder)
    stats = _populated_stats()
    telemetry.Instruments.create(meter)
    telemetry.observe_stats(
        meter,
        stats,
        lambda: 1,
        inflight_bytes=lambda: 1,
        source="source",
        target_queues={"example": "target-queue"},
        dlq_queue="dlq-queue",
    )
    telemetry.observe_concurrency(meter, stats, source="source")
    telemetry.observe_inflight_limits(meter, lambda: 1, lambda: 1, source="source")
    telemetry.observe_readiness(meter, lambda: True)
    declared = telemetry.Instruments.ATTRIBUTE_KEYS
    for instrument in recorder.instruments:
        if not instrument.observable:
            if instrument.name not in declared:
                raise LookupError(
                    f"{instrument.name}: add its attribute keys to Instruments.ATTRIBUTE_KEYS"
                )
            instrument.recorded.append(dict.fromkeys(declared[instrument.name]))
    unknown = set(declared) - {i.name for i in recorder.instruments}
    if unknown:
        raise LookupError(f"Instruments.ATTRIBUTE_KEYS names no instrument: {sorted(unknown)}")
    return recorder.instruments


def prometheus_names(instruments: Sequence[Instrument]) -> dict[str, str]:
    """Each instrument's name on ``/metrics``, as the OpenTelemetry Prometheus exporter renders
    it (unit suffix, ``_total``, ``{annotations}`` dropped): the instruments are created on a
    real SDK meter with a PrometheusMetricReader and collected. A histogram is given by its
    base name (its series add ``_bucket``, ``_sum``, ``_count``)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry)], shutdown_on_exit=False
    )
    meter = provider.get_meter("reference")
    try:
        for item in instruments:
            # The OTel name as the description: how a collected family is matched back to it.
            name, unit, description = item.name, item.unit, item.name
            observed = [lambda _: [Observation(1)]]
            if item.kind == "counter":
                meter.create_counter(name, unit, description).add(1)
            elif item.kind == "up-down counter":
                meter.create_up_down_counter(name, unit, description).add(1)
            elif item.kind == "histogram":
                meter.create_histogram(name, unit, description).record(1)
            elif item.kind == "gauge":
                meter.create_gauge(name, unit, description).set(1)
            elif item.kind == "observable counter":
                meter.create_observable_counter(name, observed, unit, description)
            elif item.kind == "observable up-down counter":
                meter.create_observable_up_down_counter(name, observed, unit, description)
            elif item.kind == "observable gauge":
                meter.create_observable_gauge(name, observed, unit, description)
            else:
                raise ValueError(f"{item.name}: unknown instrument kind {item.kind}")
        names: dict[str, str] = {}
        for family in registry.collect():
            samples = list(dict.fromkeys(s.name for s in family.samples))
            names[family.documentation] = samples[0] if len(samples) == 1 else family.name
    finally:
        provider.shutdown()
    missing = [i.name for i in instruments if i.name not in names]
    if missing:
        raise LookupError(f"not rendered by the Prometheus exporter: {missing}")
    return names


@dataclass(frozen=True)
class PrometheusFamily:
    """A family only the Prometheus side has (the ``--processes`` supervisor's own counter)."""

    name: str  # the sample name, e.g. fanout_child_restarts_total
    kind: str
    labels: tuple[str, ...]
    description: str


def supervisor_families() -> list[PrometheusFamily]:
    """The families the supervisor adds to the children's merged ``/metrics`` (read from what
    ``merge_metrics`` renders, with no child text: only its own)."""
    from prometheus_client.parser import text_string_to_metric_families

    from fanout.runtime.supervisor import merge_metrics

    text = merge_metrics({}, {0: 1}).decode()
    families = []
    for family in text_string_to_metric_families(text):
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        labels = tuple(dict.fromkeys(k for s in samples for k in s.labels))
        names = list(dict.fromkeys(s.name for s in samples))
        name = names[0] if len(names) == 1 else family.name
        families.append(PrometheusFamily(name, family.type, labels, family.documentation))
    return families


def metrics_reference() -> str:
    """The metrics table: OpenTelemetry name, Prometheus name, kind, unit, attributes."""
    instruments = record_instruments()
    prometheus = prometheus_names(instruments)
    rows = [
        [
            code(item.name),
            code(prometheus[item.name]),
            item.kind,
            code(item.unit) if item.unit else NONE,
            ", ".join(code(k) for k in item.attribute_keys()),
            prose(item.description),
        ]
        for item in instruments
    ]
    rows += [
        [
            NONE,
            code(family.name),
            f"{family.kind} (supervisor)",
            NONE,
            ", ".join(code(k) for k in family.labels),
            prose(family.description),
        ]
        for family in supervisor_families()
    ]
    header = ["OpenTelemetry", "Prometheus", "kind", "unit", "attributes", "meaning"]
    return table(header, rows)


# --- the hook -----------------------------------------------------------------------------

GENERATORS: Mapping[str, Callable[[], str]] = types.MappingProxyType(
    {"settings": settings_reference, "cli": cli_reference, "metrics": metrics_reference}
)


def markers(markdown: str) -> list[str]:
    """The generator names the marker lines of ``markdown`` ask for."""
    return [m.group("name") for m in MARKER.finditer(markdown)]


def render(markdown: str) -> str:
    """``markdown`` with every marker line replaced by its generated reference."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        generate = GENERATORS.get(name)
        if generate is None:
            raise UnknownReferenceError(
                f"unknown reference marker {match.group(0).strip()!r}: "
                f"use one of {', '.join(sorted(GENERATORS))}"
            )
        return generate()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return render(markdown)
