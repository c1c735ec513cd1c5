"""How many CPUs this process may use: its affinity, capped by the cgroup CPU quota.

``os.cpu_count()`` reports the host's CPUs; a container limited to 2 CPUs on a 64-core node
would start 64 pipelines that the CFS quota then throttles. The quota (cgroup v2 ``cpu.max``,
v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) is rounded up: 1.5 CPUs give 2 processes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def available_cpus(
    *,
    affinity: int | None = None,
    root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_SELF_CGROUP,
) -> int:
    """CPUs for ``--processes auto``: the scheduler affinity capped by the cgroup quota."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(root, proc_cgroup)
    return max(1, min(affinity, quota) if quota is not None else affinity)


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The tightest CPU quota on this process's cgroup path (rounded up), None if unlimited.

    Every ancestor's quota applies too, so the path is walked from the process's own cgroup up
    to ``root`` (inside a container the cgroup namespace usually makes that ``root`` itself)."""
    quotas = [q for d in _cgroup_dirs(root, proc_cgroup) if (q := _quota_of(d)) is not None]
    return min(quotas) if quotas else None


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    relative: list[str] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        # v2: "0::/path"; v1: "4:cpu,cpuacct:/path" (its files live under root/cpu,cpuacct).
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            relative.append(path)
        elif "cpu" in controllers.split(","):
            relative.append(f"{controllers}{path}")
            relative.append(f"cpu{path}")
    dirs: list[Path] = []
    for rel in relative:
        here = root / rel.strip("/")
        while True:
            dirs.append(here)
            if here == root or root not in here.parents:
                break
            here = here.parent
    # The root itself and v1's usual mount points, in case /proc/self/cgroup was unreadable.
    dirs += [root, root / "cpu", root / "cpu,cpuacct"]
    return list(dict.fromkeys(dirs))


def _quota_of(directory: Path) -> int | None:
    try:
        quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
        if quota != "max":
            return _ceil(int(quota), int(period or "100000"))
        return None
    except (OSError, ValueError):
        pass
    try:
        v1_quota = int((directory / "cpu.cfs_quota_us").read_text())
        v1_period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return _ceil(v1_quota, v1_period) if v1_quota > 0 else None


def _ceil(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))
