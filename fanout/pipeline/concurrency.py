"""Adaptive concurrency: how many calls one queue's batcher runs at once (pure, no I/O).

A fixed number of calls in flight is either the cap (a real SQS answers in 10-50 ms, and 8
sends of 10 entries per 20 ms is 4,000 copies/s) or too many for a throttled queue. ``AimdLimit``
finds the number as TCP does: additive increase while the calls in flight use the limit,
multiplicative decrease on a throttle or a retryable failure. Each target's sender, the DLQ's
sender and the acker's deletes have their own, so one throttled target lowers only its own.
"""

from __future__ import annotations

from fanout.observability.stats import Stats

# Multiplied into the limit on each throttled or retryable-failed attempt.
DECREASE = 0.9


class AimdLimit:
    """Additive-increase, multiplicative-decrease limit on one queue's calls in flight.

    ``free`` says whether one more call may start; ``acquire``/``release`` count the calls.
    ``record`` is told each attempt's outcome: a success raises the limit by one while at
    least half of it is in use (an idle queue does not grow it: no evidence it is needed); a
    throttle or retryable failure multiplies it by ``DECREASE``, never below ``floor``.

    Parameters:
        initial: the starting limit (FANOUT_SEND_CONCURRENCY).
        ceiling: the most it may grow to (FANOUT_MAX_POOL_CONNECTIONS: more calls than
            connections only queue in the pool).
        floor: the least (1: a throttled queue still gets one call at a time).
        name: the key in ``stats.concurrency`` (a target's name, ``dlq``, ``delete``).
        stats: where the current and peak limit are shown (live line, summary, gauges).
    """

    def __init__(
        self,
        initial: int,
        *,
        ceiling: int | None = None,
        floor: int = 1,
        name: str = "",
        stats: Stats | None = None,
    ) -> None:
        self.floor = max(1, floor)
        self.ceiling = max(self.floor, initial if ceiling is None else ceiling)
        self._limit = float(min(max(initial, self.floor), self.ceiling))
        self.in_use = 0
        self.peak = int(self._limit)
        self.name = name
        self._stats = stats
        self._show()

    @classmethod
    def fixed(cls, limit: int) -> AimdLimit:
        """A limit that never moves (ceiling = floor = ``limit``)."""
        return cls(limit, ceiling=limit, floor=limit)

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def free(self) -> bool:
        return self.in_use < int(self._limit)

    def acquire(self) -> None:
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1

    def record(self, throttled: bool) -> None:
        """One attempt's outcome: ``throttled`` for a throttle or retryable failure."""
        before = int(self._limit)
        if throttled:
            self._limit = max(float(self.floor), self._limit * DECREASE)
        elif 2 * self.in_use >= self._limit:
            self._limit = min(float(self.ceiling), self._limit + 1)
        if int(self._limit) != before:
            self.peak = max(self.peak, int(self._limit))
            self._show()

    def _show(self) -> None:
        if self._stats is not None and self.name:
            self._stats.concurrency[self.name] = int(self._limit)
            peaks = self._stats.peak_concurrency
            peaks[self.name] = max(peaks.get(self.name, 0), int(self._limit))
