"""Run a served model directory over labelled images, the way the worker does.

Images are read with the serving runtime's ``decode_frame`` / ``resize_for_model`` /
``to_model_input`` and scored by its ``CascadeModel``, the code the worker serves with, so
evaluation measures the served artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from sortline.cascade import CascadeDecision
from sortline_runtime.imaging import to_model_input
from sortline_runtime.model import CascadeModel, Prediction
from trainer.data.dataset import Sample
from trainer.data.images import load_rgb_or_none

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredSet:
    """Model outputs and cascade decisions for the images that decoded."""

    samples: list[Sample]
    p_organic: np.ndarray
    material_probs: np.ndarray
    decisions: list[CascadeDecision]
    skipped: list[Sample]
    p_hazard: np.ndarray | None = None  # None: the model has no hazard output


def score(
    model: CascadeModel, samples: Sequence[Sample], *, batch_size: int = 32, workers: int = 2
) -> ScoredSet:
    """Predict and decide every sample in batches of ``batch_size``; undecodable files are skipped."""
    spec = model.manifest.input
    kept: list[Sample] = []
    skipped: list[Sample] = []
    p_parts: list[np.ndarray] = []
    m_parts: list[np.ndarray] = []
    h_parts: list[np.ndarray] = []
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=len(samples), desc="evaluate", unit="img") as bar,
    ):
        for start in range(0, len(samples), batch_size):
            chunk = list(samples[start : start + batch_size])
            images = list(pool.map(lambda s: load_rgb_or_none(s.path, spec), chunk))
            good = [(s, img) for s, img in zip(chunk, images, strict=True) if img is not None]
            skipped.extend(s for s, img in zip(chunk, images, strict=True) if img is None)
            if good:
                prediction = model.predict(to_model_input([img for _, img in good], spec))
                kept.extend(s for s, _ in good)
                p_parts.append(prediction.p_organic)
                m_parts.append(prediction.material_probs)
                if prediction.p_hazard is not None:
                    h_parts.append(prediction.p_hazard)
            bar.update(len(chunk))
    p_organic = np.concatenate(p_parts) if p_parts else np.zeros(0, dtype=np.float32)
    material_probs = np.concatenate(m_parts) if m_parts else np.zeros((0, 6), dtype=np.float32)
    p_hazard = (np.concatenate(h_parts) if h_parts else np.zeros(0, np.float32)) if model.has_hazard else None
    decisions = model.decide(Prediction(p_organic, material_probs, p_hazard))
    return ScoredSet(kept, p_organic, material_probs, decisions, skipped, p_hazard)
