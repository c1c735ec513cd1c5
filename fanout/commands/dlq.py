"""``fanout dlq inspect`` and ``fanout dlq redrive``: the on-call engineer's DLQ tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from fanout.aws.client import create_client
from fanout.aws.retry import Backoff
from fanout.commands.common import read_all, run_async
from fanout.config import Settings, load_settings
from fanout.errors import ConfigError
from fanout.ops.dlq_inspect import record_view, render, rule_errors_only, rules_now, summarize
from fanout.ops.reader import DlqReader, RateLimit
from fanout.ops.redrive import Filters, Options, Redrive, parse_since
from fanout.rules.loader import load_rules, load_rules_unresolved
from fanout.rules.model import RuleSet

NO_DLQ = "no DLQ given: set FANOUT_DLQ_URL or pass --dlq-url"


def add_queue_options(parser: argparse.ArgumentParser, *, dlq: bool = True) -> None:
    if dlq:
        parser.add_argument("--dlq-url", help="the DLQ (FANOUT_DLQ_URL)")
    parser.add_argument("--endpoint-url", help="FANOUT_ENDPOINT_URL (LocalStack, moto)")
    parser.add_argument("--region", help="FANOUT_REGION")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser("dlq", help="inspect or redrive the DLQ's records")
    commands = dlq.add_subparsers(dest="dlq_command", required=True)
    inspect = commands.add_parser(
        "inspect", help="count the DLQ's records by reason, target, rule, type (none consumed)"
    )
    add_queue_options(inspect)
    inspect.add_argument(
        "--rules", type=Path, help="count records by the rules their events match now"
    )
    inspect.add_argument("--limit", type=int, metavar="N", help="read at most N records")
    inspect.add_argument("--json", action="store_true", help="one JSON document")
    inspect.add_argument(
        "--show-bodies",
        action="store_true",
        help="also print each record with its event body (personal data: phone numbers...)",
    )
    inspect.add_argument(
        "--hold-seconds",
        type=int,
        default=60,
        help="records stay invisible this long while read, then are released (default 60)",
    )
    redrive = commands.add_parser(
        "redrive", help="deliver dead-lettered copies to the targets that missed them"
    )
    add_queue_options(redrive)
    redrive.add_argument("--rules", type=Path, help="rules file with the targets (FANOUT_RULES)")
    redrive.add_argument("--source-queue-url", help="for --to-source (FANOUT_SOURCE_QUEUE_URL)")
    redrive.add_argument(
        "--reason", action="append", default=[], help="only records of this reason (repeatable)"
    )
    redrive.add_argument(
        "--target",
        action="append",
        default=[],
        help="only copies to this target (repeatable); records keep their other targets",
    )
    redrive.add_argument(
        "--since", help="only records written since: ISO 8601 time, or an age: 30m, 2h, 1d"
    )
    redrive.add_argument("--limit", type=int, metavar="N", help="read at most N records")
    redrive.add_argument(
        "--to-source",
        action="store_true",
        help="send records with no copy to deliver (bad input...) back to the source queue",
    )
    redrive.add_argument("--dry-run", action="store_true", help="say what would happen, do none")
    redrive.add_argument("--rate", type=float, help="SQS calls per second at most")
    redrive.add_argument(
        "--hold-seconds",
        type=int,
        default=300,
        help="records stay invisible this long while the redrive runs (default 300)",
    )
    redrive.add_argument("--no-progress", action="store_true", help="no progress bar")
    redrive.add_argument("--json", action="store_true", help="the summary as JSON")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("dlq_url", "endpoint_url", "region", "rules", "source_queue_url")
    }
    return load_settings(**overrides)


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[Any]:
    async with create_client(settings) as client:
        yield client


def main(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        url = settings.dlq_url
        if not url:
            raise ConfigError(NO_DLQ)
        if args.limit is not None and args.limit < 1:
            raise ConfigError(f"--limit must be >= 1 (got {args.limit})")
        if args.dlq_command == "inspect":
            return run_async(inspect_command(settings, url, args))
        return run_async(redrive_command(settings, url, args))
    except ConfigError as exc:
        print(f"fanout: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "fanout: interrupted: held records come back when their hold runs out", file=sys.stderr
        )
        return 130


def _inspect_rules(args: argparse.Namespace, settings: Settings) -> RuleSet | None:
    # Given explicitly: must load. The default (rules.yaml) is used when it is there.
    if args.rules is None and not settings.rules.exists():
        return None
    return load_rules_unresolved(settings.rules)


async def inspect_command(settings: Settings, url: str, args: argparse.Namespace) -> int:
    ruleset = _inspect_rules(args, settings)
    async with _client(settings) as client:
        records = await read_all(
            client, settings, url, limit=args.limit, hold_seconds=args.hold_seconds
        )
    summary = summarize(records, rules_now(ruleset) if ruleset else rule_errors_only)
    summary["dlq_url"] = url
    summary["rules"] = ruleset.path if ruleset else None
    if args.json:
        if args.show_bodies:
            summary["items"] = [record_view(r, with_body=True) for r in records]
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(render(summary, url=url, rules_path=ruleset.path if ruleset else None))
    if args.show_bodies:
        for record in records:
            print(orjson.dumps(record_view(record, with_body=True)).decode())
    return 0


async def redrive_command(settings: Settings, url: str, args: argparse.Namespace) -> int:
    ruleset = load_rules(settings.rules)  # the targets' URLs, resolved as `fanout run` does
    options = Options(
        filters=Filters(
            reasons=frozenset(args.reason),
            targets=frozenset(args.target),
            since=parse_since(args.since) if args.since else None,
        ),
        limit=args.limit,
        to_source=args.to_source,
        dry_run=args.dry_run,
    )
    unknown = sorted(set(args.target) - set(ruleset.targets))
    if unknown:
        raise ConfigError(
            f"--target {', '.join(unknown)}: not a target of {ruleset.path} "
            f"(targets: {', '.join(sorted(ruleset.targets))})"
        )
    rate = RateLimit(args.rate)
    backoff = Backoff.from_settings(settings)
    async with _client(settings) as client:
        reader = DlqReader(client, url, hold_seconds=args.hold_seconds, backoff=backoff, rate=rate)
        total = await reader.depth()
        if args.limit is not None:
            total = min(total, args.limit)
        with _progress(enabled=not args.no_progress and sys.stderr.isatty(), total=total) as bar:
            redrive = Redrive(
                client,
                reader,
                ruleset.targets,
                source_url=settings.source_queue_url,
                options=options,
                backoff=backoff,
                rate=rate,
                say=lambda line: print(line, file=sys.stderr),
                progress=bar,
            )
            report = await redrive.run()
    if args.json:
        doc = {"dlq_url": url, **report.summary()}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(report.render(url))
    return 0 if report.complete else 1


class _progress:
    """A rich progress bar on stderr (records dealt with of the DLQ's depth at the start)."""

    def __init__(self, *, enabled: bool, total: int) -> None:
        self._enabled = enabled
        self._total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self._enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress(
            "redrive",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("redrive", total=self._total or None)
        return lambda n: self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
