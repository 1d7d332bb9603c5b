"""Boxes to tracks, with a maintained multi-object tracker (Roboflow's ``trackers``).

The tracker is behind :class:`BoxTracker` so that the pipeline does not depend on one library's
types; ``docs/belt.md`` has the measurement that chose ByteTrack (and what the others did).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class TrackedBox:
    track_id: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 at detection scale


class BoxTracker(Protocol):
    def update(self, boxes: np.ndarray, timestamp_s: float) -> list[TrackedBox]:
        """Boxes (N x 4, x0 y0 x1 y1) of one frame to the confirmed tracks they belong to."""
        ...


class ByteTrackBoxes:
    """ByteTrack from ``trackers``: Kalman-predicted boxes matched by IoU, lost tracks kept a while.

    Timestamps (not frame counts) drive the prediction, so frames skipped by a busy camera box
    do not make a track's box lag behind its item.
    """

    def __init__(self, fps: float, lost_frames: int, kind: str = "bytetrack") -> None:
        import supervision as sv  # the detections type the tracker speaks
        import trackers

        self._sv = sv
        common = {"lost_track_buffer": lost_frames, "frame_rate": fps, "minimum_consecutive_frames": 2}
        if kind == "bytetrack":
            self._tracker = trackers.ByteTrackTracker(**common, minimum_iou_threshold=0.1)
        elif kind == "sort":
            self._tracker = trackers.SORTTracker(**common, minimum_iou_threshold=0.1)
        elif kind == "ocsort":
            self._tracker = trackers.OCSORTTracker(**common, minimum_iou_threshold=0.1)
        else:
            raise ValueError(f"unknown tracker {kind!r}: bytetrack, sort or ocsort")

    def update(self, boxes: np.ndarray, timestamp_s: float) -> list[TrackedBox]:
        detections = self._sv.Detections(xyxy=boxes.astype(np.float32).reshape(-1, 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            tracked = self._tracker.update(detections, timestamp=timestamp_s)
        return [
            TrackedBox(int(track_id), tuple(float(v) for v in box))
            for box, track_id in zip(tracked.xyxy, tracked.tracker_id, strict=True)
            if track_id >= 0
        ]
