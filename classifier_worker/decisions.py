"""From a frame and the cascade's answer to the decision message other tools consume.

A residual decision says why in figures a person can check: the threshold a low-confidence item
missed comes from the served model's manifest, next to the probability that missed it.
"""

from __future__ import annotations

import time

import numpy as np

from classifier_worker.frames import Frame
from sortline.cascade import CascadeDecision, CascadeThresholds, ResidualReason
from sortline.labels import MATERIALS
from sortline.messages import DecisionMessage, ns_to_iso
from sortline.readable import confidence_text, threshold_text


def build_decision(
    frame: Frame,
    decision: CascadeDecision,
    p_organic: float,
    material_probs: list[float],
    model_version: str,
    decided_at_ns: int | None,
    thresholds: CascadeThresholds,
    p_hazard: float | None = None,
) -> DecisionMessage:
    """The message for one decided frame; ``p_hazard`` only from a model with a hazard output."""
    decided_at_ns = decided_at_ns or time.time_ns()
    headers = frame.headers
    residual_threshold, residual_detail = residual_explained(decision, thresholds)
    return DecisionMessage(
        frame_id=frame.frame_id,
        line_id=headers.line_id,
        camera_id=headers.camera_id,
        seq=headers.seq,
        source=headers.source,
        item_id=headers.item_id,
        bbox=headers.bbox,
        belt_x=headers.belt_x,
        belt_span=headers.belt_span,
        views=len(headers.view_bytes) if headers.view_bytes else 1,
        eject_at=ns_to_iso(headers.eject_at_ns) if headers.eject_at_ns else None,
        eject_at_ns=headers.eject_at_ns,
        bin=decision.bin,
        confidence=round(decision.confidence, 6),
        p_organic=round(min(max(p_organic, 0.0), 1.0), 6),
        p_hazard=None if p_hazard is None else round(min(max(p_hazard, 0.0), 1.0), 6),
        material=decision.material,
        material_probs={name: round(p, 6) for name, p in zip(MATERIALS, material_probs, strict=True)},
        residual_reason=decision.residual_reason.value if decision.residual_reason else None,
        residual_threshold=residual_threshold,
        residual_detail=residual_detail,
        model_version=model_version,
        captured_at=ns_to_iso(headers.captured_at_ns),
        captured_at_ns=headers.captured_at_ns,
        decided_at=ns_to_iso(decided_at_ns),
        latency_ms=round((decided_at_ns - headers.captured_at_ns) / 1e6, 3),
        redelivered=frame.delivery.redelivered,
    )


def residual_explained(
    decision: CascadeDecision, thresholds: CascadeThresholds
) -> tuple[float | None, str | None]:
    """The threshold a residual item missed (low-confidence only) and why it is residual, in words."""
    if decision.residual_reason is ResidualReason.LOW_CONFIDENCE:
        threshold = thresholds.material_min_confidence
        shown = confidence_text(decision.confidence, threshold, min_digits=6)
        return threshold, f"top material {decision.material} {shown} < {threshold_text(threshold)}"
    if decision.residual_reason is ResidualReason.TRASH:
        return None, f"top material is trash ({confidence_text(decision.confidence, min_digits=6)})"
    return None, None


def hazard_of(p_hazard: np.ndarray | None, row: int) -> float | None:
    """Row ``row``'s hazard probability, or None for a model without a hazard output."""
    return None if p_hazard is None else float(p_hazard[row])
