"""Calibration of the cascade's operating point on validation outputs."""

from __future__ import annotations

import numpy as np
import pytest

from sortline.labels import MATERIALS
from sortline_runtime.model import decide_batch
from trainer.evaluation.metrics import compute_metrics
from trainer.release.calibrate import (
    balanced_accuracy,
    calibrate_cascade,
    material_threshold,
    organic_threshold,
    organic_threshold_for_purity,
)


def test_organic_threshold_separates_separable_scores() -> None:
    p = np.array([0.1, 0.2, 0.8, 0.9])
    positive = np.array([False, False, True, True])
    threshold, info = organic_threshold(p, positive)
    assert 0.2 < threshold <= 0.8
    assert threshold == pytest.approx(0.5)
    assert info["balanced_accuracy"] == 1.0


def test_organic_threshold_is_the_best_on_a_fine_grid() -> None:
    rng = np.random.default_rng(3)
    positive = rng.random(300) < 0.15
    p = np.clip(rng.normal(np.where(positive, 0.6, 0.35), 0.15), 0, 1)
    threshold, info = organic_threshold(p, positive)
    best_on_grid = max(balanced_accuracy(p, positive, t) for t in np.linspace(0, 1, 2001))
    assert info["balanced_accuracy"] >= best_on_grid - 1e-12
    assert balanced_accuracy(p, positive, threshold) == info["balanced_accuracy"]


def test_organic_threshold_defaults_when_a_class_is_missing() -> None:
    threshold, info = organic_threshold(np.array([0.2, 0.7]), np.array([False, False]))
    assert threshold == 0.5
    assert "default" in info["method"]


def probs_for(material: str, confidence: float) -> list[float]:
    rest = (1.0 - confidence) / (len(MATERIALS) - 1)
    return [confidence if m == material else rest for m in MATERIALS]


def glass_case() -> tuple[list[str], np.ndarray, np.ndarray]:
    """30 glass items called glass at 0.9, one metal item called glass at 0.6."""
    labels = ["glass"] * 30 + ["metal"]
    probs = np.array([probs_for("glass", 0.9)] * 30 + [probs_for("glass", 0.6)])
    return labels, np.zeros(len(labels)), probs


def test_material_threshold_is_smallest_reaching_target_purity() -> None:
    labels, p, probs = glass_case()
    threshold, info = material_threshold(labels, p, probs, 0.5, target_purity=0.97, max_abstain=0.25)
    assert threshold == pytest.approx(0.61)
    assert info["target_reached"] is True
    assert info["worst_recyclable_bin_purity"] == 1.0


def test_material_threshold_respects_the_abstention_cap() -> None:
    labels, p, probs = glass_case()
    threshold, info = material_threshold(labels, p, probs, 0.5, target_purity=0.97, max_abstain=0.0)
    assert threshold <= 0.6
    assert info["target_reached"] is False
    assert info["low_confidence_fraction"] == 0.0


def test_organic_threshold_maximises_recovery_at_target_purity() -> None:
    # 40 organic items, 60 others; one other scores among the organic ones
    organic = np.linspace(0.55, 0.99, 40)
    others = np.concatenate([np.linspace(0.01, 0.4, 59), [0.9]])
    p = np.concatenate([organic, others])
    positive = np.array([True] * 40 + [False] * 60)
    threshold, info = organic_threshold_for_purity(p, positive, target_purity=0.97)
    taken = p >= threshold
    purity = (taken & positive).sum() / taken.sum()
    assert purity >= 0.97
    assert info["target_reached"] is True
    # the best achievable: keep one intruder (purity 40/41 > 0.97) and every organic item
    assert info["recovery"] == 1.0
    assert 0.4 < threshold <= 0.55


def test_organic_threshold_falls_back_when_purity_is_out_of_reach() -> None:
    p = np.array([0.7, 0.9, 0.85, 0.6])  # the two highest scores are not organic
    positive = np.array([True, False, False, True])
    _, info = organic_threshold_for_purity(p, positive, target_purity=0.97)
    assert info["target_reached"] is False


def test_calibrated_cascade_keeps_every_bin_at_target_purity() -> None:
    rng = np.random.default_rng(0)
    labels, rows, p = [], [], []
    for k, material in enumerate(MATERIALS):
        for _ in range(40):
            wrong = rng.random() < 0.1  # 10% confidently-ish wrong, at lower confidence
            called = MATERIALS[(k + 1) % len(MATERIALS)] if wrong else material
            rows.append(probs_for(called, 0.5 if wrong else 0.9))
            labels.append(material)
            p.append(0.05)
    for _ in range(30):
        labels.append("organic")
        rows.append(probs_for("paper", 0.5))
        p.append(0.9)
    thresholds, info = calibrate_cascade(labels, np.array(p), np.array(rows), target_purity=0.97)
    metrics = compute_metrics(
        labels, np.array(p), np.array(rows), decide_batch(np.array(p), np.array(rows), thresholds)
    )
    purities = [f["purity"] for f in metrics["per_bin"].values() if f["purity"] is not None]
    assert min(purities[:-1]) >= 0.97  # every bin but residual
    assert 0.5 < thresholds.material_min_confidence <= 0.9
    assert info["material_min_confidence"]["target_reached"] is True
