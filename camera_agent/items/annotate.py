"""Drawing items on a frame for people: boxes, item ids, bins and confidence, the trigger line, fps.

Kept apart from the pipeline so that ``--annotate out.mp4`` and a later HTTP live view draw alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from camera_agent.items.pipeline import TrackView
from sortline.belt import BeltFrame
from sortline.readable import confidence_text

COUNTED = (60, 220, 60)  # BGR: items that crossed the line
TRACKED = (0, 200, 255)  # items still on their way to it
LINE = (255, 80, 255)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the classifier said about an item, when known."""

    bin: str
    confidence: float


def draw_items(frame: np.ndarray, tracks: Sequence[TrackView], belt: BeltFrame | None = None,
               trigger: float | None = None, verdicts: Mapping[str, Verdict] | None = None,
               fps: float | None = None) -> np.ndarray:  # fmt: skip
    """A copy of ``frame`` with the ROI, trigger line, each track's box and label, and fps drawn."""
    out = frame.copy()
    scale = max(0.4, frame.shape[1] / 1600)
    if belt is not None:
        r = belt.roi
        cv2.rectangle(out, (r.x, r.y), (r.x + r.w - 1, r.y + r.h - 1), (200, 200, 200), 1)
        if trigger is not None:
            cv2.line(out, *trigger_segment(belt, trigger), LINE, 2)
    for track in tracks:
        x, y, w, h = track.bbox
        colour = COUNTED if track.item_id else TRACKED
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
        label = track.item_id or f"t{track.track_id}"
        verdict = (verdicts or {}).get(track.item_id or "")
        if verdict is not None:
            shown = confidence_text(verdict.confidence, min_digits=2)  # 0.999, never 1.00 below 1
            label += f" {verdict.bin} {shown}"
        _label(out, label, (x, max(0, y - 4)), colour, scale)
    if fps is not None:
        _label(out, f"{fps:.1f} fps", (8, frame.shape[0] - 10), (255, 255, 255), scale)
    return out


def trigger_segment(belt: BeltFrame, trigger: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """End points of the trigger line across the ROI, in frame pixels."""
    r = belt.roi
    share = 1.0 - trigger if belt.direction.reversed else trigger
    if belt.direction.vertical:
        y = round(r.y + share * r.h)
        return (r.x, y), (r.x + r.w - 1, y)
    x = round(r.x + share * r.w)
    return (x, r.y), (x, r.y + r.h - 1)


def _label(
    image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int], scale: float
) -> None:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    y = max(h + base, y)
    cv2.rectangle(image, (x, y - h - base), (x + w, y + base // 2), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
