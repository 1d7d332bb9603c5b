"""Experiment: which static-quantization recipe keeps a model's int8 accuracy?

Run on the EMA model that preceded `lite0-ft-20261124-595c40df`.

The trainer quantizes with MinMax activation ranges from 300 training images. For the EMA model
(``--ema-decay 0.998``) that cost 0.62 point of material accuracy, over the 0.5-point budget. This
quantizes one fp32 model with several recipes (ONNX Runtime's calibration methods and options, more
range images) and scores each against the fp32 file on the calibration subset (where a recipe would
be *chosen*) and on the validation split (where it is *reported*), paired image by image.

    .venv/bin/python docs/experiments/int8_calibration.py --model runs/ema-model [--speed]

``--speed`` also times every int8 file against fp32 at batch 8, alternating (only meaningful on an
otherwise idle machine). Needs the labelled data of ``make train`` (``DATA`` below); about one
minute per recipe.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationMethod

from sortline.labels import MATERIALS, ORGANIC, RECYCLABLE_MATERIALS
from sortline.manifest import ModelManifest, load_manifest, sha256_of
from sortline_runtime.model import CascadeModel
from sortline_runtime.sessions import open_session
from trainer.evaluation.scoring import ScoredSet, score
from trainer.pipelines.train import make_splits
from trainer.release import int8 as quantize
from trainer.release.variants import metrics_of

DATA = [Path("../shared/datasets/trashnet"), Path("../shared/datasets/garbage12")]


@dataclass(frozen=True)
class Recipe:
    """One way to quantize: calibration method, ONNX Runtime options, number of range images."""

    name: str
    method: CalibrationMethod = CalibrationMethod.MinMax
    options: dict[str, Any] = field(default_factory=dict)
    images: int = 300
    keep_float: tuple[str, ...] = ()


HEADS = tuple(
    f"/{head}/{head}.{layer}/Gemm" for head in ("organic_head", "material_head") for layer in (1, 4)
)
MOVING = {"CalibMovingAverage": True}
# Histogram methods keep every batch's activations until told to fold them (300 images need over
# 24 GB): 64 images, folded batch by batch.
FLUSH = {"CalibMaxIntermediateOutputs": 1}
RECIPES = [
    Recipe("minmax-300 (trainer today)"),
    Recipe("minmax-300 moving-average", options=MOVING),
    Recipe("minmax-1000 moving-average", options=MOVING, images=1000),
    Recipe("entropy-64", CalibrationMethod.Entropy, FLUSH, images=64),
    Recipe(
        "percentile-99.999-64", CalibrationMethod.Percentile, {**FLUSH, "CalibPercentile": 99.999}, images=64
    ),
    Recipe("distribution-64", CalibrationMethod.Distribution, FLUSH, images=64),
    Recipe("minmax-300 heads-float", keep_float=HEADS),
    Recipe("minmax-300 moving-average heads-float", options=MOVING, keep_float=HEADS),
]


def paired(fp32: ScoredSet, int8: ScoredSet) -> dict[str, Any]:
    """Material accuracy delta of int8 against fp32 on the same images, with its paired error."""
    labels = np.array([s.label for s in fp32.samples])
    rows = np.array([label != "organic" for label in labels])
    names = np.array(MATERIALS)
    right32 = names[fp32.material_probs.argmax(1)] == labels
    right8 = names[int8.material_probs.argmax(1)] == labels
    diff = (right8.astype(int) - right32.astype(int))[rows]
    bins_agree = np.mean([a.bin == b.bin for a, b in zip(fp32.decisions, int8.decisions, strict=True)])
    m8 = metrics_of(int8)
    p, q = np.clip(fp32.material_probs, 1e-7, 1), np.clip(int8.material_probs, 1e-7, 1)
    return {
        "disagree": int((fp32.material_probs.argmax(1) != int8.material_probs.argmax(1)).sum()),
        "kl_milli": round(1000 * float(np.mean(np.sum(p * np.log(p / q), axis=1))), 3),
        "delta_points": round(100 * float(diff.mean()), 2),
        "paired_se_points": round(100 * float(diff.std(ddof=1) / math.sqrt(len(diff))), 2),
        "int8_gains": int((diff > 0).sum()),
        "int8_losses": int((diff < 0).sum()),
        "bin_agreement": round(float(bins_agree), 4),
        "right_bin": round(float(m8["bin_accuracy"]), 4),
        "worst_purity": round(
            min(m8["per_bin"][b]["purity"] or 1.0 for b in (*RECYCLABLE_MATERIALS, ORGANIC)), 4
        ),
    }


def sensitivity(model_dir: Path, manifest: ModelManifest, fit: list, images: int = 24) -> None:
    """Print, in graph order, how far each quantized tensor has drifted from the float model.

    The figure is the signal-to-quantization-noise ratio (dB) of the int8 model's tensor against the
    float model's (ONNX Runtime's QDQ debugger, ``xmodel_err``): where it drops is where the error
    enters. (Its per-tensor ``qdq_err`` is not used: for a Clip folded into its Conv's output range
    it compares the unclipped tensor with the clipped one.)
    """
    from onnxruntime.quantization import qdq_loss_debug as debug
    from onnxruntime.quantization.shape_inference import quant_pre_process

    samples = quantize.calibration_samples(fit, images)
    with tempfile.TemporaryDirectory() as tmp:
        prepared, int8 = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(model_dir / manifest.onnx_file), str(prepared), skip_symbolic_shape=True)
        quantize.quantize_int8(
            model_dir / manifest.onnx_file, int8, quantize.calibration_samples(fit), manifest.input
        )
        activations = {}
        for label, path in (("float", prepared), ("qdq", int8)):
            augmented = Path(tmp) / f"{label}.aug.onnx"
            debug.modify_model_output_intermediate_tensors(path, augmented)
            reader = quantize.ImageReader(samples, manifest.input, batch_size=8)
            activations[label] = debug.collect_activations(str(augmented), reader)
        errors = debug.compute_activation_error(
            debug.create_activation_matching(activations["qdq"], activations["float"])
        )
    for name, figures in errors.items():
        if "xmodel_err" in figures:
            print(f"{name.removeprefix('/backbone/')[-64:]:64} {figures['xmodel_err']:>6.1f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="A trainer output directory.")
    parser.add_argument("--speed", action="store_true", help="Also time each int8 file (idle machine).")
    parser.add_argument("--only", nargs="*", help="Run only the recipes whose name starts with these.")
    parser.add_argument(
        "--sensitivity", action="store_true", help="Instead, rank tensors by their quantization noise."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    manifest = load_manifest(args.model)
    training = manifest.training
    splits = make_splits(DATA, training.val_fraction, training.calib_fraction)
    if args.sensitivity:
        sensitivity(args.model, manifest, splits.fit)
        return
    fp32_model = CascadeModel.load(args.model)
    reference = {part: score(fp32_model, getattr(splits, part)) for part in ("calib", "val")}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in RECIPES:
            if args.only and not any(recipe.name.startswith(prefix) for prefix in args.only):
                continue
            path = Path(tmp) / "int8.onnx"
            try:
                quantize.quantize_int8(
                    args.model / manifest.onnx_file,
                    path,
                    quantize.calibration_samples(splits.fit, recipe.images),
                    manifest.input,
                    method=recipe.method,
                    extra_options=recipe.options,
                    keep_float=recipe.keep_float,
                )
            except Exception as error:
                results[recipe.name] = {"error": f"{type(error).__name__}: {error}"[:200]}
                continue
            variant = manifest.model_copy(update={"onnx_file": path.name, "onnx_sha256": sha256_of(path)})
            int8 = CascadeModel(variant, open_session(path))
            results[recipe.name] = {
                part: paired(reference[part], score(int8, getattr(splits, part))) for part in reference
            }
            if args.speed:
                results[recipe.name]["speed_b8"] = _speed(args.model / manifest.onnx_file, path, manifest)
            print(recipe.name, json.dumps(results[recipe.name]), flush=True)
    print(json.dumps(results, indent=1))
    _table(results)


def _speed(fp32: Path, int8: Path, manifest: ModelManifest) -> dict[str, float]:
    """img/s at batch 8, fp32 and int8 alternated three times; the medians."""
    rates: dict[str, list[float]] = {"fp32": [], "int8": []}
    sessions = {"fp32": open_session(fp32), "int8": open_session(int8)}
    for _ in range(3):
        for label, sess in sessions.items():
            rates[label].append(
                quantize.images_per_second(
                    sess, manifest.input.size, 8, seconds=3.0, name=manifest.input.name
                )
            )
    return {label: round(float(np.median(r)), 1) for label, r in rates.items()}


def _table(results: dict[str, Any]) -> None:
    print(
        f"\n{'recipe':40} {'calib KL':>9} {'calib diff':>10} {'calib delta':>11} "
        f"{'val KL':>7} {'val diff':>8} {'val delta':>9} {'val +/-':>7} {'right bin':>9} {'worst bin':>9}"
    )
    for name, figures in results.items():
        if "error" in figures:
            print(f"{name:40} {figures['error']}")
            continue
        c, v = figures["calib"], figures["val"]
        print(
            f"{name:40} {c['kl_milli']:>9.3f} {c['disagree']:>10} {c['delta_points']:>+10.2f}p "
            f"{v['kl_milli']:>7.3f} {v['disagree']:>8} {v['delta_points']:>+8.2f}p "
            f"{v['int8_gains']:>3}/{v['int8_losses']:<3} {v['right_bin']:>9.4f} {v['worst_purity']:>9.4f}"
        )


if __name__ == "__main__":
    main()
