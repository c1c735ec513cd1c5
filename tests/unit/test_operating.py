"""deploy/observability: the Grafana dashboard and the alert rules, tested like code.

- the committed fanout.json and PrometheusRule are what their generators write (no drift);
- every PromQL expression (dashboard queries, alert expressions) parses (promql-parser);
- every metric they name is served on /metrics by a real `fanout run --local --processes 2`;
- `promtool check rules` and `promtool test rules` (each alert fires and resolves);
- every alert has a summary, a description and a runbook_url that is a heading of the docs'
  alerts page.
The kustomize overlay with the PrometheusRule renders and validates in test_deploy.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import orjson
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
RULES = OBS / "prometheus" / "fanout-rules.yaml"
RULE_TESTS = OBS / "prometheus" / "tests"
DASHBOARD = OBS / "grafana" / "fanout.json"
COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "prometheus-rules"
ALERTS_PAGE = ROOT / "docs" / "operations" / "alerts.md"
# Grafana's variables, as a query sees them once Grafana has substituted them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h"}


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    board = orjson.loads(DASHBOARD.read_bytes())
    return [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]


def grafana_substituted(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\w+", ".*", expr)  # "All" of a template variable


def expressions() -> list[str]:
    return [grafana_substituted(q) for q in dashboard_queries()] + [
        r["expr"] for r in alert_rules()
    ]


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# ------------------------------------------------------------------------------------------
# Generated files


def test_the_dashboard_is_what_its_generator_writes() -> None:
    generate = load(OBS / "grafana" / "generate.py")
    assert generate.render() == DASHBOARD.read_text(), (
        "fanout.json is stale: python deploy/observability/grafana/generate.py"
    )


def test_the_prometheusrule_is_rendered_from_the_rules_file() -> None:
    render = load(OBS / "prometheus" / "render_prometheusrule.py")
    committed = (COMPONENT / "prometheusrule.yaml").read_text()
    assert render.render() == committed, (
        "prometheusrule.yaml is stale: python deploy/observability/prometheus/"
        "render_prometheusrule.py"
    )
    rule = yaml.safe_load(committed)
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_the_dashboard_has_its_variables_and_rows() -> None:
    board = orjson.loads(DASHBOARD.read_bytes())
    variables = [v["name"] for v in board["templating"]["list"]]
    assert variables == ["datasource", "namespace", "job", "instance", "fanout_process"]
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == [
        "Overview",
        "Events",
        "In flight",
        "SQS calls",
        "Rules",
        "Processes and hosts",
        "Adaptive concurrency",
    ]
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])


# ------------------------------------------------------------------------------------------
# PromQL


@pytest.mark.parametrize("expr", expressions())
def test_every_expression_parses(expr: str) -> None:
    assert metric_names(expr), f"names no metric: {expr}"


def test_the_parser_rejects_broken_promql() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_parser.parse("sum(rate(fanout_copies_total[5m])")


def test_every_alert_says_what_to_do() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in ALERTS_PAGE.read_text().splitlines()
        if line.startswith("#")
    }
    rules = alert_rules()
    assert len(rules) == 8
    for rule in rules:
        annotations = rule["annotations"]
        assert annotations["summary"] and "Likely cause" in annotations["description"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/operations/alerts.md" and anchor in headings, rule["alert"]
        assert anchor == rule["alert"].lower()


# ------------------------------------------------------------------------------------------
# promtool


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus); CI runs this")
    return found


def test_promtool_checks_the_rules_and_the_component_s_groups(tmp_path: Path) -> None:
    groups = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())["spec"]
    extracted = tmp_path / "component-rules.yaml"
    extracted.write_text(yaml.safe_dump(groups))
    out = subprocess.run(
        [promtool(), "check", "rules", str(RULES), str(extracted)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS: 8 rules found") == 2


def test_promtool_unit_tests_fire_and_resolve_every_alert() -> None:
    tests = sorted(RULE_TESTS.glob("*.yaml"))
    covered = {
        case["alertname"]
        for path in tests
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert covered == {r["alert"] for r in alert_rules()}
    out = subprocess.run(
        [promtool(), "test", "rules", *map(str, tests)],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULE_TESTS,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_fails_a_rule_that_does_not_fire(tmp_path: Path) -> None:
    broken = tmp_path / "fanout-rules.yaml"
    broken.write_text(RULES.read_text().replace("> 60", "> 600"))
    (tmp_path / "tests").mkdir()
    for path in RULE_TESTS.glob("*.yaml"):
        (tmp_path / "tests" / path.name).write_text(path.read_text())
    out = subprocess.run(
        [promtool(), "test", "rules", *map(str, (tmp_path / "tests").glob("*.yaml"))],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path / "tests",
    )
    assert out.returncode != 0 and "FanoutLagHigh" in out.stdout + out.stderr


# ------------------------------------------------------------------------------------------
# Names against a real run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def get(port: int, path: str) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(5)) as r,
        ):
            return r.status, await r.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, repr(exc)


def served_names(text: str) -> set[str]:
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def retry_counter_names() -> set[str]:
    """fanout_retries_total appears only after a retry, which the local run's moto never
    causes: this is the same exporter on the same counter with one retry counted."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    from fanout.observability.stats import Stats
    from fanout.observability.telemetry import observe_stats

    registry = CollectorRegistry(auto_describe=True)
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    stats = Stats()
    stats.retries["ThrottlingException"] += 1
    observe_stats(
        provider.get_meter("fanout"),
        stats,
        lambda: 0,
        source="src",
        target_queues={},
        dlq_queue=None,
    )
    try:
        return served_names(generate_latest(registry).decode())
    finally:
        provider.shutdown()


@pytest.mark.integration
async def test_every_named_metric_is_served_by_a_real_run(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_TRACES_EXPORTER": "none",
        "FANOUT_READINESS_WINDOW_SECONDS": "30",
    }
    log = tmp_path / "fanout.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fanout", "run", "--local", "--processes", "2",
            "--http-port", str(port), "--rate", "100", "--malformed", "0.2", "--no-progress",
            env=env, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while (await get(port, "/readyz"))[0] != 200:
            assert proc.returncode is None and time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGHUP)  # each child reloads its rules: fanout_rules_reloads
        needed = set().union(*map(metric_names, expressions()))
        served: set[str] = set()
        while time.monotonic() < deadline:
            status, text = await get(port, "/metrics")
            served = served_names(text) if status == 200 else set()
            if needed - served - {"fanout_retries_total"} == set():
                break
            await asyncio.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    served |= retry_counter_names()
    assert needed - served == set(), f"not served: {sorted(needed - served)}"
    assert 'fanout_process="1"' in text and "fanout_child_restarts_total" in text


# ------------------------------------------------------------------------------------------
# CloudWatch (cfn-lint runs in test_deploy.py)


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Sub, !Ref ...) as plain values."""


_CfnLoader.add_multi_constructor(
    "!",
    lambda loader, _tag, node: (
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)
    ),
)


def test_the_ecs_dashboard_shows_queues_dlqs_and_the_service() -> None:
    template = yaml.load(
        (ROOT / "deploy" / "cloudformation" / "fanout-ecs.yaml").read_text(), Loader=_CfnLoader
    )
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    known = set(variables) | set(template["Parameters"]) | set(template["Resources"])
    used = set(re.findall(r"\$\{([^}]+)\}", body))
    assert {u for u in used if not u.startswith("AWS::")} <= known
    widgets = orjson.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    metrics = {
        name
        for widget in widgets
        for row in widget["properties"]["metrics"]
        for name in row
        if isinstance(name, str) and name[:1].isupper()
    }
    assert {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "CPUUtilization",
        "MemoryUtilization",
        "RunningTaskCount",
    } <= metrics
    assert {"Source", "Dlq", "RedriveDlq"} <= used


# ------------------------------------------------------------------------------------------
# The gauges the alerts need, as the exporter serves them


def test_readiness_and_limit_gauges_follow_their_sources() -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    from fanout.observability.telemetry import observe_inflight_limits, observe_readiness

    registry = CollectorRegistry(auto_describe=True)
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    meter = provider.get_meter("fanout")
    state: dict[str, Any] = {"ready": True, "limit": 1000, "bytes": None}
    observe_readiness(meter, lambda: bool(state["ready"]))
    observe_inflight_limits(
        meter, lambda: int(state["limit"]), lambda: state["bytes"], source="src"
    )

    def scrape() -> dict[str, float]:
        text = generate_latest(registry).decode()
        return {
            s.name: s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name.startswith("fanout_")
        }

    try:
        assert scrape() == {"fanout_ready": 1.0, "fanout_inflight_limit": 1000.0}
        state.update(ready=False, limit=250, bytes=2**20)  # a limit changed at run time
        assert scrape() == {
            "fanout_ready": 0.0,
            "fanout_inflight_limit": 250.0,
            "fanout_inflight_bytes_limit_bytes": float(2**20),
        }
    finally:
        provider.shutdown()
