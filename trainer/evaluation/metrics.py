"""Figures of a cascade on labelled images: pure functions over labels and model outputs.

Per-bin purity (precision) and recovery (recall) are what plants buy on. An image labelled
``recyclable`` (material unknown) only tells us it is not organic: it counts against the organic
bin's purity and in stage-1 accuracy, and is left out of every other per-bin figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from sortline.cascade import CascadeDecision, ResidualReason
from sortline.labels import (
    BINS,
    DATA_LABELS,
    HAZARD,
    MATERIALS,
    ORGANIC,
    RECYCLABLE_MATERIALS,
    RESIDUAL,
    expected_bin,
)


def bin_is_correct(label: str, bin_name: str) -> bool | None:
    """Whether an image with this label belongs in this bin; None when the label cannot tell."""
    expected = expected_bin(label)
    if expected is None:  # "recyclable": wrong only in the organic bin
        return False if bin_name == ORGANIC else None
    return expected == bin_name


def per_bin(labels: Sequence[str], bins: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Purity and recovery of every bin; None where a figure has no denominator."""
    figures: dict[str, dict[str, Any]] = {}
    for name in BINS:
        judged = [bin_is_correct(label, b) for label, b in zip(labels, bins, strict=True) if b == name]
        known = [j for j in judged if j is not None]
        expected = [b for label, b in zip(labels, bins, strict=True) if expected_bin(label) == name]
        correct_in, hits = sum(known), sum(b == name for b in expected)
        figures[name] = {
            "predicted": len(judged),
            "expected": len(expected),
            "purity": correct_in / len(known) if known else None,
            "recovery": hits / len(expected) if expected else None,
        }
    return figures


def _ratio(hits: int, total: int) -> float | None:
    return hits / total if total else None


def compute_metrics(
    labels: Sequence[str],
    p_organic: np.ndarray,
    material_probs: np.ndarray,
    decisions: Sequence[CascadeDecision],
) -> dict[str, Any]:
    """Stage-1, material and bin accuracy, per-bin purity/recovery, residual fractions, counts.

    ``material_accuracy`` is the 6-way argmax (trash included) on every material-labelled image;
    ``recyclable_material_accuracy`` the same argmax on the five recyclables only (a recyclable
    called trash is wrong), which is how the targets define material accuracy.
    """
    bins = [d.bin for d in decisions]
    organic_pred = [b == ORGANIC for b in bins]
    stage1 = sum(pred == (label == ORGANIC) for pred, label in zip(organic_pred, labels, strict=True))
    material_rows = [i for i, label in enumerate(labels) if label in MATERIALS]
    material_hits = sum(MATERIALS[int(np.argmax(material_probs[i]))] == labels[i] for i in material_rows)
    # The "material accuracy" is over the five recyclables; trash is the catch-all class.
    recyclable_rows = [i for i, label in enumerate(labels) if label in RECYCLABLE_MATERIALS]
    recyclable_hits = sum(MATERIALS[int(np.argmax(material_probs[i]))] == labels[i] for i in recyclable_rows)
    binned = [i for i, label in enumerate(labels) if expected_bin(label) is not None]
    bin_hits = sum(bins[i] == expected_bin(labels[i]) for i in binned)
    # Items that belong in a sorted bin but went to residual: recovery lost to abstention. Trash
    # belongs in residual, so the plain residual fraction mostly says how much trash the data holds.
    sortable = [i for i in binned if expected_bin(labels[i]) != RESIDUAL]
    sortable_to_residual = sum(bins[i] == RESIDUAL for i in sortable)
    low_conf = sum(d.residual_reason == ResidualReason.LOW_CONFIDENCE for d in decisions)
    counts = Counter(labels)
    bins_figures = per_bin(labels, bins)
    return {
        "n_images": len(labels),
        "counts": {label: counts[label] for label in DATA_LABELS if counts[label]},
        "stage1_accuracy": _ratio(stage1, len(labels)),
        "material_accuracy": _ratio(material_hits, len(material_rows)),
        "recyclable_material_accuracy": _ratio(recyclable_hits, len(recyclable_rows)),
        "bin_accuracy": _ratio(bin_hits, len(binned)),
        "residual_fraction": _ratio(sum(b == RESIDUAL for b in bins), len(bins)),
        "sortable_residual_fraction": _ratio(sortable_to_residual, len(sortable)),
        "low_confidence_fraction": _ratio(low_conf, len(bins)),
        # Batteries: how many the hazard bin caught, and how many of its items were batteries.
        "hazard_recall": bins_figures[HAZARD]["recovery"],
        "hazard_purity": bins_figures[HAZARD]["purity"],
        "per_bin": bins_figures,
    }
