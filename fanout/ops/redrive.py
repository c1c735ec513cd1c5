"""``fanout dlq redrive``: deliver dead-lettered copies to the targets that missed them.

Per record: the copy goes to the record's failed targets only (targets that accepted it the
first time are not sent it again), built by the pipeline's own ``make_copies`` so attributes and
FIFO ids are those of the original send (version-2 records carry the exact FIFO ids; for older
ones they are computed again from the rules, as the service computed them). Records that hold no
copy to deliver (bad input, internal errors, foreign messages) go back to the source queue, and
only with ``--to-source``.

Nothing is lost, whatever happens: a DLQ record is deleted only after every copy it stands for
was accepted. When only some of its targets took their copy, a new record naming the others is
written first and the old one deleted after. Records left alone are released (visible again)
at the end; after a kill -9 they come back when the reader's hold runs out. The worst case is
a copy sent twice (killed between a send and the delete): a FIFO target drops it, as the
deduplication id is the original one, within its 5-minute window.

A target that is missing or denied stops the redrive for that target only, with one line; its
records stay in the DLQ.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from fanout.aws.batch import call_batch
from fanout.aws.checks import queue_problem
from fanout.aws.retry import QUEUE_WIDE_CODES, Backoff, Failure
from fanout.aws.urls import is_fifo
from fanout.errors import ConfigError
from fanout.events import InvalidEvent, parse_event
from fanout.observability.stats import Stats
from fanout.ops.reader import DlqReader, RateLimit, call_paced
from fanout.ops.records import DlqRecord
from fanout.pipeline.copies import (
    Copy,
    Received,
    dlq_target,
    encode_record,
    make_copies,
    make_copy,
    outgoing_attributes,
    pack,
    record_attributes,
)
from fanout.rules.model import FifoSettings, Target

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

# --- planning (pure) ------------------------------------------------------------------------


class Action(StrEnum):
    """What the redrive does with one record."""

    DELIVER = "deliver"  # copies to (some of) its failed targets
    TO_SOURCE = "to_source"  # the body back to the source queue
    KEEP = "keep"  # stays in the DLQ (why says why)
    SKIP = "skip"  # not selected by the filters: untouched


KEEP_BAD_INPUT = "bad input: back to the source queue only with --to-source"
KEEP_NO_TARGET = "no copy to deliver: back to the source queue only with --to-source"


@dataclass(frozen=True, slots=True)
class Filters:
    reasons: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()
    since: datetime | None = None

    def accepts(self, record: DlqRecord) -> bool:
        if self.reasons and record.reason not in self.reasons:
            return False
        if self.targets and not self.targets.intersection(record.failed_targets):
            return False
        return self.since is None or (record.time is not None and record.time >= self.since)


@dataclass(frozen=True, slots=True)
class Plan:
    record: DlqRecord
    action: Action
    targets: tuple[str, ...] = ()  # to deliver to in this run
    why: str = ""


def plan_record(
    record: DlqRecord, filters: Filters, *, known_targets: Collection[str], to_source: bool
) -> Plan:
    """What to do with ``record`` (before any target turned out to be missing)."""
    if not filters.accepts(record):
        return Plan(record, Action.SKIP, why="not selected by the filters")
    if record.needs_source:
        if to_source:
            return Plan(record, Action.TO_SOURCE)
        why = KEEP_BAD_INPUT if record.is_bad_input else KEEP_NO_TARGET
        return Plan(record, Action.KEEP, why=why)
    chosen = [t for t in record.failed_targets if not filters.targets or t in filters.targets]
    unknown = [t for t in chosen if t not in known_targets]
    deliver = tuple(t for t in chosen if t in known_targets)
    if not deliver:
        return Plan(record, Action.KEEP, why=f"not in the rules file: {', '.join(unknown)}")
    return Plan(record, Action.DELIVER, targets=deliver)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (UTC unless it says otherwise) or an age: 30m, 2h, 1d."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since: {text!r} is neither an ISO 8601 time nor an age like 30m, 2h, 1d"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def narrowed_record(record: DlqRecord, remaining: Iterable[str]) -> dict[str, Any]:
    """The record again, naming only the targets that still miss their copy."""
    left = sorted(remaining)
    raw = dict(record.raw)
    raw["version"] = max(2, record.version)
    raw["failed_targets"] = left
    raw["fifo_ids"] = {t: ids for t, ids in record.fifo_ids.items() if t in left}
    return raw


def to_received(record: DlqRecord) -> Received:
    """The record as the source message it was, for the pipeline's copy builders."""
    message = Received(
        message_id=record.source_message_id or record.message_id,
        receipt_handle=record.receipt_handle,
        body=record.body,
        message_attributes=record.message_attributes,
    )
    try:
        message.event = parse_event(record.body)  # the data a FIFO group expression reads
    except InvalidEvent:
        message.event = None
    return message


def redrive_copies(record: DlqRecord, targets: Iterable[Target]) -> list[Copy]:
    """One copy per target, as the service built it; the record's FIFO ids win (the rules'
    group expression may have changed since)."""
    copies = make_copies(to_received(record), tuple(targets), record.body, record.event_id)
    for copy in copies:
        ids = record.fifo_ids.get(copy.target.name)
        if ids and copy.target.fifo is not None:
            copy.entry.update(ids)
            if copy.target.fifo.deduplication == "content":
                copy.entry.pop("MessageDeduplicationId", None)
    return copies


# --- report ---------------------------------------------------------------------------------


@dataclass
class Report:
    dry_run: bool = False
    read: int = 0
    delivered: int = 0  # records whose every copy was accepted (deleted)
    to_source: int = 0
    narrowed: int = 0  # some copies accepted: a record naming the rest replaced it
    skipped: int = 0
    copies: Counter[str] = field(default_factory=Counter)  # accepted, by target
    kept: Counter[str] = field(default_factory=Counter)  # why -> records
    failed: Counter[str] = field(default_factory=Counter)  # target:code -> copies
    stopped: dict[str, str] = field(default_factory=dict)  # target -> problem
    not_deleted: int = 0  # delete failed after delivery: the record comes back (duplicate)
    lines: list[str] = field(default_factory=list)  # --dry-run: one line per record

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "read": self.read,
            "delivered": self.delivered,
            "to_source": self.to_source,
            "narrowed": self.narrowed,
            "skipped": self.skipped,
            "kept": dict(self.kept),
            "copies": dict(self.copies),
            "failed_copies": dict(self.failed),
            "stopped_targets": dict(self.stopped),
            "not_deleted": self.not_deleted,
        }

    def render(self, url: str) -> str:
        would = "would be " if self.dry_run else ""
        head = "dry run: nothing sent or deleted" if self.dry_run else "redrive"
        lines = [f"{head}: DLQ {url}: {self.read} records read"]
        copies = ", ".join(f"{t} {n}" for t, n in sorted(self.copies.items())) or "none"
        lines.append(f"  {would}delivered and deleted: {self.delivered} (copies: {copies})")
        lines.append(f"  {would}sent back to the source queue: {self.to_source}")
        if self.narrowed:
            lines.append(
                f"  {would}partly delivered, the rest kept in a new record: {self.narrowed}"
            )
        for why, n in sorted(self.kept.items()):
            lines.append(f"  kept in the DLQ: {n} ({why})")
        if self.skipped:
            lines.append(f"  not selected by the filters (untouched): {self.skipped}")
        for key, n in sorted(self.failed.items()):
            lines.append(f"  copies failed: {key}: {n} (their records stay)")
        for target, problem in sorted(self.stopped.items()):
            lines.append(f"  stopped: target '{target}' {problem}")
        if self.not_deleted:
            lines.append(
                f"  delivered but not deleted: {self.not_deleted} (they come back; "
                "a repeat is a duplicate on standard targets, dropped by FIFO ones)"
            )
        return "\n".join(lines)

    @property
    def complete(self) -> bool:
        """Every selected record was dealt with as asked."""
        return not (self.stopped or self.failed or self.not_deleted) and not any(
            why.startswith("not in the rules file") for why in self.kept
        )


# --- execution ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    filters: Filters = Filters()
    limit: int | None = None
    to_source: bool = False
    dry_run: bool = False


class Redrive:
    """Runs one redrive over ``reader``'s records (see the module docstring).

    Parameters:
        client: the SQS client (injected).
        reader: the DLQ, read with a hold.
        targets: the rules file's targets, by name.
        source_url: the source queue (for ``--to-source``), or None.
        options: filters, limit, --to-source, --dry-run.
        rate: bounds every SQS call (the reader shares it).
        say: prints one line (stop lines; dry-run lines).
        progress: told how many records were just dealt with.
    """

    def __init__(
        self,
        client: SQSClient,
        reader: DlqReader,
        targets: Mapping[str, Target],
        *,
        source_url: str | None,
        options: Options,
        backoff: Backoff,
        rate: RateLimit,
        say: Callable[[str], None] = print,
        progress: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._client = client
        self._reader = reader
        self._targets = dict(targets)
        self._source = (
            Target(
                "source",
                source_url,
                FifoSettings(None, "event_id") if is_fifo(source_url) else None,
            )
            if source_url
            else None
        )
        self._dlq = dlq_target(reader.url)
        self._options = options
        self._backoff = backoff
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        self._rate = rate
        self._say = say
        self._progress = progress
        self._checked: set[str] = set()
        self._stats = Stats()
        self.report = Report(dry_run=options.dry_run)

    async def run(self) -> Report:
        if self._options.to_source and self._source is None:
            raise ConfigError(
                "--to-source needs the source queue: set FANOUT_SOURCE_QUEUE_URL "
                "or pass --source-queue-url"
            )
        try:
            async for batch in self._reader.records(self._options.limit):
                await self._handle(batch)
        finally:
            await self._reader.release()  # everything not deleted is visible again now
        return self.report

    async def _handle(self, batch: list[DlqRecord]) -> None:
        report = self.report
        report.read += len(batch)
        plans = [
            plan_record(
                record,
                self._options.filters,
                known_targets=self._targets,
                to_source=self._options.to_source,
            )
            for record in batch
        ]
        # One check per queue, before its first send: a missing one stops with one line.
        for name in sorted({t for p in plans if p.action is Action.DELIVER for t in p.targets}):
            await self._check(self._targets[name])
        if any(p.action is Action.TO_SOURCE for p in plans) and self._source is not None:
            await self._check(self._source)
        deliver: list[tuple[DlqRecord, list[Target]]] = []
        back: list[DlqRecord] = []
        for plan in plans:
            if plan.action is Action.SKIP:
                report.skipped += 1
            elif plan.action is Action.KEEP:
                report.kept[plan.why] += 1
                self._dry(plan.record, f"keep ({plan.why})")
            elif plan.action is Action.TO_SOURCE:
                if self._source is not None and self._source.name in self.report.stopped:
                    report.kept["source queue stopped"] += 1
                else:
                    back.append(plan.record)
            else:
                live = [self._targets[t] for t in plan.targets if t not in report.stopped]
                if live:
                    deliver.append((plan.record, live))
                else:
                    report.kept["target stopped"] += 1
        await self._deliver(deliver)
        await self._back_to_source(back)
        self._progress(len(batch))

    def _dry(self, record: DlqRecord, what: str) -> None:
        if self._options.dry_run:
            self._say(
                f"record {record.message_id} (event {record.event_id or '-'}, {record.reason}): "
                f"would {what}"
            )

    async def _check(self, target: Target) -> None:
        if target.queue_url in self._checked or target.name in self.report.stopped:
            return
        self._checked.add(target.queue_url)
        try:
            await self._call(
                functools.partial(
                    self._client.get_queue_attributes,
                    QueueUrl=target.queue_url,
                    AttributeNames=["QueueArn"],
                )
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            problem = queue_problem(exc)
            if problem is None:
                raise
            self._stop(target, problem)

    def _stop(self, target: Target, problem: str) -> None:
        if target.name in self.report.stopped:
            return
        self.report.stopped[target.name] = f"{target.queue_url} {problem}"
        label = "source queue" if target is self._source else f"target '{target.name}'"
        self._say(
            f"fanout: {label} {target.queue_url} {problem}: redrive stopped for it, "
            "its records stay in the DLQ"
        )

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        return await call_paced(self._rate, call, self._backoff, self._rng)

    async def _send(self, target: Target, copies: list[Copy]) -> dict[Copy, Failure | None]:
        """Every copy to ``target``, in batches; each copy's end (None: accepted)."""
        results: dict[Copy, Failure | None] = {}

        def settled(copy: Copy, failure: Failure | None) -> None:
            results[copy] = failure

        async def call(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
            await self._rate.wait()
            return await self._client.send_message_batch(
                QueueUrl=target.queue_url,
                Entries=entries,  # type: ignore[arg-type]
            )

        for batch in pack((c, c.size) for c in copies):
            if target.name in self.report.stopped:
                break
            await call_batch(
                "SendMessageBatch",
                call,
                batch,
                lambda c: c.entry,
                settled,
                backoff=self._backoff,
                rng=self._rng,
                stats=self._stats,
            )
            for copy in batch:
                failure = results.get(copy)
                if failure is not None and failure.code in QUEUE_WIDE_CODES:
                    self._stop(target, f"refused the copy: {failure.code}")
        return results

    async def _deliver(self, work: list[tuple[DlqRecord, list[Target]]]) -> None:
        report = self.report
        by_target: dict[str, list[Copy]] = {}
        owner: dict[Copy, DlqRecord] = {}
        for record, targets in work:
            for copy in redrive_copies(record, targets):
                by_target.setdefault(copy.target.name, []).append(copy)
                owner[copy] = record
        if self._options.dry_run:
            for record, targets in work:
                names = ", ".join(t.name for t in targets)
                left = set(record.failed_targets) - {t.name for t in targets}
                rest = f"; kept for {', '.join(sorted(left))}" if left else ""
                self._dry(record, f"deliver to {names}{rest}")
                report.copies.update(t.name for t in targets)
                if left:
                    report.narrowed += 1
                else:
                    report.delivered += 1
            return
        accepted: dict[str, set[str]] = {}  # record message id -> targets that took the copy
        for name, copies in by_target.items():
            results = await self._send(self._targets[name], copies)
            for copy in copies:
                failure = results.get(copy, Failure("NotSent", "target stopped", False))
                if failure is None:
                    report.copies[name] += 1
                    accepted.setdefault(owner[copy].message_id, set()).add(name)
                elif failure.code != "NotSent":
                    report.failed[f"{name}:{failure.code}"] += 1
        done: list[DlqRecord] = []
        for record, _ in work:
            took = accepted.get(record.message_id, set())
            left = set(record.failed_targets) - took
            if not took:
                report.kept["not delivered"] += 1
            elif not left:
                done.append(record)
            elif await self._replace(record, left):
                report.narrowed += 1
            else:
                report.kept["partly delivered, new record not written"] += 1
        failed = await self._reader.delete(done)
        report.not_deleted += len(failed)
        report.delivered += len(done) - len(failed)

    async def _replace(self, record: DlqRecord, left: set[str]) -> bool:
        """Write a record naming only ``left``, then delete the old one: the order keeps every
        missing copy on record, whatever stops the process in between."""
        raw = narrowed_record(record, left)
        body = encode_record(raw)
        received = to_received(record)
        attrs = record_attributes(record.reason, record.event_id)
        copy = make_copy(received, self._dlq, body, record.event_id, attributes=attrs)
        if self._dlq.fifo is not None:
            # Not the original record's id: SQS would take the new record as its duplicate.
            key = (
                f"{record.event_id or record.source_message_id}\x00dlq\x00{','.join(sorted(left))}"
            )
            copy.entry["MessageDeduplicationId"] = hashlib.sha256(key.encode()).hexdigest()
        results = await self._send(self._dlq, [copy])
        if results.get(copy, Failure("NotSent", "", False)) is not None:
            return False
        if await self._reader.delete([record]):
            self.report.not_deleted += 1
        return True

    async def _back_to_source(self, records: list[DlqRecord]) -> None:
        source = self._source
        if not records or source is None:
            return
        if self._options.dry_run:
            for record in records:
                self._dry(record, "go back to the source queue")
            self.report.to_source += len(records)
            return
        copies: dict[Copy, DlqRecord] = {}
        for record in records:
            received = to_received(record)
            # The original attributes only: the service adds its own when it routes it again.
            attrs = outgoing_attributes(record.message_attributes, None)
            copy = make_copy(received, source, record.body, record.event_id, attributes=attrs)
            copies[copy] = record
        results = await self._send(source, list(copies))
        done = []
        for copy, record in copies.items():
            failure = results.get(copy, Failure("NotSent", "", False))
            if failure is None:
                done.append(record)
            else:
                self.report.failed[f"source:{failure.code}"] += 1
        failed = await self._reader.delete(done)
        self.report.not_deleted += len(failed)
        self.report.to_source += len(done) - len(failed)
