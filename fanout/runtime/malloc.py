"""glibc's malloc, pinned so that large freed blocks go back to the OS.

glibc serves blocks of at least ``M_MMAP_THRESHOLD`` (128 KiB) with their own mmap, returned
to the OS on free, but raises that threshold to the size of each such block freed (up to
32 MiB). After one freed ReceiveMessage response of 9 MB, every later body of up to 9 MB comes
from the heap instead, where freed memory stays resident and fragments: with 900 KB events that
held ~25-30 MiB of RSS more than the bodies in flight (bench/memory.py, README "Memory").
Setting the threshold explicitly turns the adjustment off (glibc's ``mallopt``), as the
``MALLOC_MMAP_THRESHOLD_`` variable does. Events under 128 KiB never reach the threshold, so
for them nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def pin_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> int | None:
    """Pin glibc's mmap threshold; returns the threshold in force, or None when this is not
    glibc. A ``MALLOC_MMAP_THRESHOLD_`` in the environment wins (glibc applied it at start)."""
    if platform.libc_ver()[0] != "glibc":
        return None  # musl, macOS: their allocators do not move a threshold
    configured = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    if configured is not None:
        return int(configured) if configured.isdigit() else None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return threshold if mallopt(M_MMAP_THRESHOLD, threshold) == 1 else None
