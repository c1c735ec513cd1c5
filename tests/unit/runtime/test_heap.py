"""settle_heap: start-up objects frozen, young collections spaced out (in a child process: the
test process must not freeze its own garbage)."""

from __future__ import annotations

import subprocess
import sys

from fanout.runtime.heap import YOUNG_THRESHOLD

PROBE = """
import gc
from fanout.runtime.heap import settle_heap
before = gc.get_freeze_count(), gc.get_threshold()
settle_heap()
print(before[0], *before[1], gc.get_freeze_count(), *gc.get_threshold())
"""


def test_settle_heap_freezes_start_up_and_raises_the_young_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    frozen_before, *threshold_before, frozen_after, young, older, oldest = map(int, out)
    assert frozen_before == 0 and threshold_before[0] < YOUNG_THRESHOLD  # CPython's defaults
    assert frozen_after > 1_000  # the imported modules' objects at least
    assert (young, older, oldest) == (YOUNG_THRESHOLD, *threshold_before[1:])
