"""How many CPUs this process may use: its affinity and its cgroup's CPU limit, not the host's cores.

Under a container CPU limit (Kubernetes ``limits.cpu: 1``, compose ``cpus: 1.0``) ONNX Runtime's
default of one thread per host core runs, say, 16 threads on one CPU's worth of quota: every
thread is throttled in turn and a batch's latency multiplies. ``--inference-threads 0`` uses
this count instead.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup's quota allows (cgroup v2 ``cpu.max``, else v1 CFS files); None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Whole CPUs this process may keep busy: at least 1, rounded down so that no thread waits
    for quota (1.5 CPUs gives 1 thread)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    return max(1, min(affinity, int(limit) if limit is not None else affinity))
