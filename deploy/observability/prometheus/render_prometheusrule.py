"""Writes the kustomize component's PrometheusRule from fanout-rules.yaml (one source for both):
`python deploy/observability/prometheus/render_prometheusrule.py`. tests/unit/test_observability.py
fails when the committed file differs from what this writes."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "fanout-rules.yaml"
OUT = HERE.parents[1] / "kubernetes" / "components" / "prometheus-rules" / "prometheusrule.yaml"
HEADER = """\
# GENERATED from deploy/observability/prometheus/fanout-rules.yaml by render_prometheusrule.py:
# edit that file and run the script. prometheus-operator's PrometheusRule with fanout's alerts.
"""


def render() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "fanout", "labels": {"app.kubernetes.io/name": "fanout"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=100)


if __name__ == "__main__":
    OUT.write_text(render())
    sys.stdout.write(f"wrote {OUT}\n")
