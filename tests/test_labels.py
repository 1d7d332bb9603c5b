"""The label vocabulary: where each data label's items belong and what they teach each stage."""

from __future__ import annotations

import pytest

from sortline.labels import (
    BINS,
    DATA_LABELS,
    HAZARD,
    RESIDUAL,
    expected_bin,
    is_hazard_label,
    material_target,
)
from trainer.review.page import label_keys


def test_batteries_belong_in_the_hazard_bin_textiles_in_residual() -> None:
    assert expected_bin("battery") == HAZARD
    assert expected_bin("textile") == RESIDUAL
    assert is_hazard_label("battery") and not is_hazard_label("metal")


def test_textiles_and_batteries_teach_stage_2_trash() -> None:
    assert material_target("textile") == "trash"
    assert material_target("battery") == "trash"  # a missed battery lands in residual, not in a bin
    assert material_target("glass") == "glass"
    assert material_target("organic") is None and material_target("recyclable") is None


def test_the_hazard_bin_is_a_bin() -> None:
    assert BINS[0] == HAZARD


def test_every_bin_has_a_label_with_a_review_key() -> None:
    keys = label_keys()
    assert len(keys) == len(DATA_LABELS) == len(set(keys.values()))
    reachable = {expected_bin(label) for label in keys.values()} - {None}
    assert reachable == set(BINS)
    assert keys["b"] == "battery" and keys["x"] == "textile"


def test_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown data label"):
        is_hazard_label("lithium")
