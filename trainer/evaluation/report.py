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


def _plots(directory: Path, scored: ScoredSet, thresholds: CascadeThresholds) -> dict[str, str]:
    """Every PNG of the report; returns {name: file}."""
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
    curve = curves.roc_pr(scored.p_organic.astype(np.float64), positive)
    point = stage1_operating_point(curve, scored.p_organic, positive, thresholds.organic)
    files["stage1_roc_pr"] = plots.roc_pr_png(curve, point, directory / "stage1_roc_pr.png")
    sweep = curves.purity_recovery_sweep(labels, scored.p_organic, scored.material_probs, thresholds.organic)
    organic = curves.organic_sweep(scored.p_organic, labels)
    files["purity_recovery"] = plots.purity_recovery_png(
        sweep, organic, thresholds.material_min_confidence, directory / "purity_recovery.png"
    )
    files["worst_mistakes"] = _mistakes(directory, scored)
    return {name: path.name for name, path in files.items()} | {"_auc": f"{curve['auc']:.6f}"}


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
    directory: Path, scored: ScoredSet, metrics: dict[str, Any], manifest: ModelManifest
) -> None:
    """report.json, the PNGs and summary.md into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = _plots(directory, scored, manifest.thresholds)
    auc = float(files.pop("_auc"))
    report = {**metrics, "stage1_roc_auc": auc, "plots": files, "targets": TARGETS}
    measured = manifest.validation
    report["variants"] = {name: measured[name] for name in ("int8", "fp16") if name in measured}
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    from trainer.evaluation.summary import render_summary

    summary = render_summary(report, manifest)
    if "leave_one_source_out" in report:  # trainer evaluate --loso
        from trainer.evaluation.loso import render_markdown

        summary += render_markdown(report["leave_one_source_out"])
    (directory / "summary.md").write_text(summary)
    log.info("wrote report to %s", directory)
