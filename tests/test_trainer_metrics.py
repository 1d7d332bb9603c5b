"""Evaluation figures on a hand-made example whose answers were worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sortline.cascade import CascadeDecision, CascadeThresholds, ResidualReason
from sortline.labels import MATERIALS
from sortline_runtime.model import decide_batch
from trainer.evaluation.metrics import compute_metrics


def one_hot(material: str) -> list[float]:
    probs = [0.02] * len(MATERIALS)
    probs[MATERIALS.index(material)] = 0.9
    return probs


LABELS = ["organic", "organic", "glass", "glass", "metal", "trash", "recyclable"]
DECISIONS = [
    CascadeDecision("organic", 0.9, None),
    CascadeDecision("glass", 0.9, "glass"),  # organic item in the glass bin
    CascadeDecision("glass", 0.9, "glass"),
    CascadeDecision("residual", 0.5, "glass", ResidualReason.LOW_CONFIDENCE),
    CascadeDecision("glass", 0.9, "glass"),  # metal item in the glass bin
    CascadeDecision("residual", 0.9, "trash", ResidualReason.TRASH),
    CascadeDecision("organic", 0.8, None),  # non-organic item in the organic bin
]
P_ORGANIC = np.array([0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.8])
PROBS = np.array([one_hot(m) for m in ["paper", "glass", "glass", "glass", "glass", "trash", "paper"]])


@pytest.fixture
def metrics() -> dict:
    return compute_metrics(LABELS, P_ORGANIC, PROBS, DECISIONS)


def test_headline_figures(metrics: dict) -> None:
    assert metrics["n_images"] == 7
    assert metrics["stage1_accuracy"] == pytest.approx(5 / 7)
    assert metrics["material_accuracy"] == pytest.approx(3 / 4)  # glass, glass, metal->glass, trash
    assert metrics["bin_accuracy"] == pytest.approx(3 / 6)  # "recyclable" has no expected bin
    assert metrics["residual_fraction"] == pytest.approx(2 / 7)
    assert metrics["low_confidence_fraction"] == pytest.approx(1 / 7)


def test_target_figures_leave_trash_out(metrics: dict) -> None:
    """The targets speak of the five recyclables, and of sortable items lost to residual."""
    assert metrics["recyclable_material_accuracy"] == pytest.approx(2 / 3)  # glass, glass, metal->glass
    assert metrics["sortable_residual_fraction"] == pytest.approx(1 / 5)  # 2 organic, 2 glass, 1 metal


def test_purity_and_recovery_per_bin(metrics: dict) -> None:
    bins = metrics["per_bin"]
    assert bins["organic"] == {"predicted": 2, "expected": 2, "purity": 0.5, "recovery": 0.5}
    assert bins["glass"]["purity"] == pytest.approx(1 / 3)
    assert bins["glass"]["recovery"] == pytest.approx(1 / 2)
    assert bins["metal"] == {"predicted": 0, "expected": 1, "purity": None, "recovery": 0.0}
    assert bins["residual"]["purity"] == pytest.approx(1 / 2)
    assert bins["residual"]["recovery"] == 1.0
    assert bins["paper"] == {"predicted": 0, "expected": 0, "purity": None, "recovery": None}


def test_decide_all_follows_the_cascade() -> None:
    thresholds = CascadeThresholds(organic=0.5, material_min_confidence=0.95)
    decisions = decide_batch(P_ORGANIC, PROBS, thresholds)
    assert [d.bin for d in decisions] == [
        "organic", "residual", "residual", "residual", "residual", "residual", "organic",
    ]  # fmt: skip
    assert decisions[1].residual_reason == ResidualReason.LOW_CONFIDENCE
    assert decisions[5].residual_reason == ResidualReason.TRASH
