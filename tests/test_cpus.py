"""--inference-threads 0 follows the container's CPU limit, not the host's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from classifier_worker.cpus import available_cpus, cgroup_cpu_limit
from classifier_worker.service import model_loader
from classifier_worker.settings import WorkerSettings
from sortline_runtime.model import CascadeModel

HOST_CPUS = len(os.sched_getaffinity(0))


def cgroup_v2(tmp_path: Path, cpu_max: str) -> Path:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def cgroup_v1(tmp_path: Path, quota: int, period: int) -> Path:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return tmp_path


def test_cgroup_v2_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(cgroup_v2(tmp_path, "150000 100000")) == 1.5
    assert available_cpus(tmp_path) == 1  # rounded down: no thread waits for quota


def test_cgroup_v2_unlimited(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(cgroup_v2(tmp_path, "max 100000")) is None
    assert available_cpus(tmp_path) == HOST_CPUS


def test_cgroup_v1_limit_and_unlimited(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(cgroup_v1(tmp_path, 50_000, 100_000)) == 0.5
    assert available_cpus(tmp_path) == 1  # never 0
    other = tmp_path / "other"
    other.mkdir()
    assert cgroup_cpu_limit(cgroup_v1(other, -1, 100_000)) is None


def test_no_cgroup_files_means_the_affinity(tmp_path: Path) -> None:
    assert available_cpus(tmp_path) == HOST_CPUS


@pytest.mark.parametrize(("flag", "expected"), [(0, "available"), (3, 3)])
def test_the_model_gets_the_resolved_thread_count(
    flag: int, expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("classifier_worker.service.available_cpus", lambda: 7)
    asked: dict = {}
    monkeypatch.setattr(CascadeModel, "load", lambda _path, **options: asked.update(options))
    model_loader(WorkerSettings(inference_threads=flag))()
    assert asked["intra_op_threads"] == (7 if expected == "available" else expected)
