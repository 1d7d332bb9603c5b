"""Items riding the belt: arrivals, sizes, rotations, slip, touching pairs, and where each one is.

Positions are in canonical pixels (rows along the belt, columns across it). Items that are not
meant to touch are placed so that their bounding circles never come closer than a small gap over
their whole way through the view (their paths are straight lines, so the closest approach is
computed exactly); members of a touching pair share speed and do not spin, so they stay in contact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from sortline_dev.belt.cutouts import Cutout
from sortline_dev.belt.settings import BeltClipSettings

SEPARATION_PX = 6.0  # gap kept between the bounding circles of items that are not a touching pair


@dataclass(frozen=True, slots=True)
class Sprite:
    """An item as drawn in one frame: colours, alpha, the blurred shadow alpha, top-left corner."""

    bgr: np.ndarray
    alpha: np.ndarray  # float32 0..1
    row: int
    col: int


@dataclass(slots=True)
class BeltItem:
    item_id: int
    cutout: Cutout
    scale: float
    angle: float  # degrees at birth
    spin: float  # degrees per frame
    along: float  # centre row at birth
    across: float  # centre column at birth
    speed: float  # rows per frame
    drift: float  # columns per frame
    born: int
    touching: bool = False
    gain: float = 1.0  # brightness of this photo relative to the others
    _still: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def radius(self) -> float:
        h, w = self.cutout.alpha.shape
        return 0.5 * math.hypot(h, w) * self.scale

    def centre(self, frame: int) -> tuple[float, float]:
        age = frame - self.born
        return self.along + self.speed * age, self.across + self.drift * age

    def sprite(self, frame: int) -> Sprite:
        """The item rotated and scaled for this frame (cached when it does not spin)."""
        if self.spin == 0.0 and self._still is not None:
            bgr, alpha = self._still
        else:
            bgr, alpha = transform_cutout(
                self.cutout, self.scale, self.angle + self.spin * (frame - self.born)
            )
            if self.spin == 0.0:
                self._still = (bgr, alpha)
        row, col = self.centre(frame)
        return Sprite(bgr, alpha, round(row - alpha.shape[0] / 2), round(col - alpha.shape[1] / 2))


def transform_cutout(cutout: Cutout, scale: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate and scale a cut-out into its own tight canvas; alpha as float32 0..1."""
    h, w = cutout.alpha.shape
    side = math.ceil(math.hypot(h, w) * scale) + 2
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
    bgr = cv2.warpAffine(cutout.bgr, matrix, (side, side), flags=cv2.INTER_AREA, borderValue=0)
    alpha = cv2.warpAffine(cutout.alpha, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
    return bgr, alpha.astype(np.float32) / 255.0


def closest_approach(a: BeltItem, b: BeltItem, start: int, frames: int) -> float:
    """Smallest distance between the two centres from frame ``start`` over ``frames`` frames."""
    (ra, ca), (rb, cb) = a.centre(start), b.centre(start)
    d = np.array([ra - rb, ca - cb])
    v = np.array([a.speed - b.speed, a.drift - b.drift])
    speed2 = float(v @ v)
    t = 0.0 if speed2 == 0 else float(np.clip(-(d @ v) / speed2, 0, frames))
    return float(np.linalg.norm(d + v * t))


class Scene:
    """Spawns items at random (Poisson arrivals) and keeps those still in view."""

    def __init__(self, settings: BeltClipSettings, rng: np.random.Generator, cutouts: list[Cutout],
                 length: int, belt: tuple[int, int]) -> None:  # fmt: skip
        self.settings = settings
        self.rng = rng
        self.cutouts = cutouts
        self.length = length
        self.belt = belt
        self.speed = settings.belt_speed * length / settings.fps
        self.items: list[BeltItem] = []
        self.pending = 0
        self._next_id = 1

    def step(self, frame: int) -> list[BeltItem]:
        """Items in view (or entering) at ``frame``, after this frame's arrivals."""
        self.items = [i for i in self.items if i.centre(frame)[0] - i.radius < self.length]
        self.pending = min(
            self.pending + int(self.rng.poisson(self.settings.items_per_second / self.settings.fps)), 4
        )
        while self.pending and self._arrive(frame):
            self.pending -= 1
        return self.items

    def _arrive(self, frame: int) -> bool:
        """Try to place one arrival (a single item or a touching pair); False if there is no room now."""
        if self.rng.random() < self.settings.touching:
            new = self._touching_pair(frame)
        else:
            new = [self._new_item(frame, jitter=True)]
        horizon = math.ceil((self.length + 4 * max(i.radius for i in new)) / (0.5 * self.speed))
        for item in new:
            for other in self.items:
                gap = item.radius + other.radius + SEPARATION_PX
                if closest_approach(item, other, frame, horizon) < gap:
                    return False
        self.items.extend(new)
        self._next_id += len(new)
        return True

    def _new_item(self, frame: int, jitter: bool, offset: int = 0) -> BeltItem:
        s, rng = self.settings, self.rng
        cutout = self.cutouts[int(rng.integers(len(self.cutouts)))]
        width = self.belt[1] - self.belt[0]
        scale = float(rng.uniform(s.min_size, s.max_size)) * width / max(cutout.alpha.shape)
        item = BeltItem(
            item_id=self._next_id + offset, cutout=cutout, scale=scale, angle=float(rng.uniform(0, 360)),
            spin=float(rng.uniform(-s.max_spin, s.max_spin)) / s.fps if jitter else 0.0,
            along=0.0, across=0.0, born=frame,
            speed=self.speed * (1 + float(rng.uniform(-s.speed_jitter, s.speed_jitter)) * jitter),
            drift=float(rng.normal(0, 0.0015)) * width / s.fps * jitter, gain=float(rng.uniform(0.8, 1.05)),
        )  # fmt: skip
        margin = 0.8 * item.radius
        item.across = float(
            rng.uniform(self.belt[0] + margin, max(self.belt[0] + margin + 1, self.belt[1] - margin))
        )
        item.along = -item.radius
        return item

    def _touching_pair(self, frame: int) -> list[BeltItem]:
        """Two items in contact, overlapping a little (as items heaped on a belt do)."""
        first, second = self._new_item(frame, jitter=False), self._new_item(frame, jitter=False, offset=1)
        direction = self.rng.uniform(0, 2 * math.pi)
        unit = np.array([math.sin(direction), math.cos(direction)])  # (rows, columns)
        distance = contact_distance(
            first.sprite(frame), second.sprite(frame), unit, self.rng.uniform(0.005, 0.04)
        )
        second.along, second.across = first.along + unit[0] * distance, first.across + unit[1] * distance
        lo, hi = self.belt[0] + 0.6 * first.radius, self.belt[1] - 0.6 * first.radius
        shift = min(0.0, hi - max(first.across, second.across)) + max(
            0.0, lo - min(first.across, second.across)
        )
        for item in (first, second):
            item.across += shift
            item.touching = True
        lead = max(first.along + first.radius, second.along + second.radius)
        first.along, second.along = first.along - lead, second.along - lead
        return [first, second]


def contact_distance(a: Sprite, b: Sprite, unit: np.ndarray, overlap_share: float) -> float:
    """Centre distance along ``unit`` at which the two masks overlap by ``overlap_share`` of the smaller."""
    target = overlap_share * min(a.alpha.sum(), b.alpha.sum())
    size = 2 * (max(a.alpha.shape) + max(b.alpha.shape))
    canvas_a = np.zeros((size, size), np.float32)
    ca = size // 2
    _paste(canvas_a, a.alpha, ca, ca)
    near, far = 0.0, 0.5 * (max(a.alpha.shape) + max(b.alpha.shape))
    for _ in range(12):  # the overlap grows as the centres close in: bisect on the distance
        middle = 0.5 * (near + far)
        canvas_b = np.zeros_like(canvas_a)
        _paste(canvas_b, b.alpha, round(ca + unit[0] * middle), round(ca + unit[1] * middle))
        if float((np.minimum(canvas_a, canvas_b) > 0.5).sum()) >= target:
            near = middle
        else:
            far = middle
    return near


def _paste(canvas: np.ndarray, alpha: np.ndarray, row: int, col: int) -> None:
    h, w = alpha.shape
    canvas[row - h // 2 : row - h // 2 + h, col - w // 2 : col - w // 2 + w] = alpha
