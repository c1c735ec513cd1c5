"""The one Settings object: every knob is a ``FANOUT_*`` environment variable with a default.

CLI flags override the environment by being passed as init arguments (pydantic-settings gives
init kwargs priority over env vars).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fanout.errors import ConfigError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]
SqsClientKind = Literal["lean", "sdk"]
EventLoopKind = Literal["auto", "uvloop", "asyncio"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FANOUT_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        str_strip_whitespace=True,
    )

    # The original script's GENESYS_* names are accepted so its users keep their environment.
    source_queue_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FANOUT_SOURCE_QUEUE_URL", "GENESYS_SOURCE_QUEUE_URL"),
        description="SQS queue the EventBridge rule delivers Genesys events to.",
    )
    dlq_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FANOUT_DLQ_URL", "GENESYS_DLQ_URL"),
        description="Dead-letter queue for events that cannot be delivered (JSON records).",
    )
    endpoint_url: str | None = Field(
        default=None, description="SQS endpoint override (LocalStack, moto); unset for AWS."
    )
    region: str | None = Field(
        default=None,
        description="AWS region; unset: the AWS provider chain's region, else the one in the "
        "source queue URL.",
    )
    rules: Path = Field(default=Path("rules.yaml"), description="Path of the rules file.")
    watch_rules: bool = Field(
        default=False,
        description="Reload the rules when the file changes (also a ConfigMap's symlink swap); "
        "SIGHUP reloads them either way.",
    )
    rules_watch_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often --watch-rules looks at the file (stat); a change is applied "
        "once it is stable for one look.",
    )

    pollers: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Concurrent ReceiveMessage loops at least (the floor: an idle queue costs "
        "their long polls); full receives add pollers up to FANOUT_MAX_POLLERS.",
    )
    max_pollers: int = Field(
        default=64,
        ge=1,
        le=256,
        description="Concurrent ReceiveMessage loops at most, while receives come back full "
        "and in-flight room is left (at least FANOUT_POLLERS).",
    )
    workers: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Validate+match tasks on the one event loop. Not a throughput knob: "
        "handling never awaits, so a worker handles every message already queued before it "
        "yields and the others mostly wait: 1, 4 and 16 workers cost the same CPU per event "
        "(349, 345, 336 µs on the bench stub, bench/results/workers.md). More cores: "
        "FANOUT_PROCESSES (--processes).",
    )
    max_in_flight: int = Field(
        default=1000,
        ge=10,
        description="Received-but-not-deleted messages at first: the limit follows Little's "
        "law (twice rate x time in flight) from here up to FANOUT_MAX_IN_FLIGHT_BYTES / 16 KiB "
        "(8,192 at the default); pollers pause at it.",
    )
    max_in_flight_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        description="Body bytes of received-but-not-deleted messages at most; pollers pause "
        "at this level. Peak RSS stays under this budget + 150 MiB (docs: Operations, Memory).",
    )
    wait_time_seconds: int = Field(
        default=20,
        ge=0,
        le=20,
        description="ReceiveMessage long-poll wait (--exit-when-idle waits at most 1 s).",
    )
    visibility_timeout_seconds: int = Field(
        default=60,
        ge=1,
        le=43200,
        description="VisibilityTimeout asked on receive; held messages are extended at half.",
    )
    linger_ms: float = Field(
        default=20.0,
        ge=0,
        le=10_000,
        description="Longest wait to fill a SendMessageBatch (adds at most this to an event's "
        "latency).",
    )
    delete_linger_ms: float = Field(
        default=100.0,
        ge=0,
        le=10_000,
        description="Longest wait to fill a DeleteMessageBatch (not on any event's latency path).",
    )
    send_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Concurrent SendMessageBatch calls per target (and DeleteMessageBatch calls) "
        "at first: each queue's limit then adapts (AIMD) up to FANOUT_MAX_POOL_CONNECTIONS.",
    )
    retry_max_attempts: int = Field(
        default=6,
        ge=1,
        le=100,
        description="Attempts per batch entry before it counts as failed (for sends, with the "
        "time budget FANOUT_RETRY_MAX_SECONDS).",
    )
    retry_max_seconds: float = Field(
        default=300.0,
        ge=0,
        le=43200,
        description="Time budget of a copy's retries while its target throttles or fails "
        "(5xx, connection errors): it keeps retrying, its source message held invisible, until "
        "both this and FANOUT_RETRY_MAX_ATTEMPTS are spent; then the DLQ. 0: attempts only.",
    )
    credential_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="While SQS refuses fanout's credentials (ExpiredToken, a skewed clock), "
        "messages are held and retried (within FANOUT_RETRY_MAX_SECONDS), one probe call at a "
        "time; past this many seconds the pollers pause and /readyz fails, until a call "
        "succeeds.",
    )
    target_max_pending: int | None = Field(
        default=None,
        ge=1,
        description="Copies one failing target may hold (each holds its source message in "
        "flight); past it that target's new copies go to the DLQ (target_backlog). Unset: no "
        "per-target limit, the pollers pause at FANOUT_MAX_IN_FLIGHT (nothing dead-lettered, "
        "but every target waits for the failing one).",
    )
    retry_base_delay_ms: float = Field(
        default=100.0,
        ge=0,
        description="First backoff ceiling (full jitter: sleep uniform in [0, ceiling]).",
    )
    retry_max_delay_ms: float = Field(
        default=5_000.0, ge=0, description="Backoff ceiling cap (full jitter)."
    )
    shutdown_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Bound on graceful shutdown after SIGTERM/SIGINT."
    )
    max_pool_connections: int = Field(
        default=256,
        ge=1,
        description="HTTP connection pool size of each SQS client: the ceiling of the calls in "
        "flight (receives, each queue's sends, deletes); at 50 ms round trips 64 capped the rate.",
    )
    sqs_client: SqsClientKind = Field(
        default="lean",
        description="Data-plane SQS client: lean (aiohttp + SigV4, a quarter of the SDK's CPU "
        "per call, per-queue regional endpoints, MD5OfBody checked) or sdk (aiobotocore). The "
        "start-up checks and the tools always use the SDK.",
    )
    event_loop: EventLoopKind = Field(
        default="auto",
        description="auto: uvloop when installed (pip install 'fanout[fast]'), else asyncio's "
        "own loop; uvloop (an error if it is missing) or asyncio. With the lean client uvloop "
        "made no measurable difference on the bench.",
    )
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: LogFormat = Field(
        default="text", description="text, or json: one JSON object per line."
    )
    http_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz and /metrics; unset: no HTTP server (0: any).",
    )
    http_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - probes and scrapers reach the pod/container address
        description="Address the HTTP server binds (probes and scrapers reach the container's "
        "address).",
    )
    readiness_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="/readyz fails when no receive succeeded, or in-flight messages made no "
        "progress, for this long.",
    )

    processes: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        default=1,
        description="Pipelines (child processes) on this host; auto: the CPUs this process may "
        "use (affinity, capped by the cgroup CPU quota).",
    )
    process_index: int | None = Field(
        default=None,
        ge=0,
        description="Set by the --processes supervisor for its children (logs, OTLP resource); "
        "not for users.",
    )
    http_socket_fd: int | None = Field(
        default=None,
        ge=0,
        description="Set by the --processes supervisor for its children: the inherited, "
        "already bound socket of their health endpoints (no port race); not for users.",
    )

    @field_validator("processes", mode="before")
    @classmethod
    def _lower_processes(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("endpoint_url", "source_queue_url", "dlq_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", "sqs_client", "event_loop", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def linger_seconds(self) -> float:
        return self.linger_ms / 1000.0

    @property
    def delete_linger_seconds(self) -> float:
        return self.delete_linger_ms / 1000.0


def env_name(field: str) -> str:
    """The environment variable users set for ``field`` (for error messages)."""
    return f"FANOUT_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment plus CLI overrides; bad values raise ConfigError."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        if field in clean:
            source = f"--{field.replace('_', '-')}"
        elif field in Settings.model_fields:
            source = env_name(field)
        else:  # reported under its alias, e.g. FANOUT_SOURCE_QUEUE_URL
            source = field
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{source}: {message} (got {first.get('input')!r})") from None
