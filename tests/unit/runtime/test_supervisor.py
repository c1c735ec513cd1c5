"""The supervisor's pure parts: a child's environment, merged metrics, bound rules files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fanout.config import Settings
from fanout.rules import load_rules
from fanout.runtime.supervisor import bind_rules_file, child_env, merge_metrics

CHILD_METRICS = """\
# HELP fanout_events_received_total Messages received
# TYPE fanout_events_received_total counter
fanout_events_received_total{{source="src"}} {received}
# HELP fanout_inflight In flight
# TYPE fanout_inflight gauge
fanout_inflight {inflight}
"""


def test_child_env_carries_resolved_settings_and_its_identity() -> None:
    settings = Settings(
        source_queue_url="http://127.0.0.1:1/q/src", pollers=3, processes=4, http_port=8080
    )
    base = {
        "PATH": "/bin",
        "FANOUT_POLLERS": "9",  # a flag overrode it: the resolved value wins
        "GENESYS_SOURCE_QUEUE_URL": "http://127.0.0.1:1/q/other",
        "FANOUT_DLQ_URL": "http://127.0.0.1:1/q/stale",  # not in settings: removed
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
    }
    env = child_env(base, settings, 2, 41234, {"AWS_PROFILE": None, "X": "1"})
    assert env["PATH"] == "/bin" and env["X"] == "1"
    assert env["FANOUT_POLLERS"] == "3"
    assert env["FANOUT_SOURCE_QUEUE_URL"] == "http://127.0.0.1:1/q/src"
    assert "GENESYS_SOURCE_QUEUE_URL" not in env and "FANOUT_DLQ_URL" not in env
    assert env["FANOUT_PROCESSES"] == "1" and env["FANOUT_PROCESS_INDEX"] == "2"
    assert env["FANOUT_HTTP_PORT"] == "41234" and env["FANOUT_HTTP_HOST"] == "127.0.0.1"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=prod,fanout.process.index=2"


def test_child_env_round_trips_through_settings() -> None:
    settings = Settings(
        source_queue_url="http://127.0.0.1:1/q/src",
        linger_ms=7.5,
        rules=Path("custom.yaml"),
        log_format="json",
        processes="auto",
    )
    env = child_env({}, settings, 0, None)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        child = Settings()
    assert (
        child.model_dump()
        == settings.model_copy(update={"processes": 1, "process_index": 0}).model_dump()
    )
    assert "FANOUT_HTTP_PORT" not in env


def test_merge_metrics_labels_each_child_and_keeps_each_family_once() -> None:
    merged = merge_metrics(
        {
            0: CHILD_METRICS.format(received=10, inflight=3),
            1: CHILD_METRICS.format(received=32, inflight=0),
        }
    ).decode()
    assert merged.count("# TYPE fanout_events_received_total counter") == 1
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    received = {
        s.labels["fanout_process"]: s.value for s in families["fanout_events_received"].samples
    }
    assert received == {"0": 10.0, "1": 32.0}
    assert {s.labels["source"] for s in families["fanout_events_received"].samples} == {"src"}
    assert len(families["fanout_inflight"].samples) == 2


def test_bind_rules_file_points_targets_at_new_urls(tmp_path: Path) -> None:
    source = tmp_path / "rules.yaml"
    source.write_text(
        "targets:\n"
        "  a: {queue_url: 'https://sqs.us-east-1.amazonaws.com/123456789012/a'}\n"
        "  b: {queue_url: '${B_URL}'}\n"
        "rules:\n  - id: r\n    condition: id != null\n    targets: [a, b]\n"
    )
    urls = {"a": "http://127.0.0.1:5000/123456789012/x-a", "b": "http://127.0.0.1:5000/1/x-b"}
    bound = bind_rules_file(source, urls, tmp_path / "bound.yaml")
    rules = load_rules(bound, env={})
    assert {n: t.queue_url for n, t in rules.targets.items()} == urls
    assert yaml.safe_load(bound.read_text())["rules"][0]["id"] == "r"


def test_merge_metrics_adds_the_supervisor_s_restart_counter_per_child() -> None:
    merged = merge_metrics({0: CHILD_METRICS.format(received=1, inflight=0)}, {0: 2, 1: 0})
    families = {f.name: f for f in text_string_to_metric_families(merged.decode())}
    restarts = families["fanout_child_restarts"]
    assert restarts.type == "counter"
    assert {s.labels["fanout_process"]: s.value for s in restarts.samples} == {"0": 2.0, "1": 0.0}
    # Served even when no child answers (all being restarted).
    assert b"fanout_child_restarts_total" in merge_metrics({}, {0: 3})


def test_child_env_passes_the_inherited_health_socket() -> None:
    settings = Settings(source_queue_url="http://127.0.0.1:1/q/src", http_port=8080)
    env = child_env({"FANOUT_HTTP_SOCKET_FD": "99"}, settings, 1, 41234, None, 7)
    assert env["FANOUT_HTTP_SOCKET_FD"] == "7"
    assert "FANOUT_HTTP_SOCKET_FD" not in child_env(
        {"FANOUT_HTTP_SOCKET_FD": "99"}, settings, 1, None
    )
