"""Heads on frozen features, and their out-of-fold predictions for calibration.

Why out of fold: thresholds chosen on a calibration subset of ~60 images per material jump with one
or two images. With the backbone frozen, the heads train in a minute, so each training image can be
scored by heads that never saw it (k folds, each held out once), and the thresholds are chosen on
all of them: about ten times the images. The served heads are then trained on every image; the
out-of-fold heads saw (k-1)/k of the data, so their confidences are, if anything, a little lower.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from torch import nn

from trainer.data.dataset import split_hash
from trainer.fit import heads
from trainer.fit.config import HeadConfig

log = logging.getLogger(__name__)

FOLD_SALT = "fold/"


@dataclass(frozen=True)
class Heads:
    """The trained heads; ``hazard`` is None when the data held no hazard-labelled images."""

    organic: nn.Module
    material: nn.Module
    hazard: nn.Module | None


@dataclass(frozen=True)
class Outputs:
    """Head outputs per image, each the mean over its plain and mirrored view (as served)."""

    p_organic: np.ndarray
    material_probs: np.ndarray
    p_hazard: np.ndarray | None


def train_heads(features: np.ndarray, labels: list[str], cfg: HeadConfig) -> Heads:
    """The three heads on [N, 2, D] features (the hazard head only where the data has hazards)."""
    hazard = heads.train_hazard_head(features, labels, cfg) if heads.has_hazard_labels(labels) else None
    return Heads(
        heads.train_organic_head(features, labels, cfg),
        heads.train_material_head(features, labels, cfg),
        hazard,
    )


def predict(trained: Heads, features: np.ndarray) -> Outputs:
    """Mirror-averaged outputs of [N, 2, D] features: what the served graph computes."""
    views = [heads.head_outputs(trained.organic, trained.material, features[:, v]) for v in (0, 1)]
    p_hazard = None
    if trained.hazard is not None:
        hazard = trained.hazard
        p_hazard = np.mean([heads.sigmoid_output(hazard, features[:, v]) for v in (0, 1)], axis=0)
    return Outputs(
        np.mean([p for p, _ in views], axis=0),
        np.mean([m for _, m in views], axis=0),
        p_hazard,
    )


def fold_of(keys: list[str], folds: int) -> np.ndarray:
    """Each image's fold, from a salted hash of its key: the same on every machine and run."""
    return np.array([int(split_hash(key, FOLD_SALT)[:8], 16) % folds for key in keys])


def out_of_fold(
    features: np.ndarray, labels: list[str], keys: list[str], cfg: HeadConfig, folds: int
) -> Outputs:
    """Every image scored by heads trained on the other folds."""
    assignment = fold_of(keys, folds)
    n = len(labels)
    p_organic, material = np.zeros(n, np.float32), np.zeros((n, 6), np.float32)
    p_hazard = np.zeros(n, np.float32) if heads.has_hazard_labels(labels) else None
    for fold in range(folds):
        held, rest = np.flatnonzero(assignment == fold), np.flatnonzero(assignment != fold)
        trained = train_heads(features[rest], [labels[i] for i in rest], cfg)
        scored = predict(trained, features[held])
        p_organic[held], material[held] = scored.p_organic, scored.material_probs
        if p_hazard is not None and scored.p_hazard is not None:
            p_hazard[held] = scored.p_hazard
        log.info("fold %d of %d: %d images scored out of fold", fold + 1, folds, len(held))
    return Outputs(p_organic, material, p_hazard)
