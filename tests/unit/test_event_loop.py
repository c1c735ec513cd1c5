"""FANOUT_EVENT_LOOP: which loop `fanout run` runs on, and the one-line error when uvloop was
asked for but is not installed."""

from __future__ import annotations

import asyncio
import sys

import pytest

from fanout.commands.common import run_async
from fanout.config import load_settings
from fanout.errors import ConfigError


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_asyncio_is_asyncio_whatever_is_installed() -> None:
    assert run_async(loop_module(), "asyncio") == "asyncio"


def test_auto_without_uvloop_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # None in sys.modules: import fails
    assert run_async(loop_module(), "auto") == "asyncio"


def test_uvloop_missing_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(
        ConfigError, match=r"FANOUT_EVENT_LOOP=uvloop .* pip install 'fanout\[fast\]'"
    ):
        run_async(loop_module(), "uvloop")


def test_uvloop_and_auto_use_it_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert run_async(loop_module(), "uvloop") == "uvloop"
    assert run_async(loop_module(), "auto") == "uvloop"


def test_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANOUT_EVENT_LOOP", " AsyncIO ")
    assert load_settings().event_loop == "asyncio"
    monkeypatch.setenv("FANOUT_EVENT_LOOP", "trio")
    with pytest.raises(ConfigError, match="FANOUT_EVENT_LOOP"):
        load_settings()
