"""The optional ``variants`` field of the model manifest: backward compatible, checked like the main file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sortline.manifest import (
    MANIFEST_FILE,
    ModelIntegrityError,
    ModelManifest,
    ModelVariant,
    load_manifest,
    sha256_of,
    variant_path,
)
from tests.tiny_model import write_tiny_model


def test_a_manifest_without_variants_still_loads(tmp_path: Path) -> None:
    model_dir = write_tiny_model(tmp_path / "m")
    raw = json.loads((model_dir / MANIFEST_FILE).read_text())
    raw.pop("variants", None)
    (model_dir / MANIFEST_FILE).write_text(json.dumps(raw))
    assert load_manifest(model_dir).variants == {}


def test_variant_is_verified_by_sha256(tmp_path: Path) -> None:
    model_dir = write_tiny_model(tmp_path / "m")
    manifest = load_manifest(model_dir)
    (model_dir / "model.int8.onnx").write_bytes((model_dir / "model.onnx").read_bytes())
    variant = ModelVariant(file="model.int8.onnx", sha256=sha256_of(model_dir / "model.int8.onnx"))
    manifest = manifest.model_copy(update={"variants": {"int8": variant}})
    (model_dir / MANIFEST_FILE).write_text(manifest.model_dump_json())
    reloaded = load_manifest(model_dir)
    assert isinstance(reloaded, ModelManifest)
    assert variant_path(model_dir, reloaded, "int8") == model_dir / "model.int8.onnx"
    (model_dir / "model.int8.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        variant_path(model_dir, reloaded, "int8")
    with pytest.raises(ModelIntegrityError, match="no variant"):
        variant_path(model_dir, reloaded, "fp16")
