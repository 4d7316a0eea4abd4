"""CPU sizing from cgroup limits (fake cgroup folders), and what the server makes of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from modelrollout.serving.server import cpu
from modelrollout.serving.server.cpu import cpu_quota, usable_cpus


def cgroup_v2(root: Path, cpu_max: str | bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cpu.max"
    path.write_bytes(cpu_max if isinstance(cpu_max, bytes) else cpu_max.encode())
    return root


def cgroup_v1(root: Path, quota: str, period: str = "100000\n") -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota)
    (root / "cpu" / "cpu.cfs_period_us").write_text(period)
    return root


@pytest.fixture
def affinity(monkeypatch):
    """Pretend this process may run on ``n`` CPUs."""

    def set_cpus(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)

    return set_cpus


@pytest.mark.parametrize(
    ("content", "quota"),
    [
        ("150000 100000\n", 1.5),
        ("50000 100000", 0.5),
        ("400000 200000", 2.0),
        ("200000", 2.0),  # no period: the kernel's default of 100 ms
        ("max 100000\n", None),
        ("max", None),
    ],
)
def test_cgroup_v2_cpu_max(tmp_path, content, quota):
    assert cpu_quota(cgroup_v2(tmp_path, content)) == quota


@pytest.mark.parametrize(
    ("quota_us", "period_us", "quota"),
    [("300000\n", "100000\n", 3.0), ("150000", "100000", 1.5), ("-1\n", "100000\n", None)],
)
def test_cgroup_v1_cfs_quota(tmp_path, quota_us, period_us, quota):
    assert cpu_quota(cgroup_v1(tmp_path, quota_us, period_us)) == quota


def test_cgroup_v2_wins_over_v1(tmp_path):
    root = cgroup_v1(cgroup_v2(tmp_path, "100000 100000"), "800000")
    assert cpu_quota(root) == 1.0


@pytest.mark.parametrize(
    "content",
    ["", "lots", "abc 100000", "150000 abc", "1.5 100000", "150000 100000 7", "100000 0",
     "0 100000", "-5 100000", b"\xff\xfe\x00garbage"],
)
def test_garbage_cpu_max_means_no_limit(tmp_path, content):
    assert cpu_quota(cgroup_v2(tmp_path, content)) is None


@pytest.mark.parametrize(("quota_us", "period_us"), [("x", "100000"), ("100000", "0"),
                                                     ("100000", ""), ("0", "100000")])
def test_garbage_v1_files_mean_no_limit(tmp_path, quota_us, period_us):
    assert cpu_quota(cgroup_v1(tmp_path, quota_us, period_us)) is None


def test_no_cgroup_files_mean_no_limit(tmp_path):
    assert cpu_quota(tmp_path) is None
    assert cpu_quota(tmp_path / "does-not-exist") is None


def test_unreadable_cpu_max_means_no_limit(tmp_path):
    (tmp_path / "cpu.max").mkdir()  # not a file: falls through to v1, which is absent
    assert cpu_quota(tmp_path) is None


@pytest.mark.parametrize(
    ("cpu_max", "cpus", "usable"),
    [
        ("150000 100000", 8, 2),  # 1.5 CPUs of quota: 2 threads
        ("150000 100000", 1, 1),  # capped by affinity
        ("max 100000", 6, 6),  # no quota: the affinity mask
        ("10000 100000", 4, 1),  # a tenth of a CPU: still one thread
        ("garbage", 3, 3),
    ],
)
def test_usable_cpus_is_quota_capped_by_affinity(tmp_path, affinity, cpu_max, cpus, usable):
    affinity(cpus)
    assert usable_cpus(cgroup_v2(tmp_path, cpu_max)) == usable


def test_usable_cpus_without_affinity_uses_cpu_count(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # as on macOS
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    assert usable_cpus(cgroup_v2(tmp_path, "250000 100000")) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpus(tmp_path / "none") == 1


def test_default_root_is_the_cgroup_mount():
    assert Path("/sys/fs/cgroup") == cpu.CGROUP_ROOT
    assert usable_cpus() >= 1


def model_ready_record(server) -> dict:
    server.wait_ready()
    records = [json.loads(line) for line in server.logs().splitlines()]
    (ready,) = [r for r in records if r["message"] == "model ready"]
    return ready


def test_auto_intra_op_threads_follow_usable_cpus(start_server, tiny_model):
    args = ["--model-uri", str(tiny_model), "--model-name", "tiny"]
    auto = start_server([*args, "--intra-op-threads", "0"], ready=False)
    fixed = start_server([*args, "--intra-op-threads", "3"], ready=False)
    assert model_ready_record(auto)["intra_op_threads"] == usable_cpus()
    assert model_ready_record(fixed)["intra_op_threads"] == 3
