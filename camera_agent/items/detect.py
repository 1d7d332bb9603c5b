"""Foreground mask to item boxes: cleaned blobs, size limits, touching items split apart.

Touching items form one blob with a waist. The distance transform of such a blob has one peak
inside each item and a low saddle between them; peaks joined by a high ridge belong to one item
(an elongated or bent one). Blobs with two or more separated peaks are divided among the peaks
(each pixel to the nearest, less that peak's radius: the distance transform's watershed for round
items), so each item gets its own box. Where the distance transform sees one centre, two
notches in the outline with a short cut between them (convexity defects) may still separate two
items pressed together.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DYNAMIC_SHARE = 0.5  # a centre must rise this share of its own height above the waist to a higher one
MIN_DYNAMIC_PX = 2.0
NOTCH_DEPTH = 0.18  # a notch at least this deep (share of the blob's square-root area) may be a contact
MAX_CUT_SHARE = 0.9  # a cut longer than this share of the blob's square-root area is not a contact
PART_SOLIDITY = 0.85  # each part of a cut blob must be this convex
MIN_PART_AREAS = 3.0  # each part of a split blob is at least this many smallest items (no specks)
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
        parts = split_touching(component, round(MIN_PART_AREAS * min_area)) if split else []
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
        return cut_at_notches(component, min_area)
    owner = nearest_seed(distance, seeds)
    parts = []
    for index in range(1, len(seeds) + 1):
        part = ((owner[1:-1, 1:-1] == index) & (component > 0)).astype(np.uint8)
        area = int(part.sum())
        if area < min_area:
            return []  # a sliver is not an item: keep the blob whole
        x, y, w, h = cv2.boundingRect(part)
        parts.append(Blob((x, y, x + w, y + h), area))
    return parts


def nearest_seed(distance: np.ndarray, seeds: list[np.ndarray]) -> np.ndarray:
    """Label (1..n) of the seed each pixel belongs to: the nearest, less that seed's item radius.

    For roughly round items this is the watershed of the distance transform (the boundary runs
    through the waist) without its plateau artefacts: OpenCV's watershed floods by colour
    gradients, which a distance map barely has.
    """
    costs = []
    for seed in seeds:
        away = cv2.distanceTransform(np.where(seed, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
        costs.append(away - float(distance[seed].max()))
    return np.argmin(np.stack(costs), axis=0) + 1


def cut_at_notches(component: np.ndarray, min_area: int) -> list[Blob]:
    """Two convex items pressed together meet in two notches: cut the blob between them.

    Used where the distance transform finds one centre (items as wide as the contact between
    them). The cut is kept only if it is short next to the notches' depth and both parts are
    nearly convex, so one concave item (a crumpled bag) stays whole.
    """
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    if len(contour) < 8:
        return []
    defects = cv2.convexityDefects(contour, cv2.convexHull(contour, returnPoints=False))
    if defects is None:
        return []
    size = np.sqrt(float(component.sum()))
    notches = [
        tuple(contour[f][0]) for _, _, f, d in defects.reshape(-1, 4) if d / 256.0 >= NOTCH_DEPTH * size
    ]
    best: list[Blob] = []
    best_cost = np.inf
    for i in range(len(notches)):
        for j in range(i + 1, len(notches)):
            cut = float(np.hypot(notches[i][0] - notches[j][0], notches[i][1] - notches[j][1]))
            if cut < best_cost and cut <= MAX_CUT_SHARE * size:
                parts = _cut(component, notches[i], notches[j], min_area)
                if parts:
                    best, best_cost = parts, cut
    return best


def _cut(component: np.ndarray, a: tuple[int, int], b: tuple[int, int], min_area: int) -> list[Blob]:
    """The two parts left by cutting along a-b, if both are large and nearly convex."""
    cut = component.copy()
    cv2.line(cut, a, b, 0, 2)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cut, connectivity=4)
    big = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    if len(big) != 2:
        return []
    parts = []
    for i in big:
        part = (labels == i).astype(np.uint8)
        contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hull = cv2.contourArea(cv2.convexHull(contours[0]))
        if hull == 0 or part.sum() / hull < PART_SOLIDITY:
            return []
        x, y, w, h = cv2.boundingRect(part)
        parts.append(Blob((x, y, x + w, y + h), int(part.sum())))
    return parts


def separated_peaks(distance: np.ndarray) -> list[np.ndarray]:
    """Seed masks: the distance transform's maxima that rise well above the waist to any higher one.

    A maximum's dynamic is how far one must descend from it to reach a higher one; touching items
    have a low saddle (a waist) between their centres, one crumpled item only shallow dips. A
    maximum is a centre of its own when its dynamic is at least ``DYNAMIC_SHARE`` of its own
    height (its item's radius), so a small item beside a large one counts as much as two equal ones.
    """
    low = distance - reconstruct(distance - MIN_DYNAMIC_PX, distance)
    count, labels = cv2.connectedComponents((low >= MIN_DYNAMIC_PX - 1e-3).astype(np.uint8), connectivity=8)
    seeds = []
    for i in range(1, count):
        peak = labels == i
        h = max(MIN_DYNAMIC_PX, DYNAMIC_SHARE * float(distance[peak].max()))
        domes = distance - reconstruct(distance - h, distance)
        if float(domes[peak].max()) >= h - 1e-3:
            seeds.append(peak)
    return seeds


def reconstruct(marker: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey-level morphological reconstruction by dilation of ``marker`` under ``mask``."""
    kernel = np.ones((3, 3), np.uint8)
    marker = np.minimum(marker, mask)
    while True:
        grown = np.minimum(cv2.dilate(marker, kernel), mask)
        if np.array_equal(grown, marker):
            return grown
        marker = grown
