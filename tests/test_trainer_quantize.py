"""int8 and fp16 encodings of a (tiny) cascade model: parity and agreement with fp32."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import torch

from sortline.manifest import InputSpec
from sortline_runtime.sessions import open_session as session
from tests.finetune_support import tiny_backbone
from trainer.data.dataset import Sample
from trainer.fit.heads import make_head
from trainer.model.cascade_net import CascadeNet
from trainer.model.onnx_export import export_onnx
from trainer.release.export import parity_batch, torch_parity
from trainer.release.int8 import calibration_samples, quantize_int8, speed
from trainer.release.variants import convert_fp16

SPEC = InputSpec(size=32)


def tiny_exported(tmp_path: Path, images: int) -> tuple[CascadeNet, Path, list[Sample]]:
    """A tiny cascade exported to ``tmp_path/model.onnx``, and ``images`` random JPEG samples."""
    torch.manual_seed(0)
    net = CascadeNet(tiny_backbone(), make_head(1, 0.0), make_head(6, 0.0)).eval()
    fp32 = tmp_path / "model.onnx"
    export_onnx(net, fp32, ["p_organic", "material_probs"], size=SPEC.size)
    rng = np.random.default_rng(0)
    samples = []
    (tmp_path / "img").mkdir()
    for i in range(images):
        path = tmp_path / "img" / f"{i}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, size=(40, 50, 3), dtype=np.uint8))
        samples.append(Sample(path, "glass", f"x/glass/{i}.jpg"))
    return net, fp32, samples


def test_int8_model_agrees_with_fp32_and_torch(tmp_path: Path) -> None:
    net, fp32, samples = tiny_exported(tmp_path, 24)
    int8 = tmp_path / "model.int8.onnx"
    parity = torch_parity(net, fp32, parity_batch(samples, SPEC, count=8))
    assert parity["material_probs"] < 1e-4 and parity["material_agreement"] == 1.0

    quantize_int8(fp32, int8, calibration_samples(samples, 16), SPEC)
    batch = parity_batch(samples, SPEC, count=24)
    p32, m32 = session(fp32).run(None, {"image": batch})
    p8, m8 = session(int8).run(None, {"image": batch})
    assert np.abs(p32 - p8).max() < 0.1
    assert np.abs(m32 - m8).max() < 0.1
    assert np.allclose(m8.sum(axis=1), 1.0, atol=1e-4)

    figures = speed({"fp32": fp32, "int8": int8}, SPEC, batch_sizes=(4,), seconds=0.05)
    assert set(figures) == {"fp32_b4", "int8_b4"} and min(figures.values()) > 0


def test_mirror_averaged_graph_exports_with_the_same_interface(tmp_path: Path) -> None:
    torch.manual_seed(0)
    single = CascadeNet(tiny_backbone(), make_head(1, 0.0), make_head(6, 0.0)).eval()
    mirrored = CascadeNet(single.backbone, single.organic_head, single.material_head, mirror_average=True)
    path = tmp_path / "model.onnx"
    export_onnx(mirrored, path, ["p_organic", "material_probs"], size=SPEC.size)
    batch = np.random.default_rng(0).standard_normal((3, 3, SPEC.size, SPEC.size)).astype(np.float32)
    p, m = session(path).run(None, {"image": batch})
    assert p.shape == (3,) and m.shape == (3, 6)
    with torch.inference_mode():
        p_plain, m_plain = single(torch.from_numpy(batch))
        p_flip, m_flip = single(torch.from_numpy(batch[..., ::-1].copy()))
    assert np.allclose(p, ((p_plain + p_flip) / 2).numpy(), atol=1e-5)
    assert np.allclose(m, ((m_plain + m_flip) / 2).numpy(), atol=1e-5)


def test_fp16_model_keeps_float32_io_and_agrees_with_fp32(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = CascadeNet(tiny_backbone(), make_head(1, 0.0), make_head(6, 0.0)).eval()
    fp32, fp16 = tmp_path / "model.onnx", tmp_path / "model.fp16.onnx"
    export_onnx(net, fp32, ["p_organic", "material_probs"], size=SPEC.size)
    convert_fp16(fp32, fp16)
    graph = onnx.load(str(fp16)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # callers unchanged
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)
    batch = np.random.default_rng(1).standard_normal((4, 3, SPEC.size, SPEC.size), dtype=np.float32)
    p32, m32 = session(fp32).run(None, {"image": batch})
    p16, m16 = session(fp16).run(None, {"image": batch})
    assert p16.dtype == np.float32 and np.abs(p32 - p16).max() < 0.01 and np.abs(m32 - m16).max() < 0.01


def test_nodes_kept_float_keep_float_weights(tmp_path: Path) -> None:
    _, fp32, samples = tiny_exported(tmp_path, 8)
    int8 = tmp_path / "model.int8.onnx"
    kept = "/material_head/material_head.1/Gemm"
    quantize_int8(fp32, int8, samples, SPEC, keep_float=[kept])
    graph = onnx.load(str(int8)).graph
    initializers = {init.name: init for init in graph.initializer}
    gemms = {node.name: node for node in graph.node if node.op_type == "Gemm"}
    assert initializers[gemms[kept].input[1]].data_type == onnx.TensorProto.FLOAT
    quantized = gemms["/organic_head/organic_head.1/Gemm"].input[1]
    assert quantized not in initializers  # fed by a DequantizeLinear of int8 weights
