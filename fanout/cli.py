"""Command line: ``fanout run``, ``fanout rules ...``, ``fanout dlq ...``, ``fanout topics``
(also ``python -m fanout``). Flags override FANOUT_* vars."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fanout import __version__
from fanout.aws.checks import check_queues
from fanout.aws.client import create_clients
from fanout.commands import dlq as dlq_command
from fanout.commands import rules as rules_command
from fanout.commands import topics as topics_command
from fanout.commands.common import run_async
from fanout.config import Settings, load_settings
from fanout.errors import ConfigError
from fanout.observability.stats import Stats, render_summary
from fanout.observability.telemetry import Telemetry, setup_telemetry
from fanout.pipeline.tasks import CRASH_LOOP_EXIT
from fanout.rules import load_rules
from fanout.runtime.cpus import available_cpus
from fanout.runtime.heap import settle_heap
from fanout.runtime.supervisor import supervise, watch_parent
from fanout.service import Service
from fanout.signals import install_signal_handlers

if TYPE_CHECKING:
    from fanout.local.run import LocalOptions

NO_SOURCE = (
    "no source queue configured: set FANOUT_SOURCE_QUEUE_URL (or GENESYS_SOURCE_QUEUE_URL) "
    "or pass --source-queue-url; to try fanout without AWS, run `fanout run --local`"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fanout", description="Fan Genesys Cloud events out from one SQS queue to many."
    )
    parser.add_argument("--version", action="version", version=f"fanout {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="consume the source queue and fan events out")
    run.add_argument("--rules", type=Path, help="rules file (FANOUT_RULES, default rules.yaml)")
    run.add_argument(
        "--watch-rules",
        action="store_const",
        const=True,
        help="FANOUT_WATCH_RULES: reload the rules when the file changes (SIGHUP always does)",
    )
    run.add_argument("--source-queue-url", help="FANOUT_SOURCE_QUEUE_URL")
    run.add_argument("--dlq-url", help="FANOUT_DLQ_URL")
    run.add_argument("--endpoint-url", help="FANOUT_ENDPOINT_URL (LocalStack, moto)")
    run.add_argument("--region", help="FANOUT_REGION")
    run.add_argument("--pollers", type=int, help="FANOUT_POLLERS")
    run.add_argument(
        "--workers",
        type=int,
        help="FANOUT_WORKERS: validate+match tasks; not a throughput knob (one event loop "
        "does the work): use --processes for more cores",
    )
    run.add_argument("--max-in-flight", type=int, help="FANOUT_MAX_IN_FLIGHT")
    run.add_argument("--max-in-flight-bytes", type=int, help="FANOUT_MAX_IN_FLIGHT_BYTES")
    run.add_argument("--linger-ms", type=float, help="FANOUT_LINGER_MS")
    run.add_argument("--delete-linger-ms", type=float, help="FANOUT_DELETE_LINGER_MS")
    run.add_argument("--wait-time-seconds", type=int, help="FANOUT_WAIT_TIME_SECONDS")
    run.add_argument(
        "--visibility-timeout-seconds", type=int, help="FANOUT_VISIBILITY_TIMEOUT_SECONDS"
    )
    run.add_argument(
        "--shutdown-timeout-seconds", type=float, help="FANOUT_SHUTDOWN_TIMEOUT_SECONDS"
    )
    run.add_argument("--log-level", help="FANOUT_LOG_LEVEL")
    run.add_argument("--log-format", help="FANOUT_LOG_FORMAT: text or json")
    run.add_argument("--http-port", type=int, help="FANOUT_HTTP_PORT: /healthz, /readyz, /metrics")
    run.add_argument(
        "--processes",
        metavar="N|auto",
        help="FANOUT_PROCESSES: pipelines (child processes) on this host; auto: one per CPU",
    )
    run.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="drain mode: exit once the source queue stayed empty this long",
    )
    run.add_argument("--summary-json", type=Path, metavar="PATH", help="write the summary here")
    local = run.add_argument_group("embedded local run (no AWS account needed)")
    local.add_argument(
        "--local",
        action="store_true",
        help="start an in-process SQS server (moto) with synthetic Genesys traffic",
    )
    local.add_argument("--rate", type=float, default=25.0, help="events/s to feed (default 25)")
    local.add_argument("--events", type=int, help="stop feeding after this many events")
    local.add_argument("--malformed", type=float, default=0.02, help="share of bad bodies")
    local.add_argument("--seed", type=int, default=7, help="synthetic traffic seed")
    local.add_argument("--no-progress", action="store_true", help="no live progress line")
    rules_command.add_parser(sub)
    dlq_command.add_parser(sub)
    topics_command.add_parser(sub)
    return parser


def configure_logging(
    level: str, log_format: str = "text", process_index: int | None = None
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # --processes children share the supervisor's stderr: their lines say which child.
    child = f" [{process_index}]" if process_index is not None else ""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        # One object per line; extra fields (event_id, message_id) become keys.
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={} if process_index is None else {"process_index": process_index},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s{child} %(name)s: %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler])
    # botocore/aiobotocore/moto chatter is not what an operator needs at INFO.
    for noisy in ("botocore", "aiobotocore", "aioboto3", "werkzeug", "moto", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


async def serve(settings: Settings, exit_when_idle: float | None) -> Stats:
    rules = load_rules(settings.rules)
    # After the rules: a broken rules file is one line on stderr, with nothing before it.
    telemetry = setup_telemetry()
    try:
        # The SDK client for the start-up checks, the data-plane client (FANOUT_SQS_CLIENT) for
        # the pipeline.
        async with create_clients(settings) as (sdk, client):
            # One span over the start-up GetQueueAttributes calls (their HTTP spans nest in it).
            with telemetry.tracer.start_as_current_span("check queues"):
                limits = await check_queues(sdk, settings, rules)
            service = Service(
                settings,
                rules,
                client,
                queue_limits=limits,
                telemetry=telemetry,
                checks_client=sdk,
            )
            install_signal_handlers(service.stop, service.reloader.request)
            settle_heap()  # start-up is over: GC settings for the long run (runtime/heap.py)
            if settings.process_index is None:
                return await service.run(exit_when_idle=exit_when_idle)
            # A --processes child: it must not outlive its supervisor.
            watcher = asyncio.create_task(watch_parent(service.stop))
            try:
                return await service.run(exit_when_idle=exit_when_idle)
            finally:
                watcher.cancel()
    finally:
        telemetry.shutdown()  # flush the last spans and metrics


def resolve_processes(settings: Settings) -> int:
    """FANOUT_PROCESSES as a number: ``auto`` is the CPUs this process may use; a child of
    the supervisor is always one pipeline."""
    if settings.process_index is not None:
        return 1
    if settings.processes == "auto":
        return available_cpus()
    return settings.processes


def local_options(args: argparse.Namespace, *, progress: bool) -> LocalOptions:
    """``--local``'s options; checks first that the extra is installed (one line if not)."""
    from fanout.local.run import LocalOptions, require_moto

    require_moto()
    return LocalOptions(
        rate=args.rate,
        events=args.events,
        malformed=args.malformed,
        seed=args.seed,
        progress=progress,
    )


def supervise_command(settings: Settings, processes: int, args: argparse.Namespace) -> int:
    """``--processes N`` (N > 1): the supervisor; errors are handled by ``run_command``."""
    local = None
    if args.local:
        local = local_options(args, progress=False)  # the counters live in the children
    elif not settings.source_queue_url:
        raise ConfigError(NO_SOURCE)
    code, summary = run_async(
        supervise(settings, processes, exit_when_idle=args.exit_when_idle, local=local),
        settings.event_loop,
    )
    if code == 0:
        write_summary(summary, args.summary_json)
    return code


def report(stats: Stats, summary_json: Path | None) -> None:
    write_summary(stats.summary(), summary_json)


def write_summary(summary: dict[str, Any], summary_json: Path | None) -> None:
    print(render_summary(summary))
    if summary_json is not None:
        summary_json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))


def run_command(args: argparse.Namespace) -> int:
    # Every Settings field with a flag of the same name: a flag left unset is None.
    overrides = {name: getattr(args, name, None) for name in Settings.model_fields}
    telemetry: Telemetry | None = None
    try:
        settings = load_settings(**overrides)
        configure_logging(settings.log_level, settings.log_format, settings.process_index)
        processes = resolve_processes(settings)
        if processes > 1:
            return supervise_command(settings, processes, args)
        if args.local:
            from fanout.local.run import run_local

            options = local_options(args, progress=not args.no_progress and sys.stdout.isatty())
            telemetry = setup_telemetry()
            stats = run_async(
                run_local(
                    settings, options, exit_when_idle=args.exit_when_idle, telemetry=telemetry
                ),
                settings.event_loop,
            )
        else:
            if not settings.source_queue_url:
                raise ConfigError(NO_SOURCE)
            stats = run_async(serve(settings, args.exit_when_idle), settings.event_loop)
    except ConfigError as exc:
        print(f"fanout: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("fanout: forced exit", file=sys.stderr)
        return 130
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # flush the last spans and metrics
    report(stats, args.summary_json)
    return CRASH_LOOP_EXIT if stats.crash_loop else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_command(args)
    if args.command == "rules":
        return rules_command.main(args)
    if args.command == "dlq":
        return dlq_command.main(args)
    if args.command == "topics":
        return topics_command.main(args)
    return 2  # pragma: no cover - argparse enforces the subcommand


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
