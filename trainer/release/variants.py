"""Other encodings of a finished model, each scored on the validation split against the fp32 file.

- int8 (ONNX Runtime static quantization) for CPU workers: ~2.5x faster than fp32 on this CPU.
- fp16 (weights and activations in half precision, inputs and outputs kept float32) for GPU
  workers, where tensor cores run it at roughly twice fp32's rate. ONNX Runtime's CPU provider can
  run it too, slowly, which is how its accuracy is measured here.

A variant is kept only within its accuracy budget; ``--variant auto`` in the worker then serves it
where it pays off (int8 on CPUs, fp16 on GPUs).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sortline.manifest import ModelManifest, ModelVariant, load_manifest, sha256_of, write_manifest
from sortline_runtime.model import AUTO_VARIANT_MAX_ACCURACY_COST, CascadeModel
from sortline_runtime.sessions import open_session
from trainer.data import dataset
from trainer.data.splits import DEFAULT_VAL_FRACTION, make_splits
from trainer.evaluation.metrics import compute_metrics
from trainer.evaluation.scoring import ScoredSet, score
from trainer.release import int8 as quantize

log = logging.getLogger(__name__)

INT8_FILE = "model.int8.onnx"
FP16_FILE = "model.fp16.onnx"


def metrics_of(scored: ScoredSet) -> dict[str, Any]:
    labels = [s.label for s in scored.samples]
    return compute_metrics(labels, scored.p_organic, scored.material_probs, scored.decisions)


def variant_model(out: Path, manifest: ModelManifest, file: str) -> CascadeModel:
    """A ``CascadeModel`` serving another ONNX file of the same model directory."""
    variant = manifest.model_copy(update={"onnx_file": file, "onnx_sha256": sha256_of(out / file)})
    return CascadeModel(variant, open_session(out / file))


def agreement(a: ScoredSet, b: ScoredSet) -> dict[str, float]:
    """How often two encodings of a model decide the same, and their largest output difference."""
    return {
        "bin_agreement": float(
            np.mean([x.bin == y.bin for x, y in zip(a.decisions, b.decisions, strict=True)])
        ),
        "material_agreement": float((a.material_probs.argmax(1) == b.material_probs.argmax(1)).mean()),
        "max_abs_diff_p_organic": float(np.abs(a.p_organic - b.p_organic).max()),
        "max_abs_diff_material_probs": float(np.abs(a.material_probs - b.material_probs).max()),
    }


def scored_variant(
    out: Path,
    manifest: ModelManifest,
    file: str,
    fp32_val: ScoredSet,
    workers: int,
    about: dict[str, Any],
) -> tuple[ModelVariant | None, dict[str, Any]]:
    """Score ``out/file`` on the validation images of ``fp32_val``; keep it within the budget."""
    scored = score(variant_model(out, manifest, file), list(fp32_val.samples), workers=workers)
    fp32_m, variant_m = metrics_of(fp32_val), metrics_of(scored)
    delta = (variant_m["material_accuracy"] or 0.0) - (fp32_m["material_accuracy"] or 0.0)
    figures = {
        "validation": variant_m,
        "vs_fp32": agreement(fp32_val, scored),
        **about,
        "accuracy_delta": delta,
        "kept": delta >= -AUTO_VARIANT_MAX_ACCURACY_COST,
    }
    log.info("%s: material accuracy delta %+.4f", file, delta)
    if not figures["kept"]:
        (out / file).unlink()
        return None, figures
    variant = ModelVariant(
        file=file,
        sha256=sha256_of(out / file),
        description=about["description"],
        accuracy_delta=round(delta, 6),
        figures=figures,
    )
    return variant, figures


def int8_variant(
    out: Path,
    manifest: ModelManifest,
    fit: list[dataset.Sample],
    fp32_val: ScoredSet,
    workers: int,
    speed_seconds: float,
) -> tuple[ModelVariant | None, dict[str, Any]]:
    """Quantize with ranges from training images, score on validation, time against fp32."""
    spec = manifest.input
    quantize.quantize_int8(out / manifest.onnx_file, out / INT8_FILE, quantize.calibration_samples(fit), spec)
    about = {
        "description": "int8 (QDQ) encoding of model.onnx; same inputs, outputs and thresholds",
        "speed_img_per_s": quantize.speed(
            {"fp32": out / manifest.onnx_file, "int8": out / INT8_FILE}, spec, seconds=speed_seconds
        ),
        "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, "
        "MinMax ranges from 300 training images; every supported op quantized but the output "
        "Sigmoid/Softmax",
    }
    return scored_variant(out, manifest, INT8_FILE, fp32_val, workers, about)


def convert_fp16(fp32: Path, fp16: Path) -> None:
    """Half-precision weights and activations; float32 inputs and outputs, so callers do not change."""
    from onnxconverter_common import float16  # trainer extra; imported here, the worker never needs it

    with warnings.catch_warnings():  # one warning per tiny weight rounded to fp16's smallest normal
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    onnx.save(converted, str(fp16))


def fp16_variant(
    out: Path, manifest: ModelManifest, fp32_val: ScoredSet, workers: int
) -> tuple[ModelVariant | None, dict[str, Any]]:
    """Convert to fp16 and score it (on the CPU here: slow, but the same arithmetic as on a GPU)."""
    convert_fp16(out / manifest.onnx_file, out / FP16_FILE)
    about = {
        "description": "fp16 encoding of model.onnx for GPUs (float32 inputs and outputs); same thresholds",
        "method": "onnxconverter-common convert_float_to_float16, keep_io_types; scored with ONNX "
        "Runtime's CPU provider (its speed there says nothing of a GPU's)",
    }
    return scored_variant(out, manifest, FP16_FILE, fp32_val, workers, about)


def build_variants(
    out: Path,
    manifest: ModelManifest,
    fit: list[dataset.Sample],
    fp32_val: ScoredSet,
    *,
    workers: int,
    int8: bool = True,
    fp16: bool = True,
    speed_seconds: float = 4.0,
) -> tuple[dict[str, ModelVariant], dict[str, Any]]:
    """The kept variants by name, and every tried variant's figures (kept or not)."""
    built: dict[str, tuple[ModelVariant | None, dict[str, Any]]] = {}
    if int8:
        built["int8"] = int8_variant(out, manifest, fit, fp32_val, workers, speed_seconds)
    if fp16:
        built["fp16"] = fp16_variant(out, manifest, fp32_val, workers)
    variants = {name: variant for name, (variant, _) in built.items() if variant is not None}
    return variants, {name: figures for name, (_, figures) in built.items()}


def refresh_variants(
    model_dir: Path,
    data: list[Path],
    *,
    workers: int,
    int8: bool = True,
    fp16: bool = True,
    speed_seconds: float = 4.0,
) -> ModelManifest:
    """(Re)build the variants of a finished model directory; model.onnx and its figures stay as they are.

    The splits are those the model was trained with (fractions from its manifest), so int8 ranges
    come from its training side and every variant is scored on its own validation split.
    """
    manifest = load_manifest(model_dir)
    training = manifest.training
    val_fraction = (
        training.val_fraction if training and training.val_fraction is not None else DEFAULT_VAL_FRACTION
    )
    calib_fraction = training.calib_fraction if training and training.calib_fraction is not None else 0.0
    splits = make_splits(data, val_fraction, calib_fraction)
    fp32_val = score(CascadeModel.load(model_dir), splits.val, workers=workers)
    built, figures = build_variants(
        model_dir, manifest, splits.fit, fp32_val,
        workers=workers, int8=int8, fp16=fp16, speed_seconds=speed_seconds,
    )  # fmt: skip
    updated = manifest.model_copy(
        update={
            "variants": {**manifest.variants, **built},
            "validation": {**manifest.validation, **figures},
        }
    )
    write_manifest(model_dir, updated)
    return updated
