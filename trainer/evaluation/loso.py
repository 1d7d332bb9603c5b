"""Leave-one-source-out: train on every source but one, score the one left out.

A plant's camera is always a new source, and the in-source validation split cannot show what that
costs: its images look like the training images. Here each data folder with recyclable materials is
a source; heads are trained on the frozen *pretrained* backbone's features of the other sources
(the fine-tuned backbone has seen every source, so it cannot be left out of one) and score every image
of the held-out source. Cheap (features are cached; a minute of head training per source) and honest
about what was trained how: the figures are of a frozen ImageNet backbone with MLP heads, a lower
bound for what fine-tuning without the held-out source would give. Threshold-free figures (argmax
material, stage 1 at 0.5), since no calibration on the held-out source may be used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sortline.labels import MATERIALS, ORGANIC, RECYCLABLE_MATERIALS
from trainer.data.dataset import Sample
from trainer.fit import cross_fit, frozen_features, heads
from trainer.fit.config import HeadConfig

log = logging.getLogger(__name__)

STAGE1_THRESHOLD = 0.5
#: The heads of the default model's recipe (``make train``): 128 hidden units, 12 epochs.
LOSO_HEADS = HeadConfig(epochs=12, hidden=128)


def source_of(sample: Sample) -> str:
    """The data folder an image came from (the first part of its key)."""
    return sample.key.split("/", 1)[0]


def sources_with_materials(samples: list[Sample]) -> list[str]:
    """Sources holding recyclable-material images: the ones that can be left out and scored."""
    return sorted({source_of(s) for s in samples if s.label in RECYCLABLE_MATERIALS})


def held_out_figures(labels: list[str], outputs: cross_fit.Outputs) -> dict[str, Any]:
    """Material accuracy (six and five classes), stage 1 at 0.5, per-class recall on the held-out source."""
    predicted = [MATERIALS[i] for i in outputs.material_probs.argmax(axis=1)]
    rows = [i for i, label in enumerate(labels) if label in MATERIALS]
    recyclable = [i for i in rows if labels[i] in RECYCLABLE_MATERIALS]
    organic = np.array([label == ORGANIC for label in labels])
    stage1 = None
    if outputs.p_organic is not None:
        stage1 = float(np.mean((outputs.p_organic >= STAGE1_THRESHOLD) == organic))
    per_class = {
        m: float(np.mean([predicted[i] == m for i in rows if labels[i] == m]))
        for m in MATERIALS
        if any(labels[i] == m for i in rows)
    }
    return {
        "n_images": len(labels),
        "material_accuracy": float(np.mean([predicted[i] == labels[i] for i in rows])),
        "recyclable_material_accuracy": float(np.mean([predicted[i] == labels[i] for i in recyclable])),
        "stage1_accuracy": stage1,  # None: the training sources had no organic images
        "material_recall": per_class,
    }


def leave_one_source_out(
    samples: list[Sample],
    cache_dir: Path = frozen_features.DEFAULT_CACHE_DIR,
    workers: int = 2,
    cfg: HeadConfig = LOSO_HEADS,
) -> dict[str, Any]:
    """For each source with materials: heads trained on the others, figures on it (all its images)."""
    names = sources_with_materials(samples)
    kept = [s for s in samples if source_of(s) in names]
    features = frozen_features.extract(kept, cache_dir, workers=workers)
    sources = np.array([source_of(s) for s in features.samples])
    labels = [s.label for s in features.samples]
    results: dict[str, Any] = {}
    for held in names if len(names) > 1 else []:
        train, test = np.flatnonzero(sources != held), np.flatnonzero(sources == held)
        figures = held_out_figures(
            [labels[i] for i in test], _fit_and_predict(features.features, labels, train, test, cfg)
        )
        results[held] = {"trained_on": sorted(set(sources[train])), **figures}
        log.info("left out %s: material %.3f", held, figures["recyclable_material_accuracy"])
    return {
        "how": f"frozen pretrained EfficientNet-Lite0, MLP heads ({cfg.hidden} hidden units, {cfg.epochs} "
        "epochs) trained on the other "
        "sources' images, every image of the held-out source scored, mean of each image and its mirror; "
        "material = argmax, stage 1 at 0.5",
        "held_out": results,
    }


def _fit_and_predict(
    features: np.ndarray, labels: list[str], train: np.ndarray, test: np.ndarray, cfg: HeadConfig
) -> cross_fit.Outputs:
    """Heads on the training rows, outputs on the test rows; without organic training images (TrashNet
    has none) there is no stage 1 to train and ``p_organic`` is None."""
    train_labels = [labels[i] for i in train]
    if any(label == ORGANIC for label in train_labels):
        return cross_fit.predict(cross_fit.train_heads(features[train], train_labels, cfg), features[test])
    material = heads.train_material_head(features[train], train_labels, cfg)
    views = [heads.head_outputs(material, material, features[test][:, v])[1] for v in (0, 1)]
    return cross_fit.Outputs(None, np.mean(views, axis=0), None)  # type: ignore[arg-type]


def render_markdown(loso: dict[str, Any]) -> str:
    """The report's section: one row per held-out source."""
    lines = [
        "",
        "## Leave one source out",
        "",
        loso["how"] + ".",
        "",
        "| held out | trained on | images | five recyclables | six materials | stage 1 |",
        "|---|---|---|---|---|---|",
    ]
    for held, f in loso["held_out"].items():
        stage1 = "n/a: no organic images to train on"
        if f["stage1_accuracy"] is not None:
            stage1 = f"{f['stage1_accuracy']:.2%}"
        lines.append(
            f"| {held} | {', '.join(f['trained_on'])} | {f['n_images']} | "
            f"{f['recyclable_material_accuracy']:.1%} | {f['material_accuracy']:.1%} | {stage1} |"
        )
    return "\n".join(lines) + "\n"
