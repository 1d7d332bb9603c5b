"""A tiny, untrained cascade model written with onnx.helper, for tests about plumbing, not accuracy.

It honours the real artifact contract (input/output names and shapes, manifest, sha256), loads in
milliseconds, and its answers depend on the image's mean colour, so tests can steer the bin.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sortline.cascade import CascadeThresholds
from sortline.manifest import MANIFEST_FILE, ModelManifest, sha256_of


def _hazard_part() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], onnx.ValueInfoProto]:
    """p_hazard = sigmoid(4 * blue - 6): only near-white (blue-bright) images are hazards."""
    nodes = [
        helper.make_node("MatMul", ["features", "hazard_w"], ["hazard_scaled"]),
        helper.make_node("Add", ["hazard_scaled", "hazard_b"], ["hazard_logit"]),
        helper.make_node("Sigmoid", ["hazard_logit"], ["hazard_2d"]),
        helper.make_node("Reshape", ["hazard_2d", "flat_shape"], ["p_hazard"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([[0.0], [0.0], [4.0]], dtype=np.float32), "hazard_w"),
        numpy_helper.from_array(np.array([-6.0], dtype=np.float32), "hazard_b"),
    ]
    return nodes, initializers, helper.make_tensor_value_info("p_hazard", TensorProto.FLOAT, ["N"])


def _graph(size: int, seed: int = 0, hazard: bool = False) -> onnx.GraphProto:
    rng = np.random.default_rng(seed)
    organic_w = np.array([[0.0], [4.0], [0.0]], dtype=np.float32)  # green -> organic
    material_w = rng.normal(0.0, 2.0, size=(3, 6)).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("MatMul", ["features", "organic_w"], ["organic_logit"]),
        helper.make_node("Sigmoid", ["organic_logit"], ["organic_2d"]),
        helper.make_node("Reshape", ["organic_2d", "flat_shape"], ["p_organic"]),
        helper.make_node("MatMul", ["features", "material_w"], ["material_logits"]),
        helper.make_node("Softmax", ["material_logits"], ["material_probs"], axis=1),
    ]
    initializers = [
        numpy_helper.from_array(organic_w, "organic_w"),
        numpy_helper.from_array(material_w, "material_w"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape"),
    ]
    outputs = [
        helper.make_tensor_value_info("p_organic", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("material_probs", TensorProto.FLOAT, ["N", 6]),
    ]
    if hazard:
        hazard_nodes, hazard_initializers, hazard_output = _hazard_part()
        nodes, initializers = nodes + hazard_nodes, initializers + hazard_initializers
        outputs.append(hazard_output)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])
    return helper.make_graph(nodes, "tiny-cascade", [image], outputs, initializers)


def write_tiny_model(
    directory: Path, size: int = 64, version: str = "tiny-test", seed: int = 0, hazard: bool = False
) -> Path:
    """Write model.onnx and manifest.json into ``directory`` and return it (``seed``: other weights;
    ``hazard``: with a p_hazard output, as models with the hazard bin have)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(_graph(size, seed, hazard), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx_path = directory / "model.onnx"
    onnx.save(model, onnx_path)
    manifest = ModelManifest(
        version=version,
        created_at=datetime.now(UTC).isoformat(),
        architecture="tiny test graph (untrained)",
        onnx_sha256=sha256_of(onnx_path),
        input={"size": size},
        outputs={"p_hazard": "p_hazard"} if hazard else {},
        thresholds=CascadeThresholds(organic=0.5, material_min_confidence=0.0),
    )
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2))
    return directory
