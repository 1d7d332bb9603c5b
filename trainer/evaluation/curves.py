"""Curves and matrices behind the report's plots: pure numpy over labels and model outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sortline.cascade import CascadeThresholds
from sortline.labels import BINS, MATERIALS, ORGANIC, RECYCLABLE_MATERIALS, expected_bin
from sortline_runtime.model import decide_batch
from trainer.evaluation.metrics import per_bin
from trainer.release.calibrate import THRESHOLD_GRID


def roc_pr(scores: np.ndarray, positive: np.ndarray) -> dict[str, np.ndarray | float]:
    """ROC (fpr, tpr), precision-recall and the ROC AUC, sweeping the threshold over every score."""
    order = np.argsort(-scores, kind="stable")
    hits = positive[order].astype(np.float64)
    tp, fp = np.cumsum(hits), np.cumsum(1.0 - hits)
    n_pos, n_neg = max(1.0, hits.sum()), max(1.0, len(hits) - hits.sum())
    tpr = np.concatenate([[0.0], tp / n_pos])
    fpr = np.concatenate([[0.0], fp / n_neg])
    precision = tp / np.maximum(tp + fp, 1.0)
    return {
        "fpr": fpr,
        "tpr": tpr,
        "precision": precision,
        "recall": tp / n_pos,
        "auc": float(np.trapezoid(tpr, fpr)),
    }


def confusion(truth: Sequence[str], predicted: Sequence[str], rows: Sequence[str], cols: Sequence[str]):
    """Counts matrix [len(rows), len(cols)]; pairs outside the given names are ignored."""
    matrix = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        if t in rows and p in cols:
            matrix[rows.index(t), cols.index(p)] += 1
    return matrix


def material_confusion(labels: Sequence[str], material_probs: np.ndarray) -> np.ndarray:
    """Stage-2 argmax vs label, on material-labelled images (before thresholds)."""
    keep = [i for i, label in enumerate(labels) if label in MATERIALS]
    predicted = [MATERIALS[int(material_probs[i].argmax())] for i in keep]
    return confusion([labels[i] for i in keep], predicted, list(MATERIALS), list(MATERIALS))


def bin_confusion(labels: Sequence[str], bins: Sequence[str]) -> np.ndarray:
    """Expected bin (rows) vs decided bin (cols), for labels that name a bin."""
    pairs = [(expected_bin(lb), b) for lb, b in zip(labels, bins, strict=True) if expected_bin(lb)]
    return confusion([e for e, _ in pairs], [b for _, b in pairs], list(BINS), list(BINS))


def purity_recovery_sweep(
    labels: Sequence[str], p_organic: np.ndarray, material_probs: np.ndarray, organic: float
) -> dict[str, Any]:
    """Per-bin purity and recovery as the abstain threshold sweeps calibration's grid (stage 1 fixed)."""
    grid = THRESHOLD_GRID
    curves: dict[str, dict[str, list[float | None]]] = {
        b: {"purity": [], "recovery": []} for b in RECYCLABLE_MATERIALS
    }
    residual: list[float] = []
    for t in grid:
        thresholds = CascadeThresholds(organic=organic, material_min_confidence=float(t))
        bins = [d.bin for d in decide_batch(p_organic, material_probs, thresholds)]
        figures = per_bin(labels, bins)
        for b in RECYCLABLE_MATERIALS:
            curves[b]["purity"].append(figures[b]["purity"])
            curves[b]["recovery"].append(figures[b]["recovery"])
        residual.append(sum(b == "residual" for b in bins) / max(1, len(bins)))
    return {"thresholds": grid.tolist(), "bins": curves, "residual_fraction": residual}


def organic_sweep(p_organic: np.ndarray, labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Organic-bin purity and recovery as the stage-1 threshold sweeps."""
    positive = np.array([label == ORGANIC for label in labels])
    curve = roc_pr(np.asarray(p_organic, dtype=np.float64), positive)
    return {"purity": np.asarray(curve["precision"]), "recovery": np.asarray(curve["recall"])}
