"""The workload every system sees: seeded synthetic Genesys bodies, a rules file, the queues it
names, and the copies each event must produce (the correctness reference)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from fanout.events import parse_event
from fanout.local.synthetic import GenesysEventGenerator
from fanout.rules import load_rules_unresolved

REPO = Path(__file__).resolve().parent.parent
SHIPPED_RULES = REPO / "rules.yaml"
_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class TargetSpec:
    name: str
    env_var: str | None  # the ${VAR} its queue_url names (None: a literal URL)
    fifo: bool


@dataclass(frozen=True)
class Workload:
    """``rules``: "shipped" (rules.yaml) or a rule count for bench/rulesets.py."""

    n: int
    seed: int = 0
    size: int | None = None
    rules: str = "shipped"

    @property
    def label(self) -> str:
        size = f"{self.size // 1024}KB" if self.size else "~1KB"
        return f"{self.n} events, {size}, rules={self.rules}, seed {self.seed}"


def bodies(n: int, seed: int = 0, size: int | None = None) -> list[str]:
    """``n`` valid SQS bodies (EventBridge envelopes); ``size`` pads each to that many bytes."""
    return GenesysEventGenerator(seed=seed, pad_to=size).bodies(n)


def rules_text(spec: str) -> str:
    if spec == "shipped":
        return SHIPPED_RULES.read_text()
    from fanout.testing.rulesets import ruleset_yaml

    return ruleset_yaml(int(spec))


def targets_of(text: str) -> list[TargetSpec]:
    raw = yaml.safe_load(text)
    out = []
    for name, spec in raw["targets"].items():
        url = str(spec["queue_url"])
        var = _VAR.match(url)
        fifo = "fifo" in spec or url.endswith(".fifo")
        out.append(TargetSpec(name, var.group(1) if var else None, fifo))
    return out


def queue_env(targets: list[TargetSpec], urls: dict[str, str]) -> dict[str, str]:
    """Environment that points each target's ${VAR} at ``urls[name]``."""
    return {t.env_var: urls[t.name] for t in targets if t.env_var}


def expected_copies(body_list: list[str], rules_path: Path) -> dict[str, tuple[str, ...]]:
    """event id -> target names that must receive a copy (fanout's matcher on the envelope)."""
    ruleset = load_rules_unresolved(rules_path)
    out: dict[str, tuple[str, ...]] = {}
    for body in body_list:
        event = parse_event(body)
        out[event.id] = tuple(t.name for t in ruleset.match(event.data).targets)
    return out


def event_id_of(body: str | bytes) -> str:
    data: Any = orjson.loads(body)
    return str(data["id"])
