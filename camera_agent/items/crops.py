"""The best views of an item along its path: sharp, whole, not cut by the frame edge, not crowded.

Every observation of a track is scored; the few best are kept as full-resolution crops. A view cut
by the frame's edge is kept only while no whole view exists, and kept views are at least
``MIN_GAP_FRAMES`` apart so that K crops are K different looks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_GAP_FRAMES = 2
EDGE_PX = 2  # a box this close to the frame edge is cut by it


@dataclass(frozen=True, slots=True, eq=False)
class ItemCrop:
    """One view of an item: BGR pixels from the full frame, where and when, and why it was chosen."""

    image: np.ndarray
    seq: int
    bbox: tuple[int, int, int, int]  # x, y, w, h of the item in frame pixels (the crop adds a margin)
    sharpness: float  # variance of the Laplacian at detection scale
    whole: bool  # not cut by the frame's edge
    score: float


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: high for a crisp view, low for a blurred one."""
    return float(cv2.Laplacian(gray, cv2.CV_32F).var()) if gray.size else 0.0


def is_whole(bbox: tuple[int, int, int, int], width: int, height: int) -> bool:
    x, y, w, h = bbox
    return x >= EDGE_PX and y >= EDGE_PX and x + w <= width - EDGE_PX and y + h <= height - EDGE_PX


def view_score(sharp: float, area: float, crowded: bool) -> float:
    """Larger and sharper is better; a view that overlaps another item's box counts for less."""
    return float(np.log1p(sharp) * np.sqrt(area) * (0.5 if crowded else 1.0))


def crop_with_margin(frame: np.ndarray, bbox: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """A copy of the box grown by ``margin`` of its size on each side, clipped to the frame."""
    x, y, w, h = bbox
    dx, dy = round(w * margin), round(h * margin)
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(frame.shape[1], x + w + dx), min(frame.shape[0], y + h + dy)
    return frame[y0:y1, x0:x1].copy()


class CropSelector:
    """Keeps the ``k`` best views of one item."""

    def __init__(self, k: int, margin: float) -> None:
        self.k = k
        self.margin = margin
        self.views: list[ItemCrop] = []

    def offer(self, frame: np.ndarray, seq: int, bbox: tuple[int, int, int, int], sharp: float,
              crowded: bool) -> None:  # fmt: skip
        """Consider this frame's view; the pixels are copied only if it is kept."""
        whole = is_whole(bbox, frame.shape[1], frame.shape[0])
        score = view_score(sharp, bbox[2] * bbox[3], crowded)
        if self.views and not whole and any(v.whole for v in self.views):
            return
        rank = (whole, score)
        near = [v for v in self.views if abs(v.seq - seq) < MIN_GAP_FRAMES]
        if near and all((v.whole, v.score) >= rank for v in near):
            return
        if len(self.views) - len(near) >= self.k and all((v.whole, v.score) >= rank for v in self.views):
            return
        view = ItemCrop(crop_with_margin(frame, bbox, self.margin), seq, bbox, sharp, whole, score)
        kept = [v for v in self.views if abs(v.seq - seq) >= MIN_GAP_FRAMES] + [view]
        if whole:
            kept = [v for v in kept if v.whole]
        self.views = sorted(kept, key=lambda v: (v.whole, v.score), reverse=True)[: self.k]

    def best(self) -> tuple[ItemCrop, ...]:
        """The kept views, best first."""
        return tuple(self.views)
