"""Foreground mask to item boxes: cleaned blobs, size limits, touching items split apart.

Touching items form one blob with a waist. The distance transform of such a blob has one peak
inside each item and a low saddle between them; peaks joined by a high ridge belong to one item
(an elongated or bent one). Blobs with two or more separated peaks are cut by the watershed of the
distance transform, seeded at the peaks (the classic OpenCV recipe), so each item gets its own box.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NECK_RATIO = 0.55  # a saddle below this share of the lower peak separates two items
MIN_PEAK_SHARE = 0.3  # peaks lower than this share of the blob's highest are not items of their own
SOLID_ENOUGH = 0.92  # blobs this close to their convex hull are a single item: no split attempted


@dataclass(frozen=True, slots=True)
class Blob:
    """An item candidate at detection scale: box (x0, y0, x1, y1) and its pixel area."""

    box: tuple[int, int, int, int]
    area: int


def clean(mask: np.ndarray, item_px: int) -> np.ndarray:
    """Remove specks, join fragments of one item, fill holes (items are solid from above)."""
    small = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, small)
    size = max(3, item_px // 6) | 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 255, cv2.FILLED)
    return filled


def find_blobs(mask: np.ndarray, min_area: int, max_area: int, split: bool) -> list[Blob]:
    """Blobs of a cleaned mask within the size limits, touching ones split."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    blobs: list[Blob] = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area or area > max_area:
            continue
        component = (labels[y : y + h, x : x + w] == label).astype(np.uint8)
        parts = split_touching(component, min_area) if split else []
        if len(parts) < 2:
            blobs.append(Blob((x, y, x + w, y + h), area))
            continue
        blobs.extend(Blob((x + p.box[0], y + p.box[1], x + p.box[2], y + p.box[3]), p.area) for p in parts)
    return blobs


def split_touching(component: np.ndarray, min_area: int) -> list[Blob]:
    """Parts of one blob (uint8 0/1) if it is several touching items, else an empty list."""
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull_area = cv2.contourArea(cv2.convexHull(max(contours, key=cv2.contourArea)))
    if hull_area == 0 or component.sum() / hull_area > SOLID_ENOUGH:
        return []
    padded = cv2.copyMakeBorder(component, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)
    seeds = separated_peaks(distance)
    if len(seeds) < 2:
        return []
    markers = np.zeros(distance.shape, np.int32)
    for index, seed in enumerate(seeds, start=1):
        markers[seed] = index
    markers[padded == 0] = len(seeds) + 1
    relief = cv2.cvtColor(
        cv2.normalize(-distance, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U), cv2.COLOR_GRAY2BGR
    )
    cv2.watershed(relief, markers)
    parts = []
    for index in range(1, len(seeds) + 1):
        part = (markers[1:-1, 1:-1] == index).astype(np.uint8)
        area = int(part.sum())
        if area < min_area:
            return []  # a sliver is not an item: keep the blob whole
        x, y, w, h = cv2.boundingRect(part)
        parts.append(Blob((x, y, x + w, y + h), area))
    return parts


def separated_peaks(distance: np.ndarray) -> list[np.ndarray]:
    """Seed masks, one per group of distance peaks that no high ridge joins."""
    top = float(distance.max())
    size = max(3, int(top) | 1)
    local_max = distance >= cv2.dilate(distance, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    count, labels, _, centres = cv2.connectedComponentsWithStats(
        (local_max & (distance > MIN_PEAK_SHARE * top)).astype(np.uint8), connectivity=8
    )
    peaks = [(centres[i], float(distance[labels == i].max())) for i in range(1, count)]
    groups = list(range(len(peaks)))
    for i in range(len(peaks)):
        for j in range(i + 1, len(peaks)):
            if _ridge(distance, peaks[i][0], peaks[j][0]) >= NECK_RATIO * min(peaks[i][1], peaks[j][1]):
                _join(groups, i, j)
    seeds = []
    for root in sorted(set(_find(groups, i) for i in range(len(peaks)))):
        seed = np.zeros(distance.shape, bool)
        for i in range(len(peaks)):
            if _find(groups, i) == root:
                seed |= labels == i + 1
        seeds.append(seed)
    return seeds


def _ridge(distance: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Lowest distance value on the straight path between two peaks (the saddle's height)."""
    steps = max(2, int(np.hypot(*(b - a))) + 1)
    xs = np.linspace(a[0], b[0], steps).round().astype(int)
    ys = np.linspace(a[1], b[1], steps).round().astype(int)
    return float(distance[ys, xs].min())


def _find(groups: list[int], i: int) -> int:
    while groups[i] != i:
        groups[i] = groups[groups[i]]
        i = groups[i]
    return i


def _join(groups: list[int], i: int, j: int) -> None:
    groups[_find(groups, i)] = _find(groups, j)
