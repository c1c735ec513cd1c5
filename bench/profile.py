"""Split fanout's CPU by stage from a cProfile run (on the stub).

Every function's own time (tottime) goes to a stage by its source file; C built-ins (no file)
are split among their callers in proportion to the time each caller spent in them. Waiting in
epoll is idle, not CPU; imports are start-up. The shares are then applied to the CPU per event
measured in a run without the profiler (cProfile itself inflates Python-heavy code)."""

from __future__ import annotations

import pstats
from collections import Counter
from pathlib import Path
from typing import Any

STAGES = ("parse+validate", "match", "send/SDK", "other")
_RULES: tuple[tuple[str, str], ...] = (
    ("/fanout/events.py", "parse+validate"),
    ("/pydantic", "parse+validate"),
    ("/orjson", "parse+validate"),
    ("/fanout/rules.py", "match"),
    ("/fanout/rules/", "match"),  # the rules subpackage (index, jmescompile, patterns, model)
    ("/jmespath/", "match"),
    ("/fanout/jmes", "match"),
    ("/fanout/pattern", "match"),
    ("/fanout/aws/lean.py", "send/SDK"),  # the lean client is fanout's SDK for the hot calls
    ("/fanout/aws/sigv4.py", "send/SDK"),
    ("/fanout/aws/credentials.py", "send/SDK"),
    ("/botocore/", "send/SDK"),
    ("/aiobotocore/", "send/SDK"),
    ("/aioboto3/", "send/SDK"),
    ("/aiohttp/", "send/SDK"),
    ("/yarl/", "send/SDK"),
    ("/multidict/", "send/SDK"),
    ("/urllib3/", "send/SDK"),
    ("/email/", "send/SDK"),
    ("/http/", "send/SDK"),
    ("/json/", "send/SDK"),
    ("/dateutil/", "send/SDK"),
    ("/urllib/", "send/SDK"),
    ("/hmac.py", "send/SDK"),
    ("/uuid.py", "send/SDK"),
    ("/base64.py", "send/SDK"),
    ("asyncio/selector_events.py", "send/SDK"),
    ("asyncio/streams.py", "send/SDK"),
    ("importlib", "startup"),
    ("<frozen", "startup"),
)
_IDLE = ("poll' of 'select.epoll", "select' of 'select.", "sleep")
_STARTUP_BUILTINS = ("marshal.loads", "builtins.compile", "__build_class__", "posix.stat")


def _stage_of_file(filename: str) -> str | None:
    for needle, stage in _RULES:
        if needle in filename:
            return stage
    return None


def split(profile: Path) -> dict[str, Any]:
    stats: dict[Any, Any] = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    seconds: Counter[str] = Counter()
    memo: dict[Any, str] = {}

    def stage(func: Any) -> str:
        if func not in memo:
            memo[func] = (func[0] != "~" and _stage_of_file(func[0])) or "other"
        return memo[func]

    for func, (_, _, tt, _, callers) in stats.items():
        filename, _, name = func
        if filename != "~":
            seconds[stage(func)] += tt
            continue
        if any(s in name for s in _IDLE):
            seconds["idle"] += tt
            continue
        if any(s in name for s in _STARTUP_BUILTINS):
            seconds["startup"] += tt
            continue
        total = sum(c[2] for c in callers.values()) or 1.0
        for caller, c in callers.items():
            seconds[stage(caller)] += tt * c[2] / total
    work = sum(seconds[s] for s in STAGES) or 1e-9
    return {
        "profiled_seconds": {k: round(v, 3) for k, v in sorted(seconds.items())},
        "shares": {s: round(seconds[s] / work, 4) for s in STAGES},
    }
