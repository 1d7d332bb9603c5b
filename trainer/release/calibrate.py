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

With a margin ``z`` > 0 (``calibrate_with_margin``) "pure enough" means the Wilson score lower
bound of the bin's purity at ``z`` reaches the target, not the purity seen: a bin of 60 items all
right is 100% pure but only >= 94.3% with one-sided 95% confidence (z 1.645), so a threshold is not
accepted on the strength of a few images, and one image more or less moves it little. The hazard
bin gets the same rule with its own target. ``z`` 0 is the plain purity of the rule above.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sortline.cascade import CascadeThresholds
from sortline.labels import RECYCLABLE_MATERIALS, is_hazard_label
from sortline_runtime.model import decide_batch
from trainer.evaluation.metrics import compute_metrics

DEFAULT_ORGANIC_THRESHOLD = 0.5
THRESHOLD_GRID = np.concatenate([np.round(np.arange(0.0, 1.0, 0.01), 2), [0.995, 0.998, 0.999, 0.9995]])


def wilson_lower(hits: np.ndarray | int, n: np.ndarray | int, z: float) -> np.ndarray:
    """Wilson score lower bound of a proportion ``hits / n`` (1.0 where n is 0; hits/n at z 0)."""
    hits_a, n_a = np.asarray(hits, dtype=np.float64), np.asarray(n, dtype=np.float64)
    safe = np.maximum(n_a, 1.0)
    p = hits_a / safe
    centre = p + z * z / (2 * safe)
    spread = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(n_a > 0, (centre - spread) / (1 + z * z / safe), 1.0)


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


def worst_purity_bound(labels: Sequence[str], bins: Sequence[str], z: float) -> float:
    """Lowest Wilson lower bound of purity over the recyclable bins (1.0 for an empty bin)."""
    bounds = []
    for name in RECYCLABLE_MATERIALS:
        taken = [label for label, b in zip(labels, bins, strict=True) if b == name]
        bounds.append(float(wilson_lower(sum(label == name for label in taken), len(taken), z)))
    return min(bounds)


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
    p_organic: np.ndarray, is_organic: np.ndarray, *, target_purity: float = 0.97, z: float = 0.0
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
    purity = wilson_lower(hits, taken, z)
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
        "method": "max recovery with purity >= target" + (f" (Wilson lower bound, z {z})" if z else ""),
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


#: The material grid of the margin rule: THRESHOLD_GRID plus 0.0005 steps above 0.99, where
#: confident heads put most of their items.
MARGIN_GRID = np.unique(np.concatenate([THRESHOLD_GRID, np.round(np.arange(0.99, 1.0, 0.0005), 4), [0.9999]]))


def material_threshold_with_margin(
    labels: Sequence[str],
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    base: CascadeThresholds,
    *,
    target_purity: float,
    z: float,
) -> tuple[float, dict[str, Any]]:
    """The smallest abstain threshold whose worst recyclable bin's purity bound reaches the target.

    ``outputs`` is (p_organic, material_probs, p_hazard or None); the cascade runs whole (hazard,
    organic, material) with ``base``'s other thresholds. Without any reaching it, the grid point with
    the best worst-bin bound, and the info says so.
    """
    p_organic, material_probs, p_hazard = outputs
    rows = []
    for t in MARGIN_GRID:
        thresholds = base.model_copy(update={"material_min_confidence": float(t)})
        decisions = decide_batch(p_organic, material_probs, thresholds, p_hazard)
        bins = [d.bin for d in decisions]
        rows.append((float(t), worst_purity_bound(labels, bins, z), decisions))
    reaching = [r for r in rows if r[1] >= target_purity]
    chosen = reaching[0] if reaching else max(rows, key=lambda r: (r[1], -r[0]))
    metrics = compute_metrics(labels, p_organic, material_probs, chosen[2])
    return chosen[0], {
        "method": f"smallest threshold whose worst bin's Wilson lower bound (z {z}) reaches the target",
        "target_purity": target_purity,
        "target_reached": bool(reaching),
        "worst_recyclable_bin_purity_bound": chosen[1],
        "worst_recyclable_bin_purity": worst_purity(metrics),
        "sortable_residual_fraction": metrics["sortable_residual_fraction"],
    }


def calibrate_with_margin(
    labels: Sequence[str],
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    *,
    target_purity: float,
    hazard_target_purity: float,
    z: float,
) -> tuple[CascadeThresholds, dict[str, Any]]:
    """All three thresholds by the margin rule: hazard, then organic, then the abstain threshold.

    Meant for a large calibration set (out-of-fold predictions, ``trainer.fit.cross_fit``): the
    bounds are tight only with hundreds of items per bin.
    """
    p_organic, _, p_hazard = outputs
    info: dict[str, Any] = {}
    hazard = CascadeThresholds().hazard
    if p_hazard is not None:
        is_hazard = np.array([is_hazard_label(label) for label in labels])
        hazard, info["hazard_threshold"] = organic_threshold_for_purity(
            p_hazard, is_hazard, target_purity=hazard_target_purity, z=z
        )
    is_organic = np.array([label == "organic" for label in labels])
    organic, info["organic_threshold"] = organic_threshold_for_purity(
        p_organic, is_organic, target_purity=target_purity, z=z
    )
    base = CascadeThresholds(organic=round(organic, 6), hazard=round(hazard, 6))
    material, info["material_min_confidence"] = material_threshold_with_margin(
        labels, outputs, base, target_purity=target_purity, z=z
    )
    return base.model_copy(update={"material_min_confidence": material}), info
