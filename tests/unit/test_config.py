"""config.py: defaults, FANOUT_* variables, GENESYS_* aliases, CLI overrides, bad values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fanout.config import env_name, load_settings
from fanout.errors import ConfigError

# Names pydantic-settings would read for these settings (case-insensitively).
READ_BARE = ("SOURCE_QUEUE_URL", "DLQ_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith(("FANOUT_", "GENESYS_")) or key.upper() in READ_BARE:
            monkeypatch.delenv(key)
    return


def test_defaults() -> None:
    s = load_settings()
    assert (s.source_queue_url, s.dlq_url, s.endpoint_url, s.region) == (None, None, None, None)
    assert s.rules == Path("rules.yaml")
    assert (s.pollers, s.workers, s.max_in_flight, s.send_concurrency) == (4, 4, 1000, 8)
    assert (s.wait_time_seconds, s.visibility_timeout_seconds) == (20, 60)
    assert s.linger_ms == 20.0 and s.linger_seconds == pytest.approx(0.02)
    assert (s.retry_max_attempts, s.retry_base_delay_ms, s.retry_max_delay_ms) == (6, 100.0, 5000.0)
    assert (s.shutdown_timeout_seconds, s.max_pool_connections, s.log_level) == (30.0, 256, "INFO")


@pytest.mark.parametrize(
    ("var", "value", "field", "expected"),
    [
        ("FANOUT_SOURCE_QUEUE_URL", "https://sqs/src", "source_queue_url", "https://sqs/src"),
        ("FANOUT_DLQ_URL", "https://sqs/dlq", "dlq_url", "https://sqs/dlq"),
        ("GENESYS_SOURCE_QUEUE_URL", "https://sqs/g-src", "source_queue_url", "https://sqs/g-src"),
        ("GENESYS_DLQ_URL", "https://sqs/g-dlq", "dlq_url", "https://sqs/g-dlq"),
        ("FANOUT_ENDPOINT_URL", "http://127.0.0.1:4566", "endpoint_url", "http://127.0.0.1:4566"),
        ("FANOUT_REGION", "eu-west-1", "region", "eu-west-1"),
        ("FANOUT_RULES", "/etc/fanout/rules.yaml", "rules", Path("/etc/fanout/rules.yaml")),
        ("FANOUT_POLLERS", "7", "pollers", 7),
        ("FANOUT_WORKERS", " 12 ", "workers", 12),
        ("FANOUT_MAX_IN_FLIGHT", "10", "max_in_flight", 10),
        ("FANOUT_WAIT_TIME_SECONDS", "0", "wait_time_seconds", 0),
        ("FANOUT_LINGER_MS", "2.5", "linger_ms", 2.5),
        ("FANOUT_RETRY_MAX_ATTEMPTS", "1", "retry_max_attempts", 1),
        ("FANOUT_SHUTDOWN_TIMEOUT_SECONDS", "0.5", "shutdown_timeout_seconds", 0.5),
        ("FANOUT_LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
        ("FANOUT_LOG_LEVEL", " debug ", "log_level", "DEBUG"),
        ("fanout_pollers", "5", "pollers", 5),
    ],
)
def test_environment_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, field: str, expected: Any
) -> None:
    monkeypatch.setenv(var, value)
    assert getattr(load_settings(), field) == expected


@pytest.mark.parametrize(
    ("field", "suffix"), [("source_queue_url", "SOURCE_QUEUE_URL"), ("dlq_url", "DLQ_URL")]
)
def test_precedence_cli_then_fanout_then_genesys(
    monkeypatch: pytest.MonkeyPatch, field: str, suffix: str
) -> None:
    monkeypatch.setenv(f"GENESYS_{suffix}", "http://127.0.0.1/from-genesys")
    assert getattr(load_settings(), field) == "http://127.0.0.1/from-genesys"
    monkeypatch.setenv(f"FANOUT_{suffix}", "http://127.0.0.1/from-fanout")
    assert getattr(load_settings(), field) == "http://127.0.0.1/from-fanout"
    assert (
        getattr(load_settings(**{field: "http://127.0.0.1/from-cli"}), field)
        == "http://127.0.0.1/from-cli"
    )
    assert (
        getattr(load_settings(**{field: None}), field) == "http://127.0.0.1/from-fanout"
    )  # unset flag


@pytest.mark.parametrize(
    ("field", "suffix"), [("source_queue_url", "SOURCE_QUEUE_URL"), ("dlq_url", "DLQ_URL")]
)
def test_only_documented_variables_are_read(
    monkeypatch: pytest.MonkeyPatch, field: str, suffix: str
) -> None:
    monkeypatch.setenv(suffix, "https://sqs/some-other-apps-queue")
    assert getattr(load_settings(), field) is None
    monkeypatch.setenv(f"FANOUT_{suffix}", "https://sqs/ours")
    assert getattr(load_settings(), field) == "https://sqs/ours"


def test_cli_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANOUT_POLLERS", "3")
    monkeypatch.setenv("FANOUT_LOG_LEVEL", "ERROR")
    s = load_settings(pollers=9, log_level=None, rules=Path("other.yaml"))
    assert (s.pollers, s.log_level, s.rules) == (9, "ERROR", Path("other.yaml"))
    # A valid flag replaces a bad variable for the same setting instead of failing on it.
    monkeypatch.setenv("FANOUT_POLLERS", "abc")
    assert load_settings(pollers=2).pollers == 2


@pytest.mark.parametrize(
    ("var", "value", "complaint"),
    [
        ("FANOUT_POLLERS", "abc", "valid integer"),
        ("FANOUT_POLLERS", "0", "greater than or equal to 1"),
        ("FANOUT_POLLERS", "257", "less than or equal to 256"),
        ("FANOUT_WORKERS", "2.5", "valid integer"),
        ("FANOUT_MAX_IN_FLIGHT", "9", "greater than or equal to 10"),
        ("FANOUT_WAIT_TIME_SECONDS", "21", "less than or equal to 20"),
        ("FANOUT_LINGER_MS", "-1", "greater than or equal to 0"),
        ("FANOUT_SHUTDOWN_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("FANOUT_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ],
)
def test_invalid_environment_value(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings(workers=None)
    message = str(info.value)
    assert message.startswith(f"{var}: ")
    assert complaint in message and f"(got {value!r})" in message
    assert info.value.exit_code == 2


def test_invalid_cli_value_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANOUT_POLLERS", "3")
    with pytest.raises(ConfigError, match=r"^--max-in-flight: .*greater than or equal to 10"):
        load_settings(max_in_flight=5)


def test_settings_are_frozen_and_env_name() -> None:
    s = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        s.pollers = 5  # type: ignore[misc]
    assert env_name("max_in_flight") == "FANOUT_MAX_IN_FLIGHT"
