"""From a trained network to a model directory: export, parity, calibrate, validate, variants, manifest.

Both training modes end here. Everything measures the *served* artifacts: thresholds are
calibrated, and validation figures computed, by running the exported ONNX files through the
serving runtime's preprocessing and ``CascadeModel`` (``trainer.evaluation.scoring.score``),
never the PyTorch module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torch import nn

from sortline.cascade import CascadeThresholds
from sortline.manifest import InputSpec, ModelManifest, OutputSpec, TrainingRecord, sha256_of, write_manifest
from sortline_runtime.model import CascadeModel
from trainer.data import dataset
from trainer.data.splits import Splits
from trainer.evaluation.scoring import score
from trainer.release import calibrate
from trainer.release.export import export_served
from trainer.release.options import ReleaseOptions
from trainer.release.variants import build_variants, metrics_of

log = logging.getLogger(__name__)

VALIDATION_NOTE = (
    "thresholds were calibrated and the best epoch chosen on the calibration subset (training side); "
    "the validation split was used for nothing but these figures. The held-back parts of both sources "
    "remain the independent test."
)


@dataclass(frozen=True)
class ModelIdentity:
    """How the manifest names what was trained: ``<version_prefix>-<date>-<sha256[:8]>``."""

    version_prefix: str
    architecture: str
    validation_note: str = VALIDATION_NOTE


@dataclass(frozen=True)
class PreparedRelease:
    """A release whose ONNX file and thresholds come from elsewhere (a served backbone with new heads).

    ``export`` writes model.onnx into the given path and returns its parity figures; ``thresholds``
    were chosen before (out of fold) with ``calibration`` saying how.
    """

    export: Callable[[Path], dict[str, Any]]
    outputs: OutputSpec
    thresholds: CascadeThresholds
    calibration: dict[str, Any]


def calibrated(
    out: Path, manifest: ModelManifest, calib: list[dataset.Sample], workers: int
) -> tuple[CascadeThresholds, dict[str, Any]]:
    """Thresholds chosen on the calibration subset through the served fp32 model."""
    write_manifest(out, manifest)
    scored = score(CascadeModel.load(out), calib, workers=workers)
    labels = [s.label for s in scored.samples]
    thresholds, info = calibrate.calibrate_cascade(labels, scored.p_organic, scored.material_probs)
    info["data"] = f"calibration subset, {len(labels)} images from the training side"
    return thresholds, info


def first_manifest(
    out: Path, identity: ModelIdentity, training: TrainingRecord, outputs: OutputSpec | None = None
) -> ModelManifest:
    """The manifest of the exported model.onnx before calibration: default thresholds, no figures."""
    sha = sha256_of(out / "model.onnx")
    now = datetime.now(UTC)
    return ModelManifest(
        version=f"{identity.version_prefix}-{now:%Y%m%d}-{sha[:8]}",
        created_at=now.isoformat(timespec="seconds"),
        architecture=identity.architecture,
        onnx_sha256=sha,
        outputs=outputs or OutputSpec(),
        thresholds=CascadeThresholds(),
        training=training,
    )


def finalize(
    net: nn.Module | None,
    out: Path,
    splits: Splits,
    identity: ModelIdentity,
    training: TrainingRecord,
    options: ReleaseOptions,
    train_seconds: float,
    prepared: PreparedRelease | None = None,
) -> ModelManifest:
    """Write ``out``: model.onnx (+ int8 and fp16 variants), manifest.json with all figures.

    ``net`` is exported and calibrated on the calibration subset, unless ``prepared`` brings its own
    export and thresholds (``net`` is then unused and may be None).
    """
    out.mkdir(parents=True, exist_ok=True)
    if prepared is None:
        parity = export_served(net.cpu().eval(), out / "model.onnx", splits.val, InputSpec())
    else:
        parity = prepared.export(out / "model.onnx")
    training = training.model_copy(update={"onnx_parity": parity})
    manifest = first_manifest(out, identity, training, prepared.outputs if prepared else None)
    if prepared is None:
        thresholds, calibration = calibrated(out, manifest, splits.calib, options.workers)
    else:
        thresholds, calibration = prepared.thresholds, prepared.calibration
    manifest = manifest.model_copy(update={"thresholds": thresholds})
    write_manifest(out, manifest)
    fp32_val = score(CascadeModel.load(out), splits.val, workers=options.workers)
    validation = {**metrics_of(fp32_val), "calibration": calibration, "note": identity.validation_note}
    variants, variant_figures = build_variants(
        out, manifest, splits.fit, fp32_val,
        workers=options.workers, int8=options.int8, fp16=options.fp16, speed_seconds=options.speed_seconds,
    )  # fmt: skip
    validation.update(variant_figures)
    training = manifest.training.model_copy(update={"duration_s": round(train_seconds, 1)})
    manifest = manifest.model_copy(
        update={"validation": validation, "variants": variants, "training": training}
    )
    write_manifest(out, manifest)
    log.info("wrote %s (%s)", out, manifest.version)
    return manifest
