"""The reference packing: entries split greedily, in order, into batches under the SQS limits.

It is exactly what fanout's ``BatchBuffer`` does when no linger cuts a batch short, so the
bench uses it for the minimum number of send calls a workload needs, and the tests use it to
check the buffer's flush points.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from fanout.pipeline.batching import BatchBuffer, BatchLimits

T = TypeVar("T")


def pack(items: Iterable[tuple[T, int]], limits: BatchLimits = BatchLimits()) -> list[list[T]]:
    """Split ``(item, size)`` pairs, in order, into batches that respect ``limits``."""
    buffer: BatchBuffer[T] = BatchBuffer(limits)
    batches: list[list[T]] = []
    for item, size in items:
        batches.extend(buffer.add(item, size))
    if len(buffer):
        batches.append(buffer.take())
    return batches
