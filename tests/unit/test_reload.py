"""reload.py and pipeline/routing.py: file signatures, the reload loop, the swap, the metric."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from fanout.errors import RulesError
from fanout.observability.stats import Stats
from fanout.observability.telemetry import observe_stats
from fanout.pipeline.routing import Routing
from fanout.reload import RulesChange, RulesReloader, file_signature
from fanout.rules import RuleSet, load_rules

RULES = """
targets:
  {name}: {{queue_url: "http://127.0.0.1:9/{name}"}}
rules:
  - id: r
    condition: "id != ''"
    targets: [{name}]
"""


def rules(tmp_path: Path, name: str) -> RuleSet:
    path = tmp_path / f"{name}.yaml"
    path.write_text(RULES.format(name=name))
    return load_rules(path, env={})


async def until(check: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


class FakeSender:
    def __init__(self, busy: bool = False) -> None:
        self.batcher = type("B", (), {"busy": busy})()


def test_file_signature_changes_on_a_symlink_swap_not_on_a_touchless_read(tmp_path: Path) -> None:
    for version in ("a", "b"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "rules.yaml").write_text("same text")
    (tmp_path / "..data").symlink_to("a")
    link = tmp_path / "rules.yaml"
    link.symlink_to("..data/rules.yaml")
    before = file_signature(link)
    assert before is not None and before == file_signature(link)
    tmp = tmp_path / "..data_tmp"
    tmp.symlink_to("b")
    os.replace(tmp, tmp_path / "..data")  # same content, same size: another file
    after = file_signature(link)
    assert after is not None and after != before
    assert file_signature(tmp_path / "missing.yaml") is None


def test_routing_swap_adds_senders_first_and_prunes_idle_retired_ones(tmp_path: Path) -> None:
    old, new = rules(tmp_path, "old"), rules(tmp_path, "new")
    old_target, new_target = old.targets["old"], new.targets["new"]
    busy = FakeSender(busy=True)
    routing = Routing(old, {old_target: busy})  # type: ignore[dict-item]
    assert routing.needs_sender(new) == [new_target]
    with pytest.raises(ValueError, match="no sender"):
        routing.swap(new, {})
    assert routing.rules is old  # nothing changed
    fresh = FakeSender()
    routing.swap(new, {new_target: fresh})  # type: ignore[dict-item]
    assert routing.rules is new and routing.sender(new_target) is fresh
    assert routing.prune() == []  # the retired sender still has copies pending
    assert routing.sender(old_target) is busy
    busy.batcher.busy = False
    assert routing.prune() == [old_target]
    assert routing.senders == [fresh]


async def test_reloader_counts_results_and_tries_each_changed_file_once(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("v1")
    stats = Stats()
    loads: list[str] = []
    applied: list[RuleSet] = []

    def load() -> RuleSet:
        text = path.read_text()
        loads.append(text)
        if text.startswith("broken"):
            raise RulesError(path, "bad", where="rule 'r'", fix="fix it")
        return rules(tmp_path, "t")

    async def apply(new: RuleSet) -> RulesChange:
        applied.append(new)
        return RulesChange(1, 1, (), ())

    reloader = RulesReloader(path, load, apply, stats, watch=True, interval=0.02)
    task = asyncio.create_task(reloader.run())
    try:
        await asyncio.sleep(0.1)
        assert loads == []  # unchanged file
        path.write_text("broken file")
        await until(lambda: stats.reloads == {"error": 1})
        await asyncio.sleep(0.2)  # ten more polls of the same broken file
        assert loads == ["broken file"]  # tried once, not once per poll
        path.write_text("v2 fixed")
        await until(lambda: len(applied) == 1)
        assert loads == ["broken file", "v2 fixed"]
        reloader.request()  # SIGHUP: reloads even an unchanged file
        await until(lambda: len(applied) == 2)
        assert stats.reloads == {"error": 1, "ok": 2}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_reloads_metric_has_a_result_attribute() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    stats = Stats()
    stats.reloads.update({"ok": 2, "error": 1})
    observe_stats(meter, stats, lambda: 0, source="src", target_queues={}, dlq_queue=None)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[Any, int] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "fanout.rules.reloads":
                    for point in metric.data.data_points:
                        points[dict(point.attributes or {})["result"]] = int(point.value)
    assert points == {"ok": 2, "error": 1}
