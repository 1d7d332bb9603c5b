"""The serving runtime shared by worker and trainer: the resize rule, normalisation, sessions, decisions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sortline.cascade import CascadeThresholds, decide
from sortline.manifest import InputSpec, ModelIntegrityError, load_manifest, sha256_of
from sortline_runtime.imaging import resize_for_model, shrinks, to_model_input
from sortline_runtime.model import decide_batch
from sortline_runtime.sessions import open_session

#: How the first models' manifests were written: no interpolation or pixel_scale, no hazard output.
OLD_MANIFEST = {
    "schema_version": 1, "version": "lite0-ft-20261124-bed2a8a7", "created_at": "2026-11-24T23:57:59+00:00",
    "architecture": "efficientnet_lite0 (fine-tuned) + 2 heads", "onnx_file": "model.onnx",
    "input": {"name": "image", "size": 224, "color": "RGB", "layout": "NCHW", "resize": "squash",
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "outputs": {"p_organic": "p_organic", "material_probs": "material_probs"},
    "materials": ["cardboard", "glass", "metal", "paper", "plastic", "trash"],
    "thresholds": {"organic": 0.194516, "material_min_confidence": 0.9995},
}  # fmt: skip


def test_a_manifest_without_the_newer_fields_loads_with_todays_behaviour(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not read")
    (tmp_path / "manifest.json").write_text(
        json.dumps(OLD_MANIFEST | {"onnx_sha256": sha256_of(tmp_path / "model.onnx")})
    )
    manifest = load_manifest(tmp_path, verify=True)
    assert manifest.input.interpolation == "area-when-shrinking"
    assert manifest.input.pixel_scale == 255.0
    assert manifest.outputs.p_hazard is None  # served without a hazard check
    assert manifest.thresholds.material_min_confidence == 0.9995


@pytest.mark.parametrize(
    ("height", "width", "expected"), [(225, 400, True), (224, 400, False), (100, 80, False), (300, 300, True)]
)
def test_area_averaging_only_when_the_short_side_shrinks(height: int, width: int, expected: bool) -> None:
    assert shrinks(height, width, InputSpec(size=224)) is expected


def test_resize_follows_the_rule_with_opencv_filters() -> None:
    spec = InputSpec(size=32)
    image = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    area = cv2.cvtColor(cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    assert np.array_equal(resize_for_model(image, spec), area)
    small = image[:20, :24]
    linear = cv2.cvtColor(cv2.resize(small, (32, 32), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(resize_for_model(small, spec), linear)


@pytest.mark.parametrize("pixel_scale", [255.0, 1.0])
def test_normalisation_is_the_specs(pixel_scale: float) -> None:
    spec = InputSpec(size=32, pixel_scale=pixel_scale)
    image = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    expected = (image.astype(np.float64) / pixel_scale - np.array(spec.mean)) / np.array(spec.std)
    batch = to_model_input([image], spec)
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == np.float32
    assert np.allclose(batch[0].transpose(1, 2, 0), expected, rtol=1e-5, atol=1e-4)


def test_a_session_refuses_a_file_that_does_not_match_its_sha256(tiny_model_dir: Path) -> None:
    path = tiny_model_dir / "model.onnx"
    session = open_session(path, sha256=sha256_of(path), threads=1, spin=False)
    assert [o.name for o in session.get_outputs()] == ["p_organic", "material_probs"]
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        open_session(path, sha256="0" * 64)


def test_batch_decisions_are_the_cascade_row_by_row() -> None:
    rng = np.random.default_rng(2)
    p_organic = rng.uniform(0.0, 1.0, size=20)
    probs = rng.dirichlet(np.ones(6), size=20)
    thresholds = CascadeThresholds(organic=0.6, material_min_confidence=0.4)
    expected = [decide(float(p), row.tolist(), thresholds) for p, row in zip(p_organic, probs, strict=True)]
    decisions = decide_batch(p_organic, probs, thresholds)
    assert decisions == expected
    assert {d.bin for d in decisions} >= {"organic", "residual"}  # the fixture reaches both ends
