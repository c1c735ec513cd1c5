"""Run counters behind the exit summary and the live display (one instance per run)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fanout.outcomes import ErrorKind


@dataclass
class Stats:
    started_at: float = field(default_factory=time.monotonic)
    received: int = 0
    # Receives of a message SQS had handed out before (ApproximateReceiveCount > 1): visibility
    # timeouts, released or abandoned messages, a crashed predecessor's messages.
    redelivered: int = 0
    processed: int = 0
    deleted: int = 0
    released: int = 0
    abandoned: int = 0
    unmatched: int = 0
    defaulted: int = 0
    expired_receipts: int = 0
    visibility_extended: int = 0
    per_rule: Counter[str] = field(default_factory=Counter)
    per_target: Counter[str] = field(default_factory=Counter)
    dlq: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    # SQS calls refused for fanout's own credentials or clock, by error code (fanout.aws.outage)
    credential_errors: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    reloads: Counter[str] = field(default_factory=Counter)  # by ReloadResult
    peak_in_flight_bytes: int = 0  # set at the end of a run (InFlight.peak_bytes)
    task_crashes: Counter[str] = field(default_factory=Counter)  # by task name
    crash_loop: str | None = None  # the task whose crash loop stopped the run (exit 1)
    # Adaptive concurrency (pipeline.poller.Pollers, pipeline.concurrency.AimdLimit): the
    # pollers running now and at most; each queue's limit on calls in flight (a target's name,
    # ``dlq``, ``delete``) now and at most.
    pollers: int = 0
    peak_pollers: int = 0
    concurrency: dict[str, int] = field(default_factory=dict)
    peak_concurrency: dict[str, int] = field(default_factory=dict)

    def error(self, kind: ErrorKind, code: str | None = None) -> None:
        """Count one error under its summary key (``send:ThrottlingException``)."""
        self.errors[kind.key(code)] += 1

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started_at, 1e-9)

    def summary(self) -> dict[str, Any]:
        return {
            "elapsed_seconds": round(self.elapsed, 3),
            "received": self.received,
            "redelivered": self.redelivered,
            "processed": self.processed,
            "deleted": self.deleted,
            "events_per_second": round(self.processed / self.elapsed, 2),
            "per_rule": dict(sorted(self.per_rule.items())),
            "per_target": dict(sorted(self.per_target.items())),
            "unmatched": self.unmatched,
            "default_targets": self.defaulted,
            "dlq": dict(sorted(self.dlq.items())),
            "dlq_total": sum(self.dlq.values()),
            "errors": dict(sorted(self.errors.items())),
            "retries": dict(sorted(self.retries.items())),
            "credential_errors": dict(sorted(self.credential_errors.items())),
            "released": self.released,
            "abandoned": self.abandoned,
            "expired_receipts": self.expired_receipts,
            "visibility_extended": self.visibility_extended,
            "sqs_calls": dict(sorted(self.calls.items())),
            "rules_reloads": dict(sorted(self.reloads.items())),
            "peak_in_flight_bytes": self.peak_in_flight_bytes,
            "task_crashes": dict(sorted(self.task_crashes.items())),
            "crash_loop": self.crash_loop,
            "peak_pollers": self.peak_pollers,
            "peak_concurrency": dict(sorted(self.peak_concurrency.items())),
        }


def merge_summaries(
    summaries: list[dict[str, Any]], *, elapsed: float, processes: int, restarts: int
) -> dict[str, Any]:
    """One summary for ``--processes N``: the children's counters summed (numbers, and the
    per-key counts), events/s over the supervisor's wall time. A child killed with SIGKILL
    wrote no summary: its counts are missing, its restart is counted."""
    merged: dict[str, Any] = Stats().summary()
    for summary in summaries:
        for key, value in summary.items():
            if key in ("elapsed_seconds", "events_per_second") or key not in merged:
                continue
            if isinstance(value, dict):
                counts: Counter[str] = Counter(merged[key])
                counts.update(value)
                merged[key] = dict(sorted(counts.items()))
            elif isinstance(value, int | float):
                merged[key] += value
    elapsed = max(elapsed, 1e-9)
    merged["elapsed_seconds"] = round(elapsed, 3)
    merged["events_per_second"] = round(merged["processed"] / elapsed, 2)
    merged["processes"] = processes
    merged["child_summaries"] = len(summaries)
    merged["restarts"] = restarts
    return merged


def render_summary(summary: dict[str, Any]) -> str:
    """Human-readable multi-line summary printed on exit."""

    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"

    lines = [
        "fanout summary",
        f"  received     {summary['received']} in {summary['elapsed_seconds']:.1f}s "
        f"({summary['events_per_second']:.1f} events/s), deleted {summary['deleted']}",
        f"  redelivered  {summary['redelivered']} of the receives (ApproximateReceiveCount > 1: "
        "a visibility timeout, a release, a restart)",
        f"  per rule     {counts(summary['per_rule'])}",
        f"  per target   {counts(summary['per_target'])}",
        f"  unmatched    {summary['unmatched']} (to default targets: {summary['default_targets']})",
        f"  DLQ          {summary['dlq_total']} ({counts(summary['dlq'])})",
        f"  errors       {counts(summary['errors'])}",
        f"  retries      {counts(summary['retries'])}",
        f"  released {summary['released']}, left for redelivery {summary['abandoned']}, "
        f"expired receipts {summary['expired_receipts']}",
        f"  SQS calls    {counts(summary['sqs_calls'])}",
        f"  concurrency  pollers at most {summary.get('peak_pollers', 0)}; calls in flight at "
        f"most {counts(summary.get('peak_concurrency', {}))}",
    ]
    if summary.get("task_crashes"):
        loop = (
            f" (crash loop: {summary['crash_loop']}, exit 1)" if summary.get("crash_loop") else ""
        )
        lines.append(f"  task crashes {counts(summary['task_crashes'])}{loop}")
    if summary.get("credential_errors"):
        lines.append(
            f"  credentials  {counts(summary['credential_errors'])} (calls refused for fanout's "
            "own credentials or clock: held and retried, never dead-lettered)"
        )
    if summary["rules_reloads"]:
        lines.append(f"  rules reloads {counts(summary['rules_reloads'])}")
    if "processes" in summary:
        lines.append(
            f"  processes    {summary['processes']} ({summary['child_summaries']} child "
            f"summaries merged), restarts {summary['restarts']}"
        )
    return "\n".join(lines)
