"""Experiment: what does averaging each image with its mirror buy the default model, in accuracy?

The served graph runs the backbone on every image and its mirror and averages the heads' outputs:
twice the backbone's compute. With the default model's features cached (``make train`` caches both
views of every image), the same heads can be scored on the plain view alone and on the mean of both,
on the validation split, at the shipped thresholds. Accuracy only: the cost side (2N images through
the backbone instead of N) needs a benchmark run side by side, not this script.

    PYTHONPATH=. python docs/experiments/mirror_average.py   # a few minutes: trains the default's heads
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from sortline.manifest import load_manifest
from sortline_runtime.model import decide_batch
from trainer.data.splits import make_splits
from trainer.evaluation.metrics import compute_metrics
from trainer.fit import cross_fit, frozen_features, heads
from trainer.fit.config import HeadConfig
from trainer.fit.served_backbone import served_backbone

DATA = [Path("../shared/datasets") / name for name in ("trashnet", "garbage12", "garbage12-extra")]
MODEL = Path("models/default")
KEYS = ("stage1_accuracy", "recyclable_material_accuracy", "bin_accuracy", "sortable_residual_fraction",
        "hazard_recall", "hazard_purity")  # fmt: skip


def plain_view(trained: cross_fit.Heads, features: np.ndarray) -> cross_fit.Outputs:
    """The heads' outputs of the plain view only (what a graph without the mirror would serve)."""
    p, m = heads.head_outputs(trained.organic, trained.material, features[:, 0])
    h = None if trained.hazard is None else heads.sigmoid_output(trained.hazard, features[:, 0])
    return cross_fit.Outputs(p, m, h)


def figures(labels: list[str], outputs: cross_fit.Outputs, thresholds) -> dict[str, float]:
    decisions = decide_batch(outputs.p_organic, outputs.material_probs, thresholds, outputs.p_hazard)
    metrics = compute_metrics(labels, outputs.p_organic, outputs.material_probs, decisions)
    worst = min(
        f["purity"] for b, f in metrics["per_bin"].items() if b not in ("residual", "hazard") and f["purity"]
    )
    return {**{k: metrics[k] for k in KEYS}, "worst_bin_purity": worst}


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    manifest = load_manifest(MODEL)
    record = manifest.training.model_dump()
    cfg = HeadConfig(**record["heads"])
    splits = make_splits(DATA, record["val_fraction"], record["calib_fraction"])
    cache = frozen_features.DEFAULT_CACHE_DIR
    backbone = served_backbone(MODEL, cache)
    train = frozen_features.extract(splits.fit + splits.calib, cache, backbone=backbone)
    val = frozen_features.extract(splits.val, cache, backbone=backbone)
    trained = cross_fit.train_heads(train.features, [s.label for s in train.samples], cfg)
    labels = [s.label for s in val.samples]
    result = {
        "plain view": figures(labels, plain_view(trained, val.features), manifest.thresholds),
        "mean with mirror (served)": figures(
            labels, cross_fit.predict(trained, val.features), manifest.thresholds
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
