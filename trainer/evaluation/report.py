"""``trainer evaluate --report DIR``: JSON, PNG plots and a markdown summary a plant engineer can read."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sortline.cascade import CascadeThresholds
from sortline.labels import BINS, MATERIALS, ORGANIC, expected_bin
from sortline.manifest import ModelManifest
from trainer.data.images import load_rgb_or_none
from trainer.evaluation import curves, plots
from trainer.evaluation.scoring import ScoredSet

log = logging.getLogger(__name__)

TARGETS = {
    "recyclable_material_accuracy": 0.96,
    "stage1_accuracy": 0.99,
    "bin_purity": 0.97,
    "residual_fraction": 0.10,
    "hazard_recall": 0.95,
    "hazard_purity": 0.95,
}
MISTAKES = 16


def stage1_operating_point(curve: dict[str, Any], scores: np.ndarray, positive: np.ndarray, t: float):
    """(fpr, tpr, recall, precision) of the organic decision at threshold ``t``."""
    predicted = scores >= t
    tp = float((predicted & positive).sum())
    fpr = float((predicted & ~positive).sum()) / max(1, int((~positive).sum()))
    recall = tp / max(1, int(positive.sum()))
    return fpr, recall, recall, tp / max(1, int(predicted.sum()))


def worst_mistakes(scored: ScoredSet, count: int = MISTAKES) -> list[int]:
    """Indices of the most confident wrong bins (wrong ejections first: they cost purity)."""
    wrong = []
    for i, (sample, decision) in enumerate(zip(scored.samples, scored.decisions, strict=True)):
        expected = expected_bin(sample.label)
        if expected is not None and decision.bin != expected:
            ejected = decision.bin != "residual"
            wrong.append((ejected, decision.confidence, i))
    wrong.sort(reverse=True)
    return [i for _, _, i in wrong[:count]]


def _plots(
    directory: Path, scored: ScoredSet, thresholds: CascadeThresholds
) -> tuple[dict[str, str], float | None]:
    """Every PNG the data can support, as {name: file}, and the stage-1 ROC AUC (None: not measurable)."""
    labels = [s.label for s in scored.samples]
    bins = [d.bin for d in scored.decisions]
    positive = np.array([label == ORGANIC for label in labels])
    files = {
        "confusion_material": plots.confusion_png(
            curves.material_confusion(labels, scored.material_probs),
            MATERIALS,
            MATERIALS,
            "stage 2 material (argmax, before abstention)",
            directory / "confusion_material.png",
        ),
        "confusion_bins": plots.confusion_png(
            curves.bin_confusion(labels, bins),
            BINS,
            BINS,
            "bins (after cascade and abstention)",
            directory / "confusion_bins.png",
        ),
        "confusion_stage1": plots.confusion_png(
            curves.confusion(
                ["organic" if p else "not organic" for p in positive],
                ["organic" if b == ORGANIC else "not organic" for b in bins],
                ["organic", "not organic"],
                ["organic", "not organic"],
            ),
            ["organic", "not organic"],
            ["organic", "not organic"],
            "stage 1",
            directory / "confusion_stage1.png",
        ),
    }
    auc = None
    if stage1_unmeasurable(labels) is None:
        curve = curves.roc_pr(scored.p_organic.astype(np.float64), positive)
        point = stage1_operating_point(curve, scored.p_organic, positive, thresholds.organic)
        files["stage1_roc_pr"] = plots.roc_pr_png(curve, point, directory / "stage1_roc_pr.png")
        auc = round(float(curve["auc"]), 6)
    sweep = curves.purity_recovery_sweep(labels, scored.p_organic, scored.material_probs, thresholds.organic)
    organic = curves.organic_sweep(scored.p_organic, labels) if positive.any() else None
    files["purity_recovery"] = plots.purity_recovery_png(
        sweep, organic, thresholds.material_min_confidence, directory / "purity_recovery.png"
    )
    files["worst_mistakes"] = _mistakes(directory, scored)
    return {name: path.name for name, path in files.items()}, auc


def _mistakes(directory: Path, scored: ScoredSet) -> Path:
    picked = worst_mistakes(scored)
    images, captions = [], []
    for i in picked:
        image = load_rgb_or_none(scored.samples[i].path, _thumb_spec())
        if image is not None:
            d = scored.decisions[i]
            images.append(image)
            captions.append(f"{scored.samples[i].label} -> {d.bin} ({d.confidence:.2f})")
    return plots.mistakes_png(images, captions, directory / "worst_mistakes.png")


def _thumb_spec():
    from sortline.manifest import InputSpec

    return InputSpec(size=112)


def write_report(
    directory: Path,
    scored: ScoredSet,
    metrics: dict[str, Any],
    manifest: ModelManifest,
    *,
    min_bin_items: int = 20,
) -> None:
    """report.json, the PNGs and summary.md into ``directory``.

    A bin's purity from fewer than ``min_bin_items`` items is shown with its count but judged
    against no target: one wrong item would read as a 0% bin.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files, auc = _plots(directory, scored, manifest.thresholds)
    labels = [s.label for s in scored.samples]
    report = {
        **metrics,
        "stage1_roc_auc": auc,
        "not_measurable": not_measurable(metrics, labels),
        "min_bin_items": min_bin_items,
        "plots": files,
        "targets": TARGETS,
        "from_manifest": manifest_figures(manifest),
    }
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    from trainer.evaluation.summary import render_summary

    summary = render_summary(report, manifest)
    if "leave_one_source_out" in report:  # trainer evaluate --loso
        from trainer.evaluation.loso import render_markdown

        summary += render_markdown(report["leave_one_source_out"])
    (directory / "summary.md").write_text(summary)
    log.info("wrote report to %s", directory)


#: Why a figure of ``compute_metrics`` is None, in the report's words.
MISSING_BECAUSE = {
    "stage1_accuracy": "no items",
    "material_accuracy": "no items labelled with a material",
    "recyclable_material_accuracy": "no items of the five recyclable materials",
    "bin_accuracy": "no items whose label names a bin",
    "residual_fraction": "no items",
    "sortable_residual_fraction": "no items that belong in a sorted bin",
    "low_confidence_fraction": "no items",
}

#: How report.json labels the figures it copies from the manifest, apart from this run's.
MANIFEST_FIGURES = (
    "copied from manifest.json: measured when the model was trained, on its own validation split and "
    "on the training machine; not measured in this run"
)


def stage1_unmeasurable(labels: list[str]) -> str | None:
    """Why these labels give no stage-1 ROC (it needs organic items and others), or None."""
    organic = sum(label == ORGANIC for label in labels)
    if organic == 0:
        return "no organic items"
    return "no items other than organic" if organic == len(labels) else None


def not_measurable(metrics: dict[str, Any], labels: list[str]) -> dict[str, str]:
    """{figure: reason} for each figure this data cannot give, so no report prints 0 for unknown."""
    reasons = {name: why for name, why in MISSING_BECAUSE.items() if metrics.get(name) is None}
    if why := stage1_unmeasurable(labels):
        reasons["stage1_roc_auc"] = why
    return reasons


def manifest_figures(manifest: ModelManifest) -> dict[str, Any]:
    """The variants' accuracy and speed recorded in the manifest, under a label that says so."""
    measured = manifest.validation
    variants = {name: measured[name] for name in ("int8", "fp16") if name in measured}
    return {"source": MANIFEST_FIGURES, "variants": variants} if variants else {}
