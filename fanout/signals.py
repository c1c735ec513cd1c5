"""SIGTERM / SIGINT: the first stops gracefully, a second one stops waiting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

log = logging.getLogger("fanout")


def install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT: graceful stop. A second one: stop waiting and exit now."""
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
