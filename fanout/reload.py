"""Rules hot reload: on SIGHUP, or when the rules file changes (``--watch-rules``).

A reload loads and compiles the file exactly as the start does (in a thread: a large file
must not stall the event loop and its visibility heartbeat), has the service check any new
target queue, then swap the rule set between two events (fanout.pipeline.routing). A file
that does not load, or names a queue that is missing or denied, changes nothing: one line
naming the file, the rule and the fix, and ``fanout.rules.reloads{result=error}``.

Watching polls ``stat`` of the path: a Kubernetes ConfigMap update swaps the ``..data``
symlink to a new directory, which changes the inode (and the real path) of the file the
mounted path resolves to without touching the path itself; an in-place edit changes mtime
and size. A change is acted on once it has been stable for one poll (an editor still
writing), and each changed file is tried once: a broken file is reported once, not every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fanout.errors import ConfigError, StartupError
from fanout.observability.stats import Stats
from fanout.outcomes import ReloadResult
from fanout.rules import RuleSet
from fanout.rules.lint import log_warnings

log = logging.getLogger(__name__)

Signature = tuple[str, int, int, int, int]


def file_signature(path: Path) -> Signature | None:
    """What identifies the file's content without reading it; None when it cannot be stat'ed."""
    try:
        st = os.stat(path)  # follows symlinks: the file the path resolves to now
        return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        return None


@dataclass(frozen=True)
class RulesChange:
    """What a successful reload changed, for its log line."""

    rules: int
    targets: int
    added: tuple[str, ...]
    removed: tuple[str, ...]


class RulesReloader:
    """Reloads the rules on request (SIGHUP) and, with ``watch``, when the file changes.

    Parameters:
        path: the rules file (FANOUT_RULES).
        load: loads and compiles it (raises RulesError).
        apply: checks new target queues and swaps the rule set (raises StartupError).
        stats: counts reloads by result (``fanout.rules.reloads``).
        watch: poll the file (FANOUT_WATCH_RULES).
        interval: seconds between polls (FANOUT_RULES_WATCH_INTERVAL_SECONDS).
    """

    def __init__(
        self,
        path: Path,
        load: Callable[[], RuleSet],
        apply: Callable[[RuleSet], Awaitable[RulesChange]],
        stats: Stats,
        *,
        watch: bool,
        interval: float,
    ) -> None:
        self._path = path
        self._load = load
        self._apply = apply
        self._stats = stats
        self._watch = watch
        self._interval = interval
        self._requested = asyncio.Event()
        # The file as it was when last loaded (at start, or at the last attempt).
        self._tried = file_signature(path)

    def request(self) -> None:
        """Ask for a reload (the SIGHUP handler); requests made during one are merged."""
        self._requested.set()

    async def run(self) -> None:
        watcher = asyncio.create_task(self._poll(), name="rules watch") if self._watch else None
        try:
            while True:
                await self._requested.wait()
                self._requested.clear()
                await self.reload()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def reload(self) -> bool:
        """Load, check and swap; True when the new rules are in force."""
        self._tried = file_signature(self._path)
        try:
            rules = await asyncio.to_thread(self._load)
            change = await self._apply(rules)
        except StartupError as exc:
            self._failed(f"{exc} (fix: create the queue or correct the URL, then reload again)")
            return False
        except ConfigError as exc:
            self._failed(str(exc))
            return False
        self._stats.reloads[ReloadResult.OK] += 1
        log.info(
            "rules reloaded from %s: %d rules, %d targets; targets added: %s; removed: %s%s",
            self._path,
            change.rules,
            change.targets,
            ", ".join(change.added) or "none",
            ", ".join(change.removed) or "none",
            " (their pending copies are still delivered)" if change.removed else "",
        )
        log_warnings(rules, log)  # Genesys schema warnings: logged, the new rules stay
        return True

    def _failed(self, why: str) -> None:
        self._stats.reloads[ReloadResult.ERROR] += 1
        log.error("rules reload failed, the running rules stay in force: %s", why)

    async def _poll(self) -> None:
        previous = self._tried
        while True:
            await asyncio.sleep(self._interval)
            now = file_signature(self._path)
            if now is not None and now != self._tried and now == previous:
                self.request()
            previous = now
