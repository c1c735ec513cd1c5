"""What every command may import: the event loop runner and the DLQ read-all helper.

Commands (``fanout/cli.py``'s ``run``, ``commands.rules``, ``commands.dlq``) import from here,
never from each other or from ``fanout.cli``, so the command layer has no cycles.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fanout.aws.retry import Backoff
from fanout.config import EventLoopKind, Settings
from fanout.errors import ConfigError
from fanout.ops.reader import DlqReader
from fanout.ops.records import DlqRecord

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T], loop: EventLoopKind = "auto") -> T:
    """Run on uvloop when it is installed (``pip install 'fanout[fast]'``) unless ``loop``
    (FANOUT_EVENT_LOOP) says asyncio; the bench measures both
    (docs/architecture/decisions.md: the lean client)."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                main.close()
                raise ConfigError(
                    "FANOUT_EVENT_LOOP=uvloop but uvloop is not installed: "
                    "pip install 'fanout[fast]', or set FANOUT_EVENT_LOOP=auto"
                ) from None
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)


async def read_all(
    client: Any, settings: Settings, url: str, *, limit: int | None, hold_seconds: int
) -> list[DlqRecord]:
    """Every record (up to ``limit``), then all released: nothing consumed."""
    reader = DlqReader(
        client, url, hold_seconds=hold_seconds, backoff=Backoff.from_settings(settings)
    )
    records: list[DlqRecord] = []
    try:
        async for batch in reader.records(limit):
            records.extend(batch)
    finally:
        await reader.release()
    return records
