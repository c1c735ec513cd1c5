"""SIGTERM / SIGINT: the first stops gracefully, a second one stops waiting. SIGHUP: reload
the rules (fanout.reload)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

log = logging.getLogger("fanout")


def install_signal_handlers(stop: asyncio.Event, reload: Callable[[], None] | None = None) -> None:
    """First SIGTERM/SIGINT: graceful stop. A second one: stop waiting and exit now.
    SIGHUP: ``reload`` (without one, SIGHUP keeps its default action)."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            log.info("%s received: stopping (again to force)", signal.Signals(signum).name)
            stop.set()
        elif main is not None:
            main.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    if reload is not None:

        def on_hangup() -> None:
            log.info("SIGHUP received: reloading the rules")
            reload()

        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, on_hangup)
