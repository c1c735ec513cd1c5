"""Long-lived tasks under supervision: a crash is logged, counted and restarted, never silent.

The service's heartbeat, reloader, pollers and workers run for the life of the process. An
exception that escapes one of them used to vanish into ``gather(return_exceptions=True)``; a
dead visibility heartbeat then meant redeliveries and duplicates with nothing in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from fanout.observability.stats import Stats

log = logging.getLogger(__name__)

# The exit code of a service stopped by a crash loop: the orchestrator (or the --processes
# supervisor) restarts the process; 2 stays reserved for configuration errors.
CRASH_LOOP_EXIT = 1


class TaskSupervisor:
    """Starts long-lived coroutines as tasks and keeps them running.

    A task that raises is logged at ERROR with the traceback, counted in
    ``Stats.task_crashes`` under its name (metric ``fanout.task.crashes``), and started again
    after a backoff that doubles per consecutive crash. ``max_crashes`` crashes of one task
    name within ``window`` seconds is a crash loop: ``failed`` names the task and ``stop`` is
    set, so the service shuts down and the process exits ``CRASH_LOOP_EXIT`` for the
    orchestrator to restart it. A task that returns is done; cancelling it stops it.

    Parameters:
        stats: the run's counters (``task_crashes``).
        stop: the service's stop event, set on a crash loop.
        first_delay: seconds before the first restart of a task.
        max_delay: cap of the doubling restart delay.
        max_crashes: crashes of one task name within ``window`` that stop the service.
        window: seconds over which crashes count towards ``max_crashes``.
    """

    def __init__(
        self,
        stats: Stats,
        stop: asyncio.Event,
        *,
        first_delay: float = 0.5,
        max_delay: float = 10.0,
        max_crashes: int = 5,
        window: float = 60.0,
    ) -> None:
        self._stats = stats
        self._stop = stop
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._max_crashes = max_crashes
        self._window = window
        self._crashes: dict[str, deque[float]] = {}
        self.failed: str | None = None

    def spawn(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run ``run()`` as a supervised task; ``run`` is called again for each restart."""
        return asyncio.create_task(self._supervise(name, run), name=name)

    async def _supervise(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        consecutive = 0
        while True:
            try:
                await run()
                return
            except Exception:
                consecutive += 1
                if self._crashed(name):
                    return
                delay = min(self._max_delay, self._first_delay * 2 ** (consecutive - 1))
                log.info("task %r restarts in %.1fs", name, delay)
                await asyncio.sleep(delay)

    def _crashed(self, name: str) -> bool:
        """Log and count one crash (the current exception); True on a crash loop."""
        log.error("task %r crashed", name, exc_info=True)
        self._stats.task_crashes[name] += 1
        now = time.monotonic()
        recent = self._crashes.setdefault(name, deque())
        recent.append(now)
        while recent and now - recent[0] > self._window:
            recent.popleft()
        if len(recent) < self._max_crashes:
            return False
        log.error(
            "task %r crashed %d times in %.0fs: stopping the service (exit %d) for the "
            "orchestrator to restart it",
            name,
            len(recent),
            self._window,
            CRASH_LOOP_EXIT,
        )
        if self.failed is None:
            self.failed = name
        self._stop.set()
        return True
