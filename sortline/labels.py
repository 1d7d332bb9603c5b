"""The label vocabulary shared by training data, models and decisions."""

from __future__ import annotations

from typing import Final

#: Stage-2 classes, in the order of the model's ``material_probs`` output.
MATERIALS: Final[tuple[str, ...]] = ("cardboard", "glass", "metal", "paper", "plastic", "trash")

#: Materials that have a bin of their own; ``trash`` is non-recyclable and goes to ``residual``.
RECYCLABLE_MATERIALS: Final[tuple[str, ...]] = ("cardboard", "glass", "metal", "paper", "plastic")

ORGANIC: Final = "organic"
RESIDUAL: Final = "residual"
#: Batteries (and whatever else may start a fire in the plant): checked before anything else.
HAZARD: Final = "hazard"

#: Data labels of hazardous items: each goes to the ``hazard`` bin.
HAZARD_LABELS: Final[tuple[str, ...]] = ("battery",)

#: Data labels of non-recyclable items other than ``trash``: they go to ``residual`` and teach
#: stage 2 that they are trash (the material head has no class of their own).
RESIDUAL_LABELS: Final[tuple[str, ...]] = ("trash", "textile")

#: Every bin a decision can name (routing key ``decisions.<line>.<bin>``).
BINS: Final[tuple[str, ...]] = (HAZARD, ORGANIC, *RECYCLABLE_MATERIALS, RESIDUAL)

#: Folder names allowed in the labelled-data layout ``DIR/<label>/*.jpg``.
#: ``recyclable`` means "not organic, material unknown" and supervises stage 1 only.
DATA_LABELS: Final[tuple[str, ...]] = (ORGANIC, "recyclable", *MATERIALS, *HAZARD_LABELS, "textile")


def expected_bin(label: str) -> str | None:
    """The bin a correctly sorted item of this data label ends in (None: any non-organic bin)."""
    if label == ORGANIC:
        return ORGANIC
    if label in RECYCLABLE_MATERIALS:
        return label
    if label in RESIDUAL_LABELS:
        return RESIDUAL
    if label in HAZARD_LABELS:
        return HAZARD
    if label == "recyclable":
        return None
    raise ValueError(f"unknown data label {label!r}; expected one of {', '.join(DATA_LABELS)}")


def is_organic_label(label: str) -> bool:
    """Stage-1 ground truth for a data label."""
    if label not in DATA_LABELS:
        raise ValueError(f"unknown data label {label!r}; expected one of {', '.join(DATA_LABELS)}")
    return label == ORGANIC


def is_hazard_label(label: str) -> bool:
    """Ground truth of the hazard check for a data label."""
    if label not in DATA_LABELS:
        raise ValueError(f"unknown data label {label!r}; expected one of {', '.join(DATA_LABELS)}")
    return label in HAZARD_LABELS


def material_target(label: str) -> str | None:
    """The stage-2 class an image of this label teaches (None: it teaches stage 2 nothing).

    Textiles and batteries are taught as ``trash``: the material head has no class for them, and
    a battery the hazard check misses should still land in ``residual``, never in a recyclable bin.
    """
    if label in MATERIALS:
        return label
    if label in RESIDUAL_LABELS or label in HAZARD_LABELS:
        return "trash"
    return None
