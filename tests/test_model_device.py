"""Device selection for the served model: auto, cpu and cuda (the parts that run without a GPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from classifier_worker.model import DeviceUnavailable, select_providers

CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("cpu", WITH_CUDA, ["CPUExecutionProvider"]),
        ("auto", CPU_ONLY, ["CPUExecutionProvider"]),
        ("auto", WITH_CUDA, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("cuda", WITH_CUDA, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ],
)
def test_providers_follow_the_device_flag(device, available, expected) -> None:
    assert select_providers(device, available) == expected


def test_cuda_without_a_cuda_provider_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailable, match="onnxruntime-gpu"):
        select_providers("cuda", CPU_ONLY)


def test_worker_cli_exits_2_when_cuda_is_demanded_but_absent(tiny_model_dir) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA; the error path cannot be exercised here")
    result = subprocess.run(
        [sys.executable, "-m", "classifier_worker.cli", "--model", str(tiny_model_dir), "--device", "cuda",
         "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "onnxruntime-gpu" in result.stderr
