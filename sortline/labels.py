"""The label vocabulary shared by training data, models and decisions."""

from __future__ import annotations

from typing import Final

#: Stage-2 classes, in the order of the model's ``material_probs`` output.
MATERIALS: Final[tuple[str, ...]] = ("cardboard", "glass", "metal", "paper", "plastic", "trash")

#: Materials that have a bin of their own; ``trash`` is non-recyclable and goes to ``residual``.
RECYCLABLE_MATERIALS: Final[tuple[str, ...]] = ("cardboard", "glass", "metal", "paper", "plastic")

ORGANIC: Final = "organic"
RESIDUAL: Final = "residual"

#: Every bin a decision can name (routing key ``decisions.<line>.<bin>``).
BINS: Final[tuple[str, ...]] = (ORGANIC, *RECYCLABLE_MATERIALS, RESIDUAL)

#: Folder names allowed in the labelled-data layout ``DIR/<label>/*.jpg``.
#: ``recyclable`` means "not organic, material unknown" and supervises stage 1 only.
DATA_LABELS: Final[tuple[str, ...]] = (ORGANIC, "recyclable", *MATERIALS)


def expected_bin(label: str) -> str | None:
    """The bin a correctly sorted item of this data label ends in (None: any non-organic bin)."""
    if label == ORGANIC:
        return ORGANIC
    if label in RECYCLABLE_MATERIALS:
        return label
    if label == "trash":
        return RESIDUAL
    if label == "recyclable":
        return None
    raise ValueError(f"unknown data label {label!r}; expected one of {', '.join(DATA_LABELS)}")


def is_organic_label(label: str) -> bool:
    """Stage-1 ground truth for a data label."""
    if label not in DATA_LABELS:
        raise ValueError(f"unknown data label {label!r}; expected one of {', '.join(DATA_LABELS)}")
    return label == ORGANIC
