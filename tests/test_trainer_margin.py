"""The margin rule: thresholds whose bins clear the purity target by a Wilson lower bound."""

from __future__ import annotations

import numpy as np
import pytest

from sortline.labels import MATERIALS
from sortline_runtime.model import decide_batch
from trainer.evaluation.metrics import compute_metrics
from trainer.fit.cross_fit import fold_of
from trainer.release.calibrate import calibrate_with_margin, wilson_lower


def test_wilson_lower_bound_known_values() -> None:
    # 60 of 60 right: one-sided 95% bound n / (n + z^2)
    assert float(wilson_lower(60, 60, 1.645)) == pytest.approx(60 / (60 + 1.645**2), abs=1e-9)
    assert float(wilson_lower(97, 100, 0.0)) == pytest.approx(0.97)
    assert float(wilson_lower(0, 0, 1.645)) == 1.0
    assert float(wilson_lower(970, 1000, 1.645)) < 0.97 < float(wilson_lower(985, 1000, 1.645))


def _data(n_per: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Glass and metal items: most confident and right; a share of confident-ish mistakes at 0.9-0.99."""
    rng = np.random.default_rng(seed)
    labels, probs = [], []
    for truth, other in (("glass", "metal"), ("metal", "glass")):
        for _ in range(n_per):
            wrong = rng.random() < 0.08
            confidence = rng.uniform(0.9, 0.99) if wrong else rng.uniform(0.9, 1.0)
            row = np.zeros(len(MATERIALS))
            row[MATERIALS.index(other if wrong else truth)] = confidence
            row[MATERIALS.index("trash")] = 1 - confidence
            labels.append(truth)
            probs.append(row)
    n = len(labels)
    return labels, np.zeros(n), np.array(probs), np.zeros(n)


def _worst_purity(labels, p_organic, probs, thresholds) -> float:
    metrics = compute_metrics(labels, p_organic, probs, decide_batch(p_organic, probs, thresholds))
    return min(metrics["per_bin"][b]["purity"] or 1.0 for b in ("glass", "metal"))


def test_the_margin_keeps_unseen_items_pure_where_the_plain_rule_does_not_always() -> None:
    labels, p_organic, probs, _ = _data(400, seed=1)
    kwargs = {"target_purity": 0.97, "hazard_target_purity": 0.95}
    with_margin, info = calibrate_with_margin(labels, (p_organic, probs, None), z=1.645, **kwargs)
    plain, _ = calibrate_with_margin(labels, (p_organic, probs, None), z=0.0, **kwargs)
    assert info["material_min_confidence"]["target_reached"]
    assert with_margin.material_min_confidence > plain.material_min_confidence
    fresh = [_data(400, seed=s) for s in range(2, 12)]
    held = [_worst_purity(lab, p, m, with_margin) for lab, p, m, _ in fresh]
    assert min(held) >= 0.96 and np.mean(held) >= 0.97


def test_a_hazard_threshold_is_chosen_from_hazard_scores() -> None:
    labels, p_organic, probs, _ = _data(200, seed=3)
    labels = labels + ["battery"] * 200
    p_organic = np.concatenate([p_organic, np.zeros(200)])
    probs = np.concatenate([probs, np.tile(np.eye(len(MATERIALS))[MATERIALS.index("trash")], (200, 1))])
    p_hazard = np.concatenate([np.linspace(0.0, 0.3, 400), np.linspace(0.6, 1.0, 200)])
    thresholds, info = calibrate_with_margin(
        labels, (p_organic, probs, p_hazard), target_purity=0.97, hazard_target_purity=0.95, z=1.645
    )
    assert 0.3 < thresholds.hazard < 0.6
    assert info["hazard_threshold"]["recovery"] == 1.0


def test_folds_are_stable_and_balanced() -> None:
    keys = [f"src/glass/{i}.jpg" for i in range(1000)]
    folds = fold_of(keys, 5)
    assert (folds == fold_of(keys, 5)).all()
    assert np.bincount(folds, minlength=5).min() > 150
