"""The sorting decision: hazard first, then organic or not, then material, with abstention to ``residual``.

A hazard (a battery) is checked before anything else, when the model has a hazard output: it must
never be ejected into a recyclable bin, where it can start a fire. Models without that output (older
manifests) decide as before.

An optical sorter ejects only on a confident positive: an item the model is unsure about stays on
the belt and ends in ``residual``, which keeps every other bin pure. This module is pure logic so
the worker, the trainer's evaluation and the tests all decide the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sortline.labels import HAZARD, MATERIALS, ORGANIC, RECYCLABLE_MATERIALS, RESIDUAL


class CascadeThresholds(BaseModel):
    """Operating point of the cascade, calibrated by the trainer and stored with the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organic: float = Field(
        0.5, ge=0.0, le=1.0, description="p_organic at or above which an item goes to the organic bin."
    )
    material_min_confidence: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Top material probability below which a non-organic item goes to residual.",
    )
    hazard: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="p_hazard at or above which an item goes to the hazard bin, checked first "
        "(ignored by models without a hazard output).",
    )


class ResidualReason(StrEnum):
    """Why an item ended in ``residual``; lets review tools tell trash from doubt."""

    TRASH = "trash"
    LOW_CONFIDENCE = "low-confidence"


@dataclass(frozen=True, slots=True)
class CascadeDecision:
    """One item's bin and the probability that supports it."""

    bin: str
    confidence: float
    material: str | None
    residual_reason: ResidualReason | None = None


def decide(
    p_organic: float,
    material_probs: Sequence[float],
    thresholds: CascadeThresholds,
    p_hazard: float | None = None,
) -> CascadeDecision:
    """Apply the cascade to one item's model outputs.

    ``material_probs`` follows :data:`sortline.labels.MATERIALS`. ``material`` is what stage 2
    said for a non-organic item (also when it then goes to residual), and None for an organic or
    hazardous one. ``p_hazard`` is None for a model without a hazard output: no hazard check.
    """
    if len(material_probs) != len(MATERIALS):
        raise ValueError(f"expected {len(MATERIALS)} material probabilities, got {len(material_probs)}")
    if not 0.0 <= p_organic <= 1.0:
        raise ValueError(f"p_organic must be within [0, 1], got {p_organic}")
    if p_hazard is not None:
        if not 0.0 <= p_hazard <= 1.0:
            raise ValueError(f"p_hazard must be within [0, 1], got {p_hazard}")
        if p_hazard >= thresholds.hazard:
            return CascadeDecision(bin=HAZARD, confidence=float(p_hazard), material=None)
    if p_organic >= thresholds.organic:
        return CascadeDecision(bin=ORGANIC, confidence=float(p_organic), material=None)
    best = max(range(len(MATERIALS)), key=lambda i: material_probs[i])
    material = MATERIALS[best]
    confidence = float(material_probs[best])
    if material not in RECYCLABLE_MATERIALS:
        return CascadeDecision(RESIDUAL, confidence, material, ResidualReason.TRASH)
    if confidence < thresholds.material_min_confidence:
        return CascadeDecision(RESIDUAL, confidence, material, ResidualReason.LOW_CONFIDENCE)
    return CascadeDecision(bin=material, confidence=confidence, material=material)
