"""How many CPUs this container may use: the cgroup quota, not the host's core count."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs granted by the cgroup CPU limit (v2 cpu.max or v1 cfs quota); None if unlimited
    or unreadable."""
    v2 = root / "cpu.max"
    try:
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            if quota == "max":
                return None
            return _ratio(quota, period or "100000")
        quota_file = root / "cpu" / "cpu.cfs_quota_us"
        period_file = root / "cpu" / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            return _ratio(quota_file.read_text(), period_file.read_text())
    except (OSError, ValueError):
        return None
    return None


def _ratio(quota: str, period: str) -> float | None:
    # v1 writes -1 for "no limit"; a zero or negative value anywhere is not a limit the
    # kernel would hold, so size thread pools from the affinity mask instead.
    quota_us, period_us = int(quota), int(period)
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """Whole CPUs to size thread pools with: min(affinity, ceil(quota)), at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = cpu_quota(root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)
