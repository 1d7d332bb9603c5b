"""The three deterministic parts of the labelled data: training, calibration and validation.

The validation split (``dataset.split``) is never trained or calibrated on: it only gives the
reported figures. The calibration subset is carved from the training side with an independent
(salted) hash; it chooses the best epoch and the cascade thresholds. The rest trains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sortline.manifest import ModelManifest
from trainer.data import dataset

log = logging.getLogger(__name__)

CALIBRATION_SALT = "calibration/"
#: Validation share per <dataset-folder>/<label> group: training, evaluation and the demo sample agree.
DEFAULT_VAL_FRACTION = 0.15
#: Share of the training side held out for model selection and thresholds.
DEFAULT_CALIB_FRACTION = 0.1


@dataclass(frozen=True)
class Splits:
    """The three parts of the data."""

    fit: list[dataset.Sample]
    calib: list[dataset.Sample]
    val: list[dataset.Sample]


def make_splits(data: list[Path], val_fraction: float, calib_fraction: float) -> Splits:
    """Validation as before; calibration carved from the training side with a salted hash."""
    train, val = dataset.split(dataset.scan(data), val_fraction)
    fit, calib = dataset.split(train, calib_fraction, salt=CALIBRATION_SALT)
    log.info("%d fit, %d calibration, %d validation images", len(fit), len(calib), len(val))
    return Splits(fit, calib, val)


def recorded_fraction(manifest: ModelManifest, name: str, default: float) -> float:
    """A split fraction the manifest's training record holds (older models may lack it)."""
    value = getattr(manifest.training, name, None)
    return default if value is None else float(value)
