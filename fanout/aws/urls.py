"""Queue URL helpers (pure): a queue's name and region from its URL."""

from __future__ import annotations

import re

_REGION_IN_URL = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def queue_name(url: str) -> str:
    """The queue's name: the last path segment of its URL."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def region_of(url: str) -> str | None:
    """The region in an AWS queue URL (``https://sqs.<region>.amazonaws.com/...``), else None."""
    match = _REGION_IN_URL.match(url)
    return match.group(1) if match else None


def is_fifo(url: str) -> bool:
    """FIFO queue names end in ``.fifo`` (SQS requires it)."""
    return queue_name(url).endswith(".fifo")
