"""Device selection for the served model: auto, cpu and cuda (the parts that run without a GPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sortline_runtime.model import DeviceUnavailable, select_providers

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


def test_a_variant_the_manifest_does_not_list_is_a_clear_exit_2(tiny_model_dir) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "classifier_worker.cli", "--model", str(tiny_model_dir), "--variant", "int8",
         "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "no variant 'int8'" in result.stderr


def test_a_listed_variant_is_served_under_its_own_version(tiny_model_dir, tmp_path) -> None:
    import json
    import shutil

    from sortline.manifest import ModelIntegrityError, sha256_of
    from sortline_runtime.model import CascadeModel

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    shutil.copy(model_dir / "model.onnx", model_dir / "model.alt.onnx")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["variants"] = {
        "alt": {"file": "model.alt.onnx", "sha256": sha256_of(model_dir / "model.alt.onnx")}
    }
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    assert CascadeModel.load(model_dir, variant="alt").version == "tiny-test+alt"
    (model_dir / "model.alt.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        CascadeModel.load(model_dir, variant="alt")


@pytest.mark.parametrize(
    ("requested", "delta", "providers", "expected"),
    [
        ("auto", -0.001, ["CPUExecutionProvider"], "int8"),  # cheap enough: int8 on a CPU
        ("auto", -0.02, ["CPUExecutionProvider"], None),  # costs 2 points: keep fp32
        ("auto", -0.001, ["CUDAExecutionProvider", "CPUExecutionProvider"], "fp16"),  # GPUs: fp16
        ("auto", -0.02, ["CUDAExecutionProvider", "CPUExecutionProvider"], None),  # too costly: fp32
        ("auto", None, ["CPUExecutionProvider"], None),  # cost never measured: keep fp32
        ("main", -0.001, ["CPUExecutionProvider"], None),
        ("int8", -0.02, ["CPUExecutionProvider"], "int8"),  # asked for by name: served as asked
    ],
)
def test_auto_serves_int8_on_cpus_fp16_on_gpus_only_when_it_costs_at_most_half_a_point(
    requested, delta, providers, expected
):
    from sortline.manifest import ModelManifest
    from sortline_runtime.model import choose_variant

    manifest = ModelManifest(
        version="v", created_at="now", architecture="a", onnx_sha256="0" * 64,
        variants={
            "int8": {"file": "m.int8.onnx", "sha256": "1" * 64, "accuracy_delta": delta},
            "fp16": {"file": "m.fp16.onnx", "sha256": "2" * 64, "accuracy_delta": delta},
        },
    )  # fmt: skip
    assert choose_variant(requested, manifest, providers) == expected
