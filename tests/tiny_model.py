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


def _graph(size: int, seed: int = 0) -> onnx.GraphProto:
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
    return helper.make_graph(
        nodes,
        "tiny-cascade",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [
            helper.make_tensor_value_info("p_organic", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("material_probs", TensorProto.FLOAT, ["N", 6]),
        ],
        initializers,
    )


def write_tiny_model(directory: Path, size: int = 64, version: str = "tiny-test", seed: int = 0) -> Path:
    """Write model.onnx and manifest.json into ``directory`` and return it (``seed``: other weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(_graph(size, seed), opset_imports=[helper.make_opsetid("", 17)])
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
        thresholds=CascadeThresholds(organic=0.5, material_min_confidence=0.0),
    )
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2))
    return directory
