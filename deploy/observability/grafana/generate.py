"""Writes fanout.json, the Grafana dashboard, with grafana-foundation-sdk (Grafana's own typed
builders: the JSON model's field names, defaults and schema version come from Grafana, not from
us). Run after an edit: `python deploy/observability/grafana/generate.py`;
tests/unit/test_observability.py fails when fanout.json differs from what this writes.

Every query names only metrics that `fanout run` serves on /metrics with
OTEL_METRICS_EXPORTER=prometheus (that test scrapes a real run and checks). A row is a title
and a list of panels in ``ROWS``: adding one is a few lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableHide,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).with_name("fanout.json")
UID = "fanout-overview"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query's label filter: the variables at the top of the dashboard. "All" is ".*", which
# also matches a missing label (fanout_process exists only under `fanout run --processes N`).
S = 'namespace=~"$namespace", job=~"$job", instance=~"$instance", fanout_process=~"$fanout_process"'
RATE = "$__rate_interval"


def q(expr: str, legend: str = "") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    return query.legend_format(legend) if legend else query


def ts(
    title: str, unit: str, *queries: prometheus.Dataquery, width: int = 8, help: str = ""
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
        .fill_opacity(10)
        .legend(
            common.VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)
        )
    )
    if help:
        panel = panel.description(help)
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query.ref_id(ref))
    return panel


def single(title: str, unit: str, query: prometheus.Dataquery, help: str = "") -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(4)
        .height(4)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return (panel.description(help) if help else panel).with_target(query.ref_id("A"))


def quantiles(metric: str, by: str = "") -> list[prometheus.Dataquery]:
    group = f"{by}, le" if by else "le"
    prefix = "{{" + by + "}} " if by else ""
    return [
        q(
            f"histogram_quantile({p}, sum by ({group}) (rate({metric}_bucket{{{S}}}[{RATE}])))",
            f"{prefix}p{round(p * 100)}",
        )
        for p in (0.5, 0.99)
    ]


CALLS = "messaging_client_operation_duration_seconds"
ROWS = [
    (
        "Overview",
        [
            single(
                "Ready processes",
                "none",
                q(f"sum(fanout_ready{{{S}}})"),
                "Processes whose /readyz answers 200 (fanout_ready)",
            ),
            single(
                "Events/s received",
                "reqps",
                q(f"sum(rate(messaging_client_consumed_messages_total{{{S}}}[{RATE}]))"),
            ),
            single(
                "Copies/s accepted",
                "reqps",
                q(f"sum(rate(fanout_copies_total{{{S}}}[{RATE}]))"),
            ),
            single(
                "DLQ records/s",
                "reqps",
                q(f"sum(rate(fanout_dlq_writes_total{{{S}}}[{RATE}]))"),
            ),
            single(
                "Lag p99",
                "s",
                q(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(fanout_lag_seconds_bucket{{{S}}}[{RATE}])))"
                ),
            ),
            single(
                "In flight / limit",
                "percentunit",
                q(f"max(fanout_inflight_messages{{{S}}} / fanout_inflight_limit{{{S}}})"),
                "The fullest process's share of FANOUT_MAX_IN_FLIGHT",
            ),
        ],
    ),
    (
        "Events",
        [
            ts(
                "Events/s received and by outcome",
                "reqps",
                q(
                    f"sum(rate(messaging_client_consumed_messages_total{{{S}}}[{RATE}]))",
                    "received",
                ),
                q(
                    "sum by (fanout_outcome) "
                    f"(rate(messaging_process_duration_seconds_count{{{S}}}[{RATE}]))",
                    "{{fanout_outcome}}",
                ),
                help="outcome: sent (matched and copied), unmatched, dlq",
            ),
            ts(
                "Copies/s per target",
                "reqps",
                q(
                    f"sum by (fanout_target) (rate(fanout_copies_total{{{S}}}[{RATE}]))",
                    "{{fanout_target}}",
                ),
            ),
            ts(
                "DLQ records/s by reason",
                "reqps",
                q(
                    f"sum by (fanout_dlq_reason) (rate(fanout_dlq_writes_total{{{S}}}[{RATE}]))",
                    "{{fanout_dlq_reason}}",
                ),
                help="Docs: Operations, what happens to a failed event; `fanout dlq inspect` shows them",
            ),
            ts(
                "Rule matches/s",
                "reqps",
                q(
                    f"sum by (fanout_rule_id) (rate(fanout_rule_matches_total{{{S}}}[{RATE}]))",
                    "{{fanout_rule_id}}",
                ),
                q(f"sum(rate(fanout_unmatched_total{{{S}}}[{RATE}]))", "unmatched"),
            ),
            ts(
                "Lag p50 / p99",
                "s",
                *quantiles("fanout_lag_seconds"),
                help="Source SentTimestamp to the last target accepting the event's copy",
            ),
            ts(
                "Process duration p50 / p99",
                "s",
                *quantiles("messaging_process_duration_seconds"),
                help="Validate + match + hand-off per event",
            ),
        ],
    ),
    (
        "In flight",
        [
            ts(
                "In-flight messages and limit",
                "short",
                q(
                    f"fanout_inflight_messages{{{S}}}",
                    "{{instance}} {{fanout_process}} in flight",
                ),
                q(f"fanout_inflight_limit{{{S}}}", "{{instance}} {{fanout_process}} limit"),
                width=12,
            ),
            ts(
                "In-flight body bytes and limit",
                "bytes",
                q(f"fanout_inflight_bytes{{{S}}}", "{{instance}} {{fanout_process}} in flight"),
                q(
                    f"fanout_inflight_bytes_limit_bytes{{{S}}}",
                    "{{instance}} {{fanout_process}} limit",
                ),
                width=12,
            ),
        ],
    ),
    (
        "SQS calls",
        [
            ts(
                "Calls/s by operation",
                "reqps",
                q(
                    f"sum by (messaging_operation_name) (rate({CALLS}_count{{{S}}}[{RATE}]))",
                    "{{messaging_operation_name}}",
                ),
            ),
            ts(
                "Failed calls/s by operation and code",
                "reqps",
                q(
                    "sum by (messaging_operation_name, error_type) "
                    f'(rate({CALLS}_count{{{S}, error_type!=""}}[{RATE}]))',
                    "{{messaging_operation_name}} {{error_type}}",
                ),
            ),
            ts(
                "Retries/s by code",
                "reqps",
                q(
                    f"sum by (error_type) (rate(fanout_retries_total{{{S}}}[{RATE}]))",
                    "{{error_type}}",
                ),
                help="Retried batch calls and entries (throttles, 5xx, network)",
            ),
            ts(
                "Throttles/s by queue",
                "reqps",
                q(
                    "sum by (messaging_destination_name) "
                    f'(rate({CALLS}_count{{{S}, error_type=~"(?i).*throttl.*"}}[{RATE}]))',
                    "{{messaging_destination_name}} calls",
                ),
                q(
                    "sum by (error_type) "
                    f'(rate(fanout_retries_total{{{S}, error_type=~"(?i).*throttl.*"}}[{RATE}]))',
                    "{{error_type}} retries",
                ),
                help="Docs: Operations, long throttles and outages of one target",
            ),
            ts(
                "Call duration p50 / p99 by operation",
                "s",
                *quantiles(CALLS, "messaging_operation_name"),
            ),
            ts(
                "Batch fill (entries per SendMessageBatch)",
                "short",
                q(
                    f"sum(rate(fanout_batch_entries_sum{{{S}}}[{RATE}])) / "
                    f"sum(rate(fanout_batch_entries_count{{{S}}}[{RATE}]))",
                    "mean entries",
                ),
                help="10 is a full batch; FANOUT_LINGER_MS trades latency for fill",
            ),
        ],
    ),
    (
        "Rules",
        [
            ts(
                "Rules reloads by result",
                "short",
                q(
                    f"sum by (result) (increase(fanout_rules_reloads_total{{{S}}}[{RATE}]))",
                    "{{result}}",
                ),
                help="error: the new rules were rejected and the old ones stayed in force",
                width=24,
            ),
        ],
    ),
    (
        "Processes and hosts",
        [
            ts(
                "Events/s per host",
                "reqps",
                q(
                    "sum by (instance) "
                    f"(rate(messaging_client_consumed_messages_total{{{S}}}[{RATE}]))",
                    "{{instance}}",
                ),
                help="One host (pod, task) is one instance",
            ),
            ts(
                "Events/s per process",
                "reqps",
                q(
                    "sum by (instance, fanout_process) "
                    f"(rate(messaging_client_consumed_messages_total{{{S}}}[{RATE}]))",
                    "{{instance}} {{fanout_process}}",
                ),
                help="fanout_process: the child of `fanout run --processes N`",
            ),
            ts(
                "Ready (1) per process",
                "none",
                q(f"fanout_ready{{{S}}}", "{{instance}} {{fanout_process}}"),
            ),
            ts(
                "Child restarts",
                "short",
                q(
                    "sum by (instance, fanout_process) "
                    f"(increase(fanout_child_restarts_total{{{S}}}[{RATE}]))",
                    "{{instance}} {{fanout_process}}",
                ),
                help="Restarts by the supervisor of `fanout run --processes N`",
            ),
            ts(
                "In flight per host",
                "short",
                q(f"sum by (instance) (fanout_inflight_messages{{{S}}})", "{{instance}}"),
            ),
            ts(
                "Lag p99 per host",
                "s",
                q(
                    "histogram_quantile(0.99, sum by (instance, le) "
                    f"(rate(fanout_lag_seconds_bucket{{{S}}}[{RATE}])))",
                    "{{instance}}",
                ),
            ),
        ],
    ),
    (
        "Adaptive concurrency",
        [
            ts(
                "Pollers",
                "short",
                q(f"fanout_pollers{{{S}}}", "{{instance}} {{fanout_process}}"),
                help="ReceiveMessage loops running: FANOUT_POLLERS (floor) to FANOUT_MAX_POLLERS",
            ),
            ts(
                "Send concurrency per target",
                "short",
                q(
                    f"max by (fanout_target) (fanout_send_concurrency{{{S}}})",
                    "{{fanout_target}}",
                ),
                help="SendMessageBatch calls allowed in flight (AIMD: drops on throttles)",
            ),
            ts(
                "Delete concurrency",
                "short",
                q(f"fanout_delete_concurrency{{{S}}}", "{{instance}} {{fanout_process}}"),
                help="DeleteMessageBatch calls allowed in flight",
            ),
        ],
    ),
]


# A new row is one more (title, panels) entry; then run this script: test_operating.py checks
# the metric names against a real run's /metrics.


def variable(name: str, query: str, label: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".*")
        .multi(True)
    )


def build() -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard("fanout")
        .uid(UID)
        .tags(["fanout", "sqs"])
        .description("fanout: events, copies, DLQ, lag, in-flight budget, SQS calls, processes")
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(variable("namespace", "label_values(fanout_ready, namespace)", "Namespace"))
        .with_variable(
            variable("job", 'label_values(fanout_ready{namespace=~"$namespace"}, job)', "Job")
        )
        .with_variable(
            variable(
                "instance",
                'label_values(fanout_ready{namespace=~"$namespace", job=~"$job"}, instance)',
                "Instance",
            )
        )
        .with_variable(
            variable(
                "fanout_process",
                'label_values(fanout_ready{namespace=~"$namespace", job=~"$job", '
                'instance=~"$instance"}, fanout_process)',
                "Process",
            ).hide(VariableHide.DONT_HIDE)
        )
    )
    for title, panels in ROWS:
        board = board.with_row(dashboard.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    sys.stdout.write(f"wrote {OUT}\n")
