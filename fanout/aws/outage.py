"""Credential outages: one shared pace for every batch call while SQS refuses fanout's credentials.

When SQS refuses the credentials (``Failure.credentials``: ExpiredToken, a skewed clock, a
provider chain that cannot fetch new ones), every call of the process fails alike, whatever
its queue. Each batch retrying on its own backoff made thousands of refused calls in a 15 s
outage, and the per-entry split multiplied them (bench/credential_outage.py). Here, during an
outage, calls take turns: one probe at a time, each after an exponential backoff delay (full
jitter, FANOUT_RETRY_BASE_DELAY_MS / FANOUT_RETRY_MAX_DELAY_MS) and a forced credential
refresh; the first call SQS answers ends the outage and every held call goes at once.

Past FANOUT_CREDENTIAL_GRACE_SECONDS the pollers pause (fanout stops taking messages it cannot
send) and /readyz fails; both resume when a call is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from botocore.exceptions import ClientError

from fanout.aws.retry import Backoff, classify_exception
from fanout.observability.stats import Stats

T = TypeVar("T")
log = logging.getLogger(__name__)

# At most one forced refresh per this many seconds: each may be an STS or IMDS call.
REFRESH_INTERVAL_SECONDS = 5.0
# How often paused pollers look again (the outage may end with no call of theirs).
PAUSE_RECHECK_SECONDS = 1.0


class ReceiveGate(Protocol):
    """What a poller awaits before each receive."""

    async def wait_open(self) -> None: ...


class CredentialOutage:
    """The process's one credential-outage state, shared by every batch call (targets, DLQ).

    ``call`` wraps each SQS batch call: outside an outage it only watches the result; during
    one, calls wait for their turn and go one at a time (probes). ``wait_open`` is the
    pollers' gate and ``not_ready_reason`` the health check's view.

    Parameters:
        backoff: the probes' delays (its base and cap; attempts and budget are not used).
        rng: jitter.
        stats: counts refused calls by code (``Stats.credential_errors``).
        grace: FANOUT_CREDENTIAL_GRACE_SECONDS: how long an outage may last before the
            pollers pause and /readyz fails.
        budget: FANOUT_RETRY_MAX_SECONDS: how long a batch's entries are held and retried
            through an outage (also the DLQ's records, whose own budget is attempts only).
        refresh: forces a credential refresh (``fanout.aws.credentials.refresher_for``).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        *,
        backoff: Backoff,
        rng: random.Random,
        stats: Stats,
        grace: float,
        budget: float,
        refresh: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff
        self._rng = rng
        self._stats = stats
        self.grace = grace
        self.budget = budget
        self._refresh = refresh
        self._clock = clock
        self.since: float | None = None  # first refused call of the current outage
        self.last_code = ""
        self.refused = 0  # refused calls in the current outage
        self.probes = 0  # probes made in the current outage
        self.holding = 0  # calls waiting for their turn or probing
        self._turn = asyncio.Lock()
        self._over = asyncio.Event()
        self._over.set()
        self._refreshed_at: float | None = None

    # --- state ---------------------------------------------------------------------------

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failing_for(self) -> float:
        """Seconds since the outage began (0 when there is none)."""
        return 0.0 if self.since is None else self._clock() - self.since

    @property
    def past_grace(self) -> bool:
        return self.since is not None and self.failing_for() >= self.grace

    @property
    def paused(self) -> bool:
        """Receiving is paused: past the grace while some call waits to be sent (once every
        held call gave up, a receive may bring work that probes again)."""
        return self.past_grace and self.holding > 0

    def not_ready_reason(self) -> str | None:
        """Why the service is not ready (/readyz): receiving is paused."""
        if not self.paused:
            return None
        return (
            f"SQS refused fanout's credentials for {self.failing_for():.0f}s "
            f"({self.last_code}, {self.refused} calls); receiving paused"
        )

    def failed(self, code: str) -> None:
        """A call was refused for its credentials."""
        self._stats.credential_errors[code] += 1
        self.last_code = code
        self.refused += 1
        if self.since is None:
            self.since = self._clock()
            self.probes = 0
            self._refreshed_at = None
            self._over.clear()
            log.warning(
                "SQS refused fanout's credentials (%s): holding the messages, refreshing the "
                "credentials and probing one call at a time",
                code,
            )

    def succeeded(self) -> None:
        """SQS answered a call: the credentials work (again)."""
        if self.since is None:
            return
        log.info(
            "credentials accepted again after %.1fs (%d refused calls, %d probes): resuming",
            self.failing_for(),
            self.refused,
            self.probes,
        )
        self.since = None
        self.refused = 0
        self._over.set()

    # --- calls ---------------------------------------------------------------------------

    async def call(self, send: Callable[[], Awaitable[T]]) -> T:
        """Run ``send`` (one SQS call), in turn during an outage; its result ends or starts
        an outage. Raises what ``send`` raises."""
        if self.since is None:
            return await self._watched(send)
        self.holding += 1
        try:
            async with self._turn:
                if self.since is not None:  # still failing: this call is the next probe
                    await self._before_probe()
                    return await self._watched(send)
        finally:
            self.holding -= 1
        return await self._watched(send)  # the outage ended while this call waited

    async def wait_open(self) -> None:
        """The pollers' gate: returns at once unless receiving is paused."""
        while self.paused:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PAUSE_RECHECK_SECONDS):
                    await self._over.wait()

    async def _watched(self, send: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await send()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = classify_exception(exc)
            if failure.credentials:
                self.failed(failure.code)
            elif isinstance(exc, ClientError):  # SQS authenticated the call to answer it
                self.succeeded()
            raise
        self.succeeded()
        return result

    async def _before_probe(self) -> None:
        await asyncio.sleep(self._backoff.delay(min(self.probes, 30), self._rng))
        self.probes += 1
        now = self._clock()
        if self._refresh is None or (
            self._refreshed_at is not None and now - self._refreshed_at < REFRESH_INTERVAL_SECONDS
        ):
            return
        self._refreshed_at = now
        try:
            await self._refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = classify_exception(exc)
            self._stats.credential_errors[failure.code] += 1
            log.warning("credential refresh failed (%s: %s)", failure.code, failure.message)
