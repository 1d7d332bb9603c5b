"""Pick the cascade's operating point from the served model's outputs on the calibration subset.

``calibrate_cascade`` is what the release runs (never on the validation split, which only reports):

- Stage 1: the organic threshold with the most organic recovery while the organic bin stays at least
  ``target_purity`` pure; among equals, the best balanced accuracy, in the middle of the gap. When
  no threshold reaches the purity, the best balanced accuracy (``organic_threshold``) and the
  manifest says so. Candidates lie midway between neighbouring scores, never on one image's score.
- Stage 2: the smallest material-confidence threshold at which every recyclable bin is at least
  ``target_purity`` pure while at most ``max_abstain`` of all images are sent to residual for low
  confidence; when that is not reachable, the threshold within the abstention cap with the best
  worst-bin purity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sortline.cascade import CascadeThresholds
from sortline.labels import RECYCLABLE_MATERIALS
from sortline_runtime.model import decide_batch
from trainer.evaluation.metrics import compute_metrics

DEFAULT_ORGANIC_THRESHOLD = 0.5
THRESHOLD_GRID = np.concatenate([np.round(np.arange(0.0, 1.0, 0.01), 2), [0.995, 0.998, 0.999, 0.9995]])


def balanced_accuracy(scores: np.ndarray, positive: np.ndarray, threshold: float) -> float:
    """Mean of the recall of positives (score >= threshold) and of negatives (score < threshold)."""
    predicted = scores >= threshold
    return 0.5 * (float(predicted[positive].mean()) + float((~predicted[~positive]).mean()))


def organic_threshold(p_organic: np.ndarray, is_organic: np.ndarray) -> tuple[float, dict[str, Any]]:
    """The stage-1 threshold with the best balanced accuracy (0.5 when one class is absent)."""
    positive = np.asarray(is_organic, dtype=bool)
    if positive.all() or not positive.any():
        return DEFAULT_ORGANIC_THRESHOLD, {"method": "default: validation lacks one stage-1 class"}
    values = np.unique(np.asarray(p_organic, dtype=np.float64))
    candidates = np.concatenate([[values[0] / 2], (values[:-1] + values[1:]) / 2, [(values[-1] + 1) / 2]])
    scores = [balanced_accuracy(p_organic, positive, float(t)) for t in candidates]
    best = int(np.argmax(scores))
    return float(candidates[best]), {"method": "max balanced accuracy", "balanced_accuracy": scores[best]}


def worst_purity(metrics: dict[str, Any]) -> float:
    """Lowest purity over the recyclable bins that received anything (1.0 if none did)."""
    purities = [metrics["per_bin"][b]["purity"] for b in RECYCLABLE_MATERIALS]
    known = [p for p in purities if p is not None]
    return min(known) if known else 1.0


def material_threshold(
    labels: Sequence[str],
    p_organic: np.ndarray,
    material_probs: np.ndarray,
    organic: float,
    *,
    target_purity: float = 0.97,
    max_abstain: float = 0.25,
) -> tuple[float, dict[str, Any]]:
    """Stage-2 minimum confidence, searched through the full cascade.

    The grid is 0.00-0.99 in 0.01 steps plus a few points above 0.99: MLP heads are often very
    confident, and the purity target may only be reached that close to 1.
    """
    rows = []
    for t in THRESHOLD_GRID:
        thresholds = CascadeThresholds(organic=organic, material_min_confidence=float(t))
        metrics = compute_metrics(
            labels, p_organic, material_probs, decide_batch(p_organic, material_probs, thresholds)
        )
        rows.append((float(t), worst_purity(metrics), metrics["low_confidence_fraction"] or 0.0))
    allowed = [r for r in rows if r[2] <= max_abstain] or rows[:1]
    reaching = [r for r in allowed if r[1] >= target_purity]
    chosen = reaching[0] if reaching else max(allowed, key=lambda r: (r[1], -r[0]))
    return chosen[0], {
        "method": "smallest threshold reaching target purity"
        if reaching
        else "best worst-bin purity within cap",
        "target_purity": target_purity,
        "max_low_confidence_fraction": max_abstain,
        "target_reached": bool(reaching),
        "worst_recyclable_bin_purity": chosen[1],
        "low_confidence_fraction": chosen[2],
    }


def organic_threshold_for_purity(
    p_organic: np.ndarray, is_organic: np.ndarray, *, target_purity: float = 0.97
) -> tuple[float, dict[str, Any]]:
    """The stage-1 threshold with the best organic recovery while the organic bin stays pure enough.

    Among thresholds reaching ``target_purity`` with the highest recovery, the one with the best
    balanced accuracy (the middle one on ties) is taken, so the threshold sits inside the gap
    between organic and non-organic scores rather than on its edge. Without any threshold reaching
    the target, the best balanced accuracy is used and the manifest says so.
    """
    positive = np.asarray(is_organic, dtype=bool)
    scores = np.asarray(p_organic, dtype=np.float64)
    if positive.all() or not positive.any():
        return DEFAULT_ORGANIC_THRESHOLD, {"method": "default: calibration data lacks one stage-1 class"}
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] / 2], (values[:-1] + values[1:]) / 2, [(values[-1] + 1) / 2]])
    predicted = scores[None, :] >= candidates[:, None]
    hits = (predicted & positive[None, :]).sum(axis=1)
    taken = predicted.sum(axis=1)
    purity = np.where(taken > 0, hits / np.maximum(taken, 1), 1.0)
    recovery = hits / positive.sum()
    feasible = np.flatnonzero((purity >= target_purity) & (taken > 0))
    if not len(feasible):
        threshold, info = organic_threshold(scores, positive)
        return threshold, {**info, "target_purity": target_purity, "target_reached": False}
    best = feasible[recovery[feasible] == recovery[feasible].max()]
    balanced = np.array([balanced_accuracy(scores, positive, float(candidates[i])) for i in best])
    top = best[balanced == balanced.max()]
    chosen = int(top[len(top) // 2])
    return float(candidates[chosen]), {
        "method": "max organic recovery with purity >= target",
        "target_purity": target_purity,
        "target_reached": True,
        "purity": float(purity[chosen]),
        "recovery": float(recovery[chosen]),
        "balanced_accuracy": float(balanced.max()),
    }


def calibrate_cascade(
    labels: Sequence[str],
    p_organic: np.ndarray,
    material_probs: np.ndarray,
    *,
    target_purity: float = 0.97,
    max_abstain: float = 0.25,
) -> tuple[CascadeThresholds, dict[str, Any]]:
    """Both thresholds: stage 1 for organic recovery at target purity, then the abstain threshold."""
    is_organic = np.array([label == "organic" for label in labels])
    organic, organic_info = organic_threshold_for_purity(p_organic, is_organic, target_purity=target_purity)
    material, material_info = material_threshold(
        labels, p_organic, material_probs, organic, target_purity=target_purity, max_abstain=max_abstain
    )
    thresholds = CascadeThresholds(organic=round(organic, 6), material_min_confidence=material)
    return thresholds, {"organic_threshold": organic_info, "material_min_confidence": material_info}
