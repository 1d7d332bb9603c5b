"""The cascade's decision logic: organic first, then material, abstaining to residual."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sortline.cascade import CascadeThresholds, ResidualReason, decide
from sortline.labels import BINS, MATERIALS

T = CascadeThresholds(organic=0.4, material_min_confidence=0.6)


def probs(**values: float) -> list[float]:
    return [values.get(m, 0.0) for m in MATERIALS]


def test_organic_at_or_above_threshold_goes_to_organic() -> None:
    d = decide(0.4, probs(glass=1.0), T)
    assert (d.bin, d.confidence, d.material) == ("organic", 0.4, None)


def test_below_organic_threshold_goes_to_confident_material() -> None:
    d = decide(0.39, probs(glass=0.9, metal=0.1), T)
    assert (d.bin, d.material, d.residual_reason) == ("glass", "glass", None)
    assert d.confidence == pytest.approx(0.9)


def test_trash_goes_to_residual_with_reason() -> None:
    d = decide(0.1, probs(trash=0.95, paper=0.05), T)
    assert (d.bin, d.material, d.residual_reason) == ("residual", "trash", ResidualReason.TRASH)


def test_unsure_material_abstains_to_residual() -> None:
    d = decide(0.1, probs(paper=0.55, cardboard=0.45), T)
    assert (d.bin, d.material, d.residual_reason) == ("residual", "paper", ResidualReason.LOW_CONFIDENCE)


def test_confidence_exactly_at_abstain_threshold_is_ejected() -> None:
    assert decide(0.0, probs(metal=0.6, glass=0.4), T).bin == "metal"


def test_wrong_number_of_probabilities_is_refused() -> None:
    with pytest.raises(ValueError, match="6 material probabilities"):
        decide(0.1, [0.5, 0.5], T)


def test_out_of_range_p_organic_is_refused() -> None:
    with pytest.raises(ValueError, match="p_organic"):
        decide(1.5, probs(glass=1.0), T)


unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(p_organic=unit, raw=st.lists(unit, min_size=6, max_size=6), t_org=unit, t_mat=unit)
def test_every_decision_is_a_known_bin_backed_by_its_probability(p_organic, raw, t_org, t_mat) -> None:
    thresholds = CascadeThresholds(organic=t_org, material_min_confidence=t_mat)
    d = decide(p_organic, raw, thresholds)
    assert d.bin in BINS
    if d.bin == "organic":
        assert p_organic >= t_org and d.confidence == p_organic
    else:
        assert p_organic < t_org
        assert d.confidence == max(raw) and d.material == MATERIALS[raw.index(max(raw))]
        if d.bin != "residual":
            assert d.confidence >= t_mat and d.bin == d.material


def test_hazard_is_checked_before_organic_and_material() -> None:
    d = decide(0.99, probs(metal=1.0), T, p_hazard=0.5)
    assert (d.bin, d.confidence, d.material, d.residual_reason) == ("hazard", 0.5, None, None)


def test_below_the_hazard_threshold_the_cascade_decides_as_before() -> None:
    assert decide(0.1, probs(metal=0.9), T, p_hazard=0.49).bin == "metal"
    assert decide(0.5, probs(metal=0.9), T, p_hazard=0.49).bin == "organic"


def test_a_model_without_a_hazard_output_has_no_hazard_check() -> None:
    strict = CascadeThresholds(organic=0.4, material_min_confidence=0.6, hazard=0.0)
    assert decide(0.1, probs(metal=0.9), strict).bin == "metal"  # p_hazard None: never hazard


def test_old_thresholds_without_hazard_load_with_the_default() -> None:
    old = CascadeThresholds.model_validate({"organic": 0.2, "material_min_confidence": 0.9995})
    assert old.hazard == 0.5


def test_out_of_range_p_hazard_is_refused() -> None:
    with pytest.raises(ValueError, match="p_hazard"):
        decide(0.1, probs(metal=1.0), T, p_hazard=1.5)
