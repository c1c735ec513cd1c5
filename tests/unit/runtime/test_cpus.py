"""``--processes auto``: affinity capped by the cgroup CPU quota, read from fake cgroup trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanout.runtime.cpus import available_cpus, cgroup_cpu_quota


def tree(tmp_path: Path, files: dict[str, str], proc: str = "0::/\n") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    root.mkdir()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc_cgroup = tmp_path / "proc-self-cgroup"
    proc_cgroup.write_text(proc)
    return root, proc_cgroup


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "expected"),
    [
        ("max 100000\n", 8, 8),  # no quota: the affinity
        ("200000 100000\n", 8, 2),  # 2 CPUs
        ("150000 100000\n", 8, 2),  # 1.5 CPUs: rounded up
        ("50000 100000\n", 8, 1),  # half a CPU: still one process
        ("400000 100000\n", 2, 2),  # the affinity is the tighter bound
    ],
)
def test_cgroup_v2_cpu_max(tmp_path: Path, cpu_max: str, affinity: int, expected: int) -> None:
    root, proc = tree(tmp_path, {"cpu.max": cpu_max})
    assert available_cpus(affinity=affinity, root=root, proc_cgroup=proc) == expected


def test_cgroup_v2_nested_path_takes_the_tightest_ancestor(tmp_path: Path) -> None:
    root, proc = tree(
        tmp_path,
        {
            "cpu.max": "max 100000\n",
            "kubepods/cpu.max": "300000 100000\n",
            "kubepods/pod1/cpu.max": "max 100000\n",
            "kubepods/pod1/c1/cpu.max": "max 100000\n",
        },
        proc="0::/kubepods/pod1/c1\n",
    )
    assert cgroup_cpu_quota(root, proc) == 3
    assert available_cpus(affinity=16, root=root, proc_cgroup=proc) == 3


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("-1", "100000", None), ("250000", "100000", 3), ("100000", "100000", 1)],
)
def test_cgroup_v1_cfs_quota(tmp_path: Path, quota: str, period: str, expected: int | None) -> None:
    root, proc = tree(
        tmp_path,
        {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": quota,
         "cpu,cpuacct/docker/abc/cpu.cfs_period_us": period},
        proc="2:cpuacct:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/\n",
    )  # fmt: skip
    assert cgroup_cpu_quota(root, proc) == expected
    assert available_cpus(affinity=4, root=root, proc_cgroup=proc) == (expected or 4)


def test_no_cgroup_files_means_the_affinity(tmp_path: Path) -> None:
    root = tmp_path / "nothing"
    assert available_cpus(affinity=6, root=root, proc_cgroup=tmp_path / "missing") == 6


def test_garbage_cpu_max_is_ignored(tmp_path: Path) -> None:
    root, proc = tree(tmp_path, {"cpu.max": "lots\n"})
    assert available_cpus(affinity=3, root=root, proc_cgroup=proc) == 3


def test_this_host_answers_at_least_one() -> None:
    assert available_cpus() >= 1
