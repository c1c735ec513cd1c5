"""The docs are part of the interface.

The reference pages (configuration, CLI, metrics) are generated from the code by the mkdocs hook
docs/hooks/reference.py: these tests check that what it generates covers the code, including
metrics defined anywhere in fanout/. The written pages and the README may name only real
settings, and their shell examples must be command lines ``fanout`` accepts."""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import itertools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from fanout.cli import build_parser
from fanout.config import Settings, env_name
from tests.support.docs import ROOT, reference_hook

hook = reference_hook()

PAGES = {
    "settings": ROOT / "docs" / "reference" / "configuration.md",
    "cli": ROOT / "docs" / "reference" / "cli.md",
    "metrics": ROOT / "docs" / "reference" / "metrics.md",
}


# --- reading the generated tables ---------------------------------------------------------


def split_row(line: str) -> list[str]:
    """The cells of a markdown table row: split on ``|`` outside code spans and not escaped,
    as Python-Markdown's tables extension does."""
    body = line.strip()
    assert body.startswith("|") and body.endswith("|"), line
    body = body[1:-1]
    cells: list[str] = []
    cell: list[str] = []
    fence = 0  # backticks opening the code span we are in, 0: not in one
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and body[i + 1 : i + 2] == "|":
            cell.append("\\|")
            i += 2
            continue
        if char == "`":
            run = len(body[i:]) - len(body[i:].lstrip("`"))
            if not fence:
                fence = run
            elif run == fence:
                fence = 0
            cell.append("`" * run)
            i += run
            continue
        if char == "|" and not fence:
            cells.append("".join(cell).strip())
            cell = []
        else:
            cell.append(char)
        i += 1
    cells.append("".join(cell).strip())
    return cells


def table_rows(text: str) -> list[dict[str, str]]:
    """Every row of every table in ``text``, as {header: cell}."""
    rows: list[dict[str, str]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and re.fullmatch(r"\|(---\|)+", lines[i + 1].strip()):
            header = split_row(line)
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = split_row(row)
                assert len(cells) == len(header), row
                rows.append(dict(zip(header, cells, strict=True)))
    return rows


def code_spans(cell: str) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"(`+)(.+?)\1", cell)]


def sections(reference: str) -> dict[str, str]:
    """The CLI reference by heading: {"fanout rules check": its section}."""
    parts = re.split(r"^#+ (.+)$", reference, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line with its prog, walked here rather than by the hook."""
    stack = [build_parser()]
    while stack:
        parser = stack.pop()
        yield parser.prog, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())


# --- 1. the generated references cover the code -------------------------------------------


def settings_rows() -> dict[str, dict[str, str]]:
    rows = table_rows(hook.settings_reference())
    return {code_spans(row["variable"])[0]: row for row in rows}


def run_flag(field: str) -> str | None:
    run = dict(parsers())["fanout run"]
    flags = [a.option_strings for a in run._actions if a.dest == field and a.option_strings]
    return max(flags[0], key=len) if flags else None


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_reference(field: str) -> None:
    rows = settings_rows()
    assert len(rows) == len(Settings.model_fields)
    row = rows[env_name(field)]
    info = Settings.model_fields[field]
    aliases = getattr(info.validation_alias, "choices", [])
    assert set(aliases) <= set(code_spans(row["variable"])), row
    default = info.default
    shown = code_spans(row["default"])
    if default is None:
        assert row["default"] == "unset", row
    elif isinstance(default, bool):
        assert shown[0] == str(default).lower(), row
    elif isinstance(default, int | float):
        assert float(shown[0]) == default, row
    else:
        assert shown[0] == str(default), row
    flag = run_flag(field)
    assert code_spans(row["`fanout run` flag"]) == ([flag] if flag else []), row
    if info.description:
        assert row["meaning"], row


def test_settings_reference_types_and_bounds() -> None:
    rows = settings_rows()
    assert rows["FANOUT_POLLERS"]["type"] == "int"
    assert rows["FANOUT_POLLERS"]["bounds"] == "≥ 1, ≤ 256"
    assert rows["FANOUT_RULES"]["type"] == "path"
    assert rows["FANOUT_SQS_CLIENT"]["type"] == "`lean` / `sdk`"
    assert rows["FANOUT_PROCESSES"]["type"] == "`N` or `auto`"
    assert rows["FANOUT_PROCESSES"]["bounds"] == "≥ 1, ≤ 256"  # inside the Annotated member
    assert rows["FANOUT_SHUTDOWN_TIMEOUT_SECONDS"]["bounds"] == "> 0"
    assert "GENESYS_SOURCE_QUEUE_URL" in rows["FANOUT_SOURCE_QUEUE_URL"]["variable"]


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    by_heading = sections(hook.cli_reference())
    checked = 0
    for prog, parser in parsers():
        assert prog in by_heading, f"no section for {prog}"
        section = by_heading[prog]
        cells = {
            span for row in table_rows(section) for span in code_spans(row.get("argument", ""))
        }
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name in action.choices:
                    assert f"`{name}`](#{'-'.join([*prog.split(), name])})" in section
                continue
            if action.option_strings:
                invocations = [set(re.split(r"[,\s]+", cell)) for cell in cells]
                for option in action.option_strings:
                    assert any(option in words for words in invocations), (prog, option)
                    checked += 1
            else:
                assert str(action.metavar or action.dest) in cells, (prog, action.dest)
                checked += 1
    assert checked > 60


def test_cli_reference_shows_groups_usage_and_anchors() -> None:
    reference = hook.cli_reference()
    by_heading = sections(reference)
    assert "**embedded local run (no AWS account needed)**" in by_heading["fanout run"]
    assert "```text\nfanout rules check [-h]" in by_heading["fanout rules check"]
    assert re.search(r"^## fanout run$", reference, re.MULTILINE)
    assert re.search(r"^#+ fanout dlq redrive$", reference, re.MULTILINE)
    assert hook.slug("fanout rules check") == "fanout-rules-check"
    assert "](#fanout-rules-check)" in by_heading["fanout rules"]


def test_every_recorded_instrument_is_in_the_metrics_reference() -> None:
    instruments = hook.record_instruments()
    rows = {
        code_spans(r["OpenTelemetry"])[0]: r
        for r in table_rows(hook.metrics_reference())
        if code_spans(r["OpenTelemetry"])
    }
    assert len(instruments) >= 20
    for instrument in instruments:
        row = rows[instrument.name]
        assert row["kind"] == instrument.kind
        assert code_spans(row["unit"]) == ([instrument.unit] if instrument.unit else [])
        assert set(instrument.attribute_keys()) == set(code_spans(row["attributes"]))
        assert row["meaning"]
    # The observed ones show what their callbacks observe, the hot-path ones what they declare.
    assert rows["fanout.copies"]["attributes"] == "`fanout.target`"
    assert "`error.type`" in rows["messaging.client.operation.duration"]["attributes"]


def test_declared_attribute_keys_are_what_a_call_records() -> None:
    """Instruments.ATTRIBUTE_KEYS (what the table shows for the hot-path instruments) against
    the attributes CallObserver really records on messaging.client.operation.duration."""
    from opentelemetry.trace import INVALID_SPAN

    from fanout.observability.telemetry import CallObserver, Instruments

    meter = hook.RecordingMeter()
    observer = CallObserver(INVALID_SPAN, Instruments.create(meter), "SendMessageBatch", "q")
    observer.attempt(0.1)
    observer.attempt(0.2, "ThrottlingException")
    (duration,) = [i for i in meter.instruments if i.name == "messaging.client.operation.duration"]
    recorded = {key for attributes in duration.recorded for key in attributes}
    assert recorded == set(Instruments.ATTRIBUTE_KEYS[duration.name])


def test_prometheus_names_follow_the_exporter() -> None:
    """The hook asks the exporter itself; this is the rule it applies, written out, so that a
    matching mistake in the hook cannot pass unnoticed."""
    from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name

    rows = {
        code_spans(r["OpenTelemetry"])[0]: r
        for r in table_rows(hook.metrics_reference())
        if code_spans(r["OpenTelemetry"])
    }
    for instrument in hook.record_instruments():
        name = sanitize_full_name(instrument.name)
        unit = map_unit(instrument.unit)
        if unit and not name.endswith(f"_{unit}"):
            name = f"{name}_{unit}"
        if instrument.kind in ("counter", "observable counter"):
            name += "_total"
        assert code_spans(rows[instrument.name]["Prometheus"]) == [name]
    assert code_spans(rows["fanout.copies"]["Prometheus"]) == ["fanout_copies_total"]
    assert code_spans(rows["fanout.lag"]["Prometheus"]) == ["fanout_lag_seconds"]


# Metric constructors: the OpenTelemetry Meter's, and prometheus_client's (when imported from it).
OTEL_CREATE = re.compile(r"create_(counter|up_down_counter|histogram|gauge|observable_\w+)")
PROMETHEUS_CLASSES = re.compile(r"(Counter|Gauge|Histogram|Summary|Info|Enum|\w+MetricFamily)")


@dataclass(frozen=True)
class Defined:
    name: str
    where: str
    prometheus: bool


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def defined_metrics() -> list[Defined]:
    """Every metric name passed to a metric constructor anywhere in fanout/: directly, through
    a local helper that passes its parameter on (telemetry's ``counter``/``gauge``), or as a
    module constant (the supervisor's ``CHILD_RESTARTS``). A name it cannot resolve fails."""
    return [d for path in sorted((ROOT / "fanout").rglob("*.py")) for d in _metrics_in(path)]


def _metrics_in(path: Path) -> list[Defined]:
    tree = ast.parse(path.read_text(), str(path))
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    # prometheus_client's classes only when imported from it (not collections.Counter).
    prometheus = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus")
        for alias in node.names
        if PROMETHEUS_CLASSES.fullmatch(alias.name)
    }

    def constructor(call: ast.Call) -> bool:
        return bool(OTEL_CREATE.fullmatch(_callee(call))) or _callee(call) in prometheus

    # Helpers pass their own parameter on as the name: their callers name the metric.
    helpers: dict[str, bool] = {}  # helper name: prometheus?
    forwarding: set[int] = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            params = {a.arg for a in func.args.args}
            for call in ast.walk(func):
                if (
                    isinstance(call, ast.Call)
                    and constructor(call)
                    and call.args
                    and isinstance(call.args[0], ast.Name)
                    and call.args[0].id in params
                ):
                    helpers[func.name] = _callee(call) in prometheus
                    forwarding.add(id(call))
    found: list[Defined] = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or id(call) in forwarding:
            continue
        name = _callee(call)
        if not (constructor(call) or name in helpers):
            continue
        is_prometheus = name in prometheus or helpers.get(name, False)
        at = f"{path.relative_to(ROOT)}:{call.lineno}"
        first = call.args[0] if call.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append(Defined(first.value, at, is_prometheus))
        elif isinstance(first, ast.Name) and first.id in constants:
            found.append(Defined(constants[first.id], at, is_prometheus))
        else:
            raise AssertionError(f"{at}: a metric name that is not a literal or constant")
    return found


def test_every_metric_defined_in_the_code_is_in_the_metrics_reference() -> None:
    rows = table_rows(hook.metrics_reference())
    otel = {span for row in rows for span in code_spans(row["OpenTelemetry"])}
    prometheus = {span for row in rows for span in code_spans(row["Prometheus"])}
    defined = defined_metrics()
    assert {d.name for d in defined} >= {"fanout.copies", "fanout.lag", "fanout_child_restarts"}
    missing = [
        f"{d.where}: {d.name}"
        for d in defined
        if not (
            (d.prometheus and {d.name, f"{d.name}_total"} & prometheus)
            or (not d.prometheus and d.name in otel)
        )
    ]
    assert not missing, "not in the generated metrics table (docs/hooks/reference.py):\n" + (
        "\n".join(missing)
    )


# --- 2. the pages, the hook and mkdocs.yml ------------------------------------------------


class _Loader(yaml.SafeLoader):
    """mkdocs.yml with its ``!!python/name:`` tags read as None."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)


def test_reference_pages_have_their_markers_and_mkdocs_runs_the_hook() -> None:
    for name, page in PAGES.items():
        text = page.read_text()
        assert hook.markers(text) == [name], page
        # A title after the front matter (which hides the page's table of contents).
        assert re.sub(r"\A---\n.*?\n---\n+", "", text, flags=re.S).startswith("# "), page
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
    assert "docs/hooks/reference.py" in config["hooks"]


@dataclass
class _Tables(HTMLParser):
    """The cells of each row of the tables in rendered HTML, as text."""

    def __post_init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_render_leaves_no_marker(name: str) -> None:
    rendered = hook.render(PAGES[name].read_text())
    assert "fanout:reference" not in rendered
    assert hook.markers(rendered) == []
    # table_rows asserts that every row has its header's cell count: no unescaped | split one.
    assert len(table_rows(rendered)) >= 10


@pytest.mark.parametrize("name", sorted(PAGES))
def test_rendered_pages_as_the_site_shows_them(name: str) -> None:
    """Through Python-Markdown, as mkdocs renders them (the docs extra, ``make docs``)."""
    markdown = pytest.importorskip("markdown", reason="the docs extra: pip install -e '.[docs]'")
    rendered = hook.render(PAGES[name].read_text())
    html = markdown.markdown(rendered, extensions=["tables", "toc"])
    parsed = _Tables()
    parsed.feed(html)
    # Python-Markdown drops the cells past the header's: a split row loses text silently.
    assert len(table_rows(rendered)) == sum(len(table) - 1 for table in parsed.tables)
    cells = {cell for table in parsed.tables for row in table for cell in row}
    for table in parsed.tables:
        assert {len(row) for row in table} == {len(table[0])}, table
    if name == "cli":
        assert {"SEARCH | show TOPIC", "--processes N|auto"} <= cells
        assert 'id="fanout-rules-check"' in html and 'href="#fanout-rules-check"' in html
    if name == "metrics":
        assert "fanout_child_restarts_total" in cells


def test_an_unknown_marker_is_an_error() -> None:
    with pytest.raises(hook.UnknownReferenceError, match="settingz"):
        hook.render("# x\n\n<!-- fanout:reference settingz -->\n")
    assert hook.render("no marker here\n") == "no marker here\n"


# --- scanning the written docs ------------------------------------------------------------


def doc_files() -> list[Path]:
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


# --- 3. every FANOUT_* name is a setting ---------------------------------------------------

FANOUT_NAME = re.compile(r"(?<![A-Za-z0-9_])FANOUT_[A-Z0-9_]*(?:\((_[A-Z0-9_]+)\))?")


def known_variables() -> set[str]:
    names = {env_name(field) for field in Settings.model_fields}
    for info in Settings.model_fields.values():
        names.update(str(c).upper() for c in getattr(info.validation_alias, "choices", []))
    return names


def named_variables(text: str) -> Iterator[tuple[int, str]]:
    """(line, variable) for each ``FANOUT_*`` name: ``FANOUT_MAX_IN_FLIGHT(_BYTES)`` names two,
    a trailing ``_`` (``FANOUT_*``, a prefix in prose) is not part of the name."""
    for number, line in enumerate(text.splitlines(), 1):
        for match in FANOUT_NAME.finditer(line):
            base = match.group(0).split("(")[0].rstrip("_")
            if base == "FANOUT":  # the prefix itself: FANOUT_*
                continue
            yield number, base
            if match.group(1):
                yield number, base + match.group(1).rstrip("_")


def test_named_variables_parsing() -> None:
    text = "`FANOUT_MAX_IN_FLIGHT(_BYTES)` and FANOUT_* and FANOUT_POLLERS_, FANOUT_X=1"
    assert [v for _, v in named_variables(text)] == [
        "FANOUT_MAX_IN_FLIGHT",
        "FANOUT_MAX_IN_FLIGHT_BYTES",
        "FANOUT_POLLERS",
        "FANOUT_X",
    ]


def test_every_fanout_variable_named_in_the_docs_is_a_setting() -> None:
    known = known_variables()
    seen = 0
    unknown = []
    for path in doc_files():
        for line, name in named_variables(path.read_text()):
            seen += 1
            if name not in known:
                unknown.append(f"{where(path, line)}: {name}")
    assert seen > 0, "no FANOUT_* name found in the docs: is the scan broken?"
    assert not unknown, "not a setting (fanout.config.Settings):\n" + "\n".join(unknown)


# --- 4. every fanout command line in a shell block parses ---------------------------------

SHELL_LANGUAGES = {"sh", "bash", "console", "shell", "shell-session", "zsh"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
SEPARATORS = {"|", "||", "&&", ";", "&", ";;", "|&"}
WRAPPERS = {"sudo", "env", "time", "exec", "nohup"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
REDIRECT = re.compile(r"\d*(>>?|<|>&|&>)(?P<target>.*)")
PLACEHOLDER = re.compile(r"<[^<>\s]+>")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<word>\w+)\1")


def shell_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, command line) of the fenced sh/bash/console/shell blocks: ``\\``
    continuations joined, ``$ `` prompts dropped (in console blocks only prompted lines are
    commands, the rest is output), heredoc bodies skipped."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        i += 1
        if not opened:
            continue
        fence, indent = opened["fence"], len(opened["indent"])
        console = opened["lang"].lower() in ("console", "shell-session")
        shell = opened["lang"].lower() in SHELL_LANGUAGES
        heredoc: str | None = None
        while i < len(lines) and not re.fullmatch(
            rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[i]
        ):
            start, line = i + 1, lines[i][indent:] if lines[i][:indent].isspace() else lines[i]
            i += 1
            if not shell:
                continue
            if heredoc is not None:
                if line.strip() == heredoc:
                    heredoc = None
                continue
            prompted = line.startswith("$ ")
            if console and not prompted:
                continue
            line = line.removeprefix("$ ")
            while line.endswith("\\") and i < len(lines):
                line = line[:-1] + " " + lines[i].strip()
                i += 1
            found = HEREDOC.search(line)
            if found:
                heredoc = found["word"]
            yield start, line
        i += 1  # the closing fence


def commands_of(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line: split on pipes, ``&&``, ``||``, ``;``."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    command: list[str] = []
    for token in lexer:
        if token in SEPARATORS:
            yield command
            command = []
        else:
            command.append(token)
    yield command


def fanout_argv(command: list[str]) -> list[str] | None:
    """The arguments given to fanout (``fanout``, ``python -m fanout``), None for another
    program; leading ``VAR=value`` and ``sudo``/``env``/``time`` are skipped, redirections
    dropped."""
    words = list(command)
    while words and (ASSIGNMENT.match(words[0]) or words[0] in WRAPPERS):
        words.pop(0)
    if not words:
        return None
    program = Path(words[0]).name
    if program == "fanout":
        args = words[1:]
    elif re.fullmatch(r"python(3(\.\d+)?)?", program) and words[1:3] == ["-m", "fanout"]:
        args = words[3:]
    else:
        return None
    argv: list[str] = []
    skip = False
    for word in args:
        redirect = REDIRECT.fullmatch(word)
        if skip:
            skip = False
        elif redirect and not PLACEHOLDER.fullmatch(word):
            skip = not redirect["target"]  # "> file": the file is the next word
        else:
            argv.append(word)
    return argv


def parse_error(argv: list[str]) -> str | None:
    """argparse's message when ``fanout`` refuses ``argv``; None when it parses (``--help`` and
    ``--version`` exit 0: parsed)."""
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return stderr.getvalue().strip().splitlines()[-1]
    return None


def elisions(argv: list[str]) -> list[list[str]]:
    """``argv`` without some of its ``...``: one may stand for more arguments (dropped), another
    be an option's placeholder value (kept). Every choice, fewest dropped first."""
    spots = [i for i, a in enumerate(argv) if a == "..."][:6]
    choices = [c for n in range(1, len(spots) + 1) for c in itertools.combinations(spots, n)]
    return [[a for i, a in enumerate(argv) if i not in drop] for drop in choices]


def test_fanout_command_line_scanning() -> None:
    text = (
        "```sh\nFOO=1 fanout run --local --rate 5 \\\n  --events 10 | tee out  # a comment\n"
        "make run ARGS='--bogus'\n.venv/bin/python -m fanout rules check rules.yaml 2>&1\n"
        "cat <<EOF\nfanout not-a-command\nEOF\n```\n"
        "```console\n$ python3 -m fanout --version\nfanout 1.0\n```\n"
        "```\nfanout --bogus\n```\n"
    )
    found = [
        (n, argv)
        for n, line in shell_lines(text)
        for command in commands_of(line)
        if (argv := fanout_argv(command)) is not None
    ]
    assert found == [
        (2, ["run", "--local", "--rate", "5", "--events", "10"]),
        (5, ["rules", "check", "rules.yaml"]),
        (11, ["--version"]),
    ]
    assert elisions(["run", "--processes", "...", "--local", "..."]) == [
        ["run", "--processes", "--local", "..."],
        ["run", "--processes", "...", "--local"],
        ["run", "--processes", "--local"],
    ]
    assert parse_error(["run", "--local"]) is None
    assert parse_error(["--help"]) is None
    assert "unrecognized arguments: --bogus" in str(parse_error(["run", "--bogus"]))


def test_every_fanout_command_in_the_docs_parses() -> None:
    seen = 0
    failures = []
    for path in doc_files():
        for number, line in shell_lines(path.read_text()):
            for command in commands_of(line):
                argv = fanout_argv(command)
                if argv is None:
                    continue
                seen += 1
                error = parse_error(argv)
                for elided in elisions(argv):
                    error = error and parse_error(elided)
                if error:
                    failures.append(f"{where(path, number)}: fanout {shlex.join(argv)}: {error}")
    assert seen > 0, "no fanout command line found in the docs: is the scan broken?"
    assert not failures, "fanout refuses these documented command lines:\n" + "\n".join(failures)


# ------------------------------------------------------------------------------------------
# Diagrams and the README's links into the site


def test_every_diagram_was_rendered_from_its_current_source() -> None:
    """The site shows docs/diagrams/*.svg (offline, no CDN script); each records the SHA-256 of
    the .mmd it was rendered from, so an edited source without a new render fails here. The
    README embeds architecture.mmd itself (GitHub renders mermaid)."""
    diagrams = ROOT / "docs" / "diagrams"
    sources = sorted(diagrams.glob("*.mmd"))
    assert {p.stem for p in sources} >= {"architecture", "life-of-a-message"}
    for source in sources:
        svg = source.with_suffix(".svg").read_text()
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        stamp = f"<!-- rendered from {source.name} sha256:{digest} -->"
        assert svg.startswith(stamp), f"{source.name}: run python docs/diagrams/render.py"
        assert "<svg" in svg
    readme = (ROOT / "README.md").read_text()
    assert f"```mermaid\n{(diagrams / 'architecture.mmd').read_text()}```" in readme


README_LINK = re.compile(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)")


def test_every_readme_link_into_the_docs_resolves() -> None:
    """mkdocs --strict checks the site's own links; the README is outside it."""
    from markdown.extensions.toc import slugify

    readme = (ROOT / "README.md").read_text()
    links = README_LINK.findall(readme)
    assert len(links) > 20
    for path, anchor in links:
        page = ROOT / path
        assert page.is_file(), path
        if anchor:
            headings = {
                slugify(line.lstrip("#").strip().replace("`", ""), "-")
                for line in page.read_text().splitlines()
                if line.startswith("#")
            }
            assert anchor in headings, f"README links {path}#{anchor}: no such heading"
