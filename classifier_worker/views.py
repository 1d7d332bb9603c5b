"""An item's views: split from one message, decided together.

A camera in items mode sends one message per item with up to K views of it (the sharpest, whole
crops along its path), back to back in the body, their sizes in ``view_bytes``. The views go
through the model with the batch; their outputs are combined into one prediction per item before
the cascade's thresholds, so an item gets one decision however many views it has.

Two rules: ``mean`` averages probabilities; ``log-mean`` averages log-probabilities (material) and
log-odds (organic), a geometric mean that lets one confident view outvote two unsure ones.
``docs/belt.md`` has the measurement that chose the default.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np

from sortline.messages import DeadLetterReason, InvalidFrame
from sortline_runtime.model import Prediction

Combination = Literal["mean", "log-mean"]
_EPSILON = 1e-6


def split_views(body: bytes, view_bytes: Sequence[int] | None) -> list[bytes]:
    """The encoded views of a message (one, the whole body, when it names none)."""
    if not view_bytes:
        return [body]
    if sum(view_bytes) != len(body):
        raise InvalidFrame(
            DeadLetterReason.INVALID_HEADERS,
            f"view_bytes add up to {sum(view_bytes)} bytes, the body has {len(body)}",
        )
    offsets = np.cumsum([0, *view_bytes])
    return [body[start:end] for start, end in itertools.pairwise(offsets)]


def combine_views(prediction: Prediction, counts: Sequence[int], rule: Combination) -> Prediction:
    """One row per item from ``counts`` consecutive rows per item."""
    if all(count == 1 for count in counts):
        return prediction
    bounds = np.cumsum([0, *counts])
    organic, materials, hazards = [], [], []
    for start, end in itertools.pairwise(bounds):
        organic.append(_combine_binary(prediction.p_organic[start:end], rule))
        if prediction.p_hazard is not None:
            hazards.append(_combine_binary(prediction.p_hazard[start:end], rule))
        probs = prediction.material_probs[start:end]
        if rule == "mean":
            materials.append(probs.mean(axis=0))
        else:
            geometric = np.exp(np.log(np.clip(probs, _EPSILON, 1.0)).mean(axis=0))
            materials.append(geometric / geometric.sum())
    p_hazard = None if prediction.p_hazard is None else np.asarray(hazards, np.float32)
    return Prediction(np.asarray(organic, np.float32), np.asarray(materials, np.float32), p_hazard)


def _combine_binary(p: np.ndarray, rule: Combination) -> float:
    """One probability of a yes/no question (organic, hazard) from the views' ones."""
    return float(p.mean()) if rule == "mean" else _sigmoid(_logit(p).mean())


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), _EPSILON, 1 - _EPSILON)
    return np.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))
