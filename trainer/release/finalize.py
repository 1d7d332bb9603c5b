"""After fine-tuning: export, parity, calibrate, validate, int8 variant, manifest.

Everything here measures the *served* artifacts: thresholds are calibrated, and validation figures
computed, by running the exported ONNX files through the worker's preprocessing and
``CascadeModel`` (``trainer.predict.score``), never the PyTorch module.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sortline.cascade import CascadeThresholds
from sortline.manifest import InputSpec, ModelManifest, TrainingRecord, sha256_of, write_manifest
from sortline_runtime.imaging import to_model_input
from sortline_runtime.model import CascadeModel
from trainer import calibrate, dataset, quantize
from trainer.export import CascadeNet, export_onnx
from trainer.features import load_rgb_or_none
from trainer.finetune import Trainer
from trainer.predict import ScoredSet, score
from trainer.train_finetune import FinetuneRun, Splits
from trainer.variants import build_variants, metrics_of

log = logging.getLogger(__name__)

ARCHITECTURE = "efficientnet_lite0 (fine-tuned) + 2 heads"
MIRRORED = ", mean of the image and its mirror"
PARITY_TOLERANCE = 1e-4


def parity_batch(samples: list[dataset.Sample], spec: InputSpec, count: int = 16) -> np.ndarray:
    """Up to ``count`` evenly spaced real images, preprocessed as the worker does."""
    picked = samples[:: max(1, len(samples) // count)][:count]
    images = [img for s in picked if (img := load_rgb_or_none(s.path, spec)) is not None]
    return to_model_input(images, spec)


def torch_parity(net: CascadeNet, onnx_path: Path, batch: np.ndarray) -> dict[str, float]:
    """Max abs difference per output and argmax agreement, PyTorch vs ONNX Runtime."""
    import torch

    with torch.inference_mode():
        p_t, m_t = (t.numpy() for t in net.eval()(torch.from_numpy(batch)))
    p_o, m_o = quantize.session(onnx_path).run(None, {"image": batch})
    return {
        "p_organic": float(np.abs(p_t - p_o.reshape(-1)).max()),
        "material_probs": float(np.abs(m_t - m_o).max()),
        "material_agreement": float((m_t.argmax(1) == m_o.argmax(1)).mean()),
        "n_images": len(batch),
        "tolerance": PARITY_TOLERANCE,
    }


def served_figures(model: CascadeModel, samples: list[dataset.Sample], workers: int) -> ScoredSet:
    """The served model's outputs and decisions on files."""
    return score(model, samples, workers=workers)


def calibrated(out: Path, manifest: ModelManifest, calib: list[dataset.Sample], workers: int):
    """Thresholds chosen on the calibration subset through the served fp32 model."""
    write_manifest(out, manifest)
    scored = served_figures(CascadeModel.load(out), calib, workers)
    labels = [s.label for s in scored.samples]
    thresholds, info = calibrate.calibrate_cascade(labels, scored.p_organic, scored.material_probs)
    info["data"] = f"calibration subset, {len(labels)} images from the training side"
    return thresholds, info


def training_record(
    run: FinetuneRun, splits: Splits, trainer: Trainer, parity: dict[str, Any]
) -> TrainingRecord:
    """Where the model came from: data, command, splits, settings, history."""
    return TrainingRecord(
        data=[str(d) for d in run.data],
        command=run.command,
        counts=dataset.label_counts(splits.fit),
        seed=run.finetune.seed,
        calibration_counts=dataset.label_counts(splits.calib),
        validation_counts=dataset.label_counts(splits.val),
        val_fraction=run.val_fraction,
        calib_fraction=run.calib_fraction,
        split="validation: per <dataset-folder>/<label>, smallest sha1('<dataset-folder>/<label>/<file>'); "
        "calibration: from the rest, smallest sha1('calibration/' + same key); the rest trains",
        finetune=asdict(run.finetune),
        augmentation="belt camera: background swap of near-white pixels (p 0.3), random resized crop "
        "(scale 0.35-1), horizontal and vertical flips, rotation +-25 deg (p 0.4), colour jitter "
        "(brightness/contrast/saturation 0.3, hue 0.03), Gaussian blur (p 0.2)",
        history=trainer.state.history,
        heads_refit=None if run.refit is None else asdict(run.refit),
        quantization_aware=None if run.qat is None else asdict(run.qat),
        mirror_average=run.mirror_average,
        best_epoch=trainer.state.best_epoch,
        model_selection="best mean of stage-1 and material accuracy on the calibration subset",
        onnx_parity=parity,
    )


def finalize(run: FinetuneRun, splits: Splits, trainer: Trainer, train_seconds: float) -> ModelManifest:
    """Write ``run.out``: model.onnx (+ int8 and fp16 variants), manifest.json with all figures."""
    out = run.out
    out.mkdir(parents=True, exist_ok=True)
    net = trainer.net.cpu().eval()
    export_onnx(net, out / "model.onnx", output_names=["p_organic", "material_probs"])
    parity = torch_parity(net, out / "model.onnx", parity_batch(splits.val, InputSpec()))
    log.info("parity torch vs onnxruntime: %s", parity)
    if max(parity["p_organic"], parity["material_probs"]) > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX parity check failed: {parity}")
    sha = sha256_of(out / "model.onnx")
    now = datetime.now(UTC)
    manifest = ModelManifest(
        version=f"lite0-ft-{now:%Y%m%d}-{sha[:8]}",
        created_at=now.isoformat(timespec="seconds"),
        architecture=ARCHITECTURE + (MIRRORED if run.mirror_average else ""),
        onnx_sha256=sha,
        thresholds=CascadeThresholds(),
        training=training_record(run, splits, trainer, parity),
    )
    thresholds, calibration = calibrated(out, manifest, splits.calib, run.workers)
    manifest = manifest.model_copy(update={"thresholds": thresholds})
    write_manifest(out, manifest)
    fp32_val = served_figures(CascadeModel.load(out), splits.val, run.workers)
    validation = {**metrics_of(fp32_val), "calibration": calibration, "note": VALIDATION_NOTE}
    variants, variant_figures = build_variants(
        out, manifest, splits.fit, fp32_val,
        workers=run.workers, int8=run.int8, fp16=run.fp16, speed_seconds=run.speed_seconds,
    )  # fmt: skip
    validation.update(variant_figures)
    training = manifest.training.model_copy(update={"duration_s": round(train_seconds, 1)})
    manifest = manifest.model_copy(
        update={"validation": validation, "variants": variants, "training": training}
    )
    write_manifest(out, manifest)
    log.info("wrote %s (%s)", out, manifest.version)
    return manifest


VALIDATION_NOTE = (
    "thresholds were calibrated and the best epoch chosen on the calibration subset (training side); "
    "the validation split was used for nothing but these figures. The held-back parts of both sources "
    "remain the independent test."
)
