"""The ``trainer train`` pipeline: scan, split, features, heads, calibrate, export, verify, manifest."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sortline.cascade import CascadeThresholds
from sortline.labels import ORGANIC
from sortline.manifest import InputSpec, ModelManifest, TrainingRecord, sha256_of, write_manifest
from sortline_runtime.imaging import to_model_input
from sortline_runtime.model import CascadeModel
from trainer import calibrate, dataset, features, heads
from trainer.backbone import create_backbone
from trainer.evaluate import compute_metrics
from trainer.export import CascadeNet, export_onnx, parity
from trainer.predict import score

log = logging.getLogger(__name__)

ARCHITECTURE = "efficientnet_lite0+2heads (frozen backbone)"
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``trainer train`` was asked to do."""

    data: list[Path]
    out: Path
    command: str
    val_fraction: float = 0.15
    head_config: heads.HeadConfig = field(default_factory=heads.HeadConfig)
    workers: int = 2
    cache_dir: Path = features.DEFAULT_CACHE_DIR


def _calibrate(org: Any, mat: Any, val: features.FeatureSet) -> tuple[CascadeThresholds, dict[str, Any]]:
    """Operating point from the heads' outputs on validation features."""
    labels = [s.label for s in val.samples]
    p, probs = heads.head_outputs(org, mat, val.features[:, 0])
    organic, organic_info = calibrate.organic_threshold(p, np.array([label == ORGANIC for label in labels]))
    material, material_info = calibrate.material_threshold(labels, p, probs, organic)
    thresholds = CascadeThresholds(organic=round(organic, 6), material_min_confidence=material)
    return thresholds, {"organic_threshold": organic_info, "material_min_confidence": material_info}


def _export_and_check(net: CascadeNet, out: Path, val_samples: list[dataset.Sample]) -> dict[str, float]:
    """Export the served graph and compare ORT with torch on up to 8 real validation images."""
    onnx_path = out / "model.onnx"
    export_onnx(net, onnx_path, output_names=["p_organic", "material_probs"])
    spec = InputSpec()
    images = [
        img
        for s in val_samples[:: max(1, len(val_samples) // 8)][:8]
        if (img := features.load_rgb_or_none(s.path, spec)) is not None
    ]
    diffs = parity(net, onnx_path, to_model_input(images, spec))
    log.info("parity torch vs onnxruntime on %d images: %s", len(images), diffs)
    if max(diffs.values()) > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX parity check failed: {diffs} exceeds {PARITY_TOLERANCE}")
    return {**diffs, "n_images": len(images), "tolerance": PARITY_TOLERANCE}


def _manifest(cfg: TrainConfig, thresholds: CascadeThresholds, training: TrainingRecord) -> ModelManifest:
    """Manifest of the exported ONNX file; the version carries the date and the sha256 prefix."""
    sha = sha256_of(cfg.out / "model.onnx")
    now = datetime.now(UTC)
    return ModelManifest(
        version=f"lite0-heads-{now:%Y%m%d}-{sha[:8]}",
        created_at=now.isoformat(timespec="seconds"),
        architecture=ARCHITECTURE,
        onnx_sha256=sha,
        thresholds=thresholds,
        training=training,
    )


def run(cfg: TrainConfig) -> ModelManifest:
    """Train, calibrate and export a model directory at ``cfg.out``; returns its manifest."""
    started = time.monotonic()
    samples = dataset.scan(cfg.data)
    train_samples, val_samples = dataset.split(samples, cfg.val_fraction)
    log.info("%d images: %d train, %d validation", len(samples), len(train_samples), len(val_samples))
    extract = {"cache_dir": cfg.cache_dir, "workers": cfg.workers}
    train_set = features.extract(train_samples, **extract)
    val_set = features.extract(val_samples, **extract)
    train_labels = [s.label for s in train_set.samples]
    org = heads.train_organic_head(train_set.features, train_labels, cfg.head_config)
    mat = heads.train_material_head(train_set.features, train_labels, cfg.head_config)
    thresholds, calibration = _calibrate(org, mat, val_set) if val_set.samples else (CascadeThresholds(), {})
    cfg.out.mkdir(parents=True, exist_ok=True)
    net = CascadeNet(create_backbone(), org, mat).eval()
    parity_figures = _export_and_check(net, cfg.out, val_set.samples or train_set.samples)
    training = TrainingRecord(
        data=[str(d) for d in cfg.data],
        command=cfg.command,
        counts=dataset.label_counts(train_set.samples),
        seed=cfg.head_config.seed,
        duration_s=None,
        validation_counts=dataset.label_counts(val_set.samples),
        val_fraction=cfg.val_fraction,
        split="per <dataset-folder>/<label>: smallest sha1('<dataset-folder>/<label>/<file>')",
        skipped_undecodable=len(train_set.skipped) + len(val_set.skipped),
        heads={k: v for k, v in vars(cfg.head_config).items()},
        augmentation="horizontal flip (features of both views)",
        onnx_parity_max_abs_diff=parity_figures,
    )
    manifest = _manifest(cfg, thresholds, training)
    write_manifest(cfg.out, manifest)
    validation = _validate(cfg, val_set.samples, calibration)
    training = training.model_copy(update={"duration_s": round(time.monotonic() - started, 1)})
    manifest = manifest.model_copy(update={"validation": validation, "training": training})
    write_manifest(cfg.out, manifest)
    log.info("wrote %s (%s)", cfg.out, manifest.version)
    return manifest


def _validate(
    cfg: TrainConfig, val_samples: list[dataset.Sample], calibration: dict[str, Any]
) -> dict[str, Any]:
    """Figures of the exported model, served by CascadeModel, on the validation split."""
    if not val_samples:
        return {"note": "no validation images"}
    scored = score(CascadeModel.load(cfg.out), val_samples, workers=cfg.workers)
    metrics = compute_metrics(
        [s.label for s in scored.samples], scored.p_organic, scored.material_probs, scored.decisions
    )
    note = (
        "thresholds were calibrated, and the head settings chosen, on this same validation split, so "
        "these figures are optimistic; the held-back parts of both sources are the independent test"
    )
    return {**metrics, "calibration": calibration, "note": note}
