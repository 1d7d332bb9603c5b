"""The committed cut-outs (alpha PNGs of validation-split photos) that the generator puts on the belt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CUTOUTS = Path(__file__).resolve().parent / "cutouts"


@dataclass(frozen=True, slots=True)
class Cutout:
    """One item photo without its background: BGR colours and an alpha mask, uint8."""

    label: str
    name: str
    bgr: np.ndarray
    alpha: np.ndarray


def load_cutouts(classes: list[str] | None = None, folder: Path = CUTOUTS) -> list[Cutout]:
    """Every cut-out of the given classes (all classes when empty), in a stable order."""
    labels = sorted(p.name for p in folder.iterdir() if p.is_dir())
    unknown = sorted(set(classes or ()) - set(labels))
    if unknown:
        raise ValueError(f"no cut-outs for {', '.join(unknown)}; there are {', '.join(labels)}")
    cutouts = []
    for label in classes or labels:
        for path in sorted((folder / label).glob("*.png")):
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None or image.ndim != 3 or image.shape[2] != 4:
                raise ValueError(f"{path} is not a BGRA PNG")
            cutouts.append(
                Cutout(label, path.name, np.ascontiguousarray(image[..., :3]), image[..., 3].copy())
            )
    if not cutouts:
        raise ValueError(f"{folder} holds no cut-outs")
    return cutouts
