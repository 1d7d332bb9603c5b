"""The model artifact: an ONNX file plus a JSON manifest; nothing is pickled.

A model directory holds ``manifest.json`` and the ONNX file it names. The manifest says how to
feed the model (input size, normalisation), how to read it (output names, class order), where
the cascade's operating point is, and where the model came from (data, command, figures).
Workers refuse a model whose bytes do not match the manifest's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sortline.cascade import CascadeThresholds
from sortline.labels import MATERIALS

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


class InputSpec(BaseModel):
    """How an image becomes the model's input tensor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("image", description="ONNX input name.")
    size: int = Field(224, ge=32, le=1024, description="Square side in pixels after resizing.")
    color: Literal["RGB"] = "RGB"
    layout: Literal["NCHW"] = "NCHW"
    resize: Literal["squash"] = Field(
        "squash", description="The whole image is resized to size x size, aspect not kept."
    )
    # The two fields below came after the first models; their defaults are what those models were
    # trained and served with, so older manifests load unchanged.
    interpolation: Literal["area-when-shrinking"] = Field(
        "area-when-shrinking",
        description="OpenCV INTER_AREA when the short side is larger than size, INTER_LINEAR otherwise.",
    )
    pixel_scale: float = Field(
        255.0, gt=0.0, description="uint8 pixels are divided by this, then (x - mean) / std per channel."
    )
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


class OutputSpec(BaseModel):
    """ONNX output names: p_organic is [N], material_probs is [N, len(materials)], p_hazard is [N].

    ``p_hazard`` is None for models made before the hazard bin: they serve without a hazard check.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    p_organic: str = "p_organic"
    material_probs: str = "material_probs"
    p_hazard: str | None = None


class TrainingRecord(BaseModel):
    """Where a model came from, so it can be reproduced."""

    model_config = ConfigDict(extra="allow")

    data: list[str] = Field(default_factory=list, description="Data folders, as given.")
    command: str = Field("", description="The command line that trained the model.")
    counts: dict[str, int] = Field(default_factory=dict, description="Training images per label.")
    seed: int | None = None
    duration_s: float | None = None


class ModelVariant(BaseModel):
    """Another encoding of the same model (e.g. int8), next to ``onnx_file``; optional.

    Workers serve ``onnx_file``; a variant is there for runtimes or boxes that prefer it, with the
    figures that say what it costs. Its bytes are checked like the main file's (``variant_path``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str = Field(min_length=1, description="File name inside the model directory.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    description: str = ""
    accuracy_delta: float | None = Field(
        None, description="Material accuracy of the variant minus that of onnx_file, on validation."
    )
    figures: dict[str, Any] = Field(default_factory=dict, description="Validation and speed figures.")


class ModelManifest(BaseModel):
    """manifest.json of a model directory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = MANIFEST_SCHEMA_VERSION
    version: str = Field(min_length=1, max_length=128)
    created_at: str
    architecture: str
    onnx_file: str = "model.onnx"
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: InputSpec = InputSpec()
    outputs: OutputSpec = OutputSpec()
    materials: tuple[str, ...] = MATERIALS
    thresholds: CascadeThresholds = CascadeThresholds()
    training: TrainingRecord = TrainingRecord()
    validation: dict[str, Any] = Field(default_factory=dict, description="Figures on validation.")
    variants: dict[str, ModelVariant] = Field(
        default_factory=dict, description="Optional other encodings of the model, e.g. 'int8'."
    )


class ModelIntegrityError(Exception):
    """The model directory is incomplete or its ONNX file does not match the manifest."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(model_dir: Path, *, verify: bool = True) -> ModelManifest:
    """Read a model directory's manifest, checking the ONNX file's sha256 unless told not to."""
    manifest_path = model_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelIntegrityError(f"{model_dir} has no {MANIFEST_FILE}; is it a model directory?")
    manifest = ModelManifest.model_validate_json(manifest_path.read_bytes())
    if manifest.materials != MATERIALS:
        raise ModelIntegrityError(f"model classes {manifest.materials} differ from contract {MATERIALS}")
    _check_file(model_dir / manifest.onnx_file, manifest.onnx_sha256, verify)
    return manifest


def write_manifest(model_dir: Path, manifest: ModelManifest) -> None:
    """manifest.json, pretty-printed so that reviews can diff it."""
    (model_dir / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")


def _check_file(path: Path, expected_sha256: str, verify: bool) -> None:
    """The file must exist and, when verifying, hold exactly the bytes the manifest names."""
    if not path.is_file():
        raise ModelIntegrityError(f"{path} is missing")
    if verify and (actual := sha256_of(path)) != expected_sha256:
        raise ModelIntegrityError(
            f"{path} has sha256 {actual}, manifest says {expected_sha256}; refusing to load"
        )


def variant_path(model_dir: Path, manifest: ModelManifest, name: str, *, verify: bool = True) -> Path:
    """Path of a named variant's file, after checking that it exists and matches its sha256."""
    if name not in manifest.variants:
        raise ModelIntegrityError(f"model {manifest.version} has no variant {name!r}")
    variant = manifest.variants[name]
    path = model_dir / variant.file
    _check_file(path, variant.sha256, verify)
    return path
