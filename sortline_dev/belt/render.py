"""Frames of the belt: moving texture, shadows, items, lighting drift, motion blur, sensor noise.

Drawn in the canonical orientation (rows along the belt, items moving to larger rows), then turned
to the clip's direction by :func:`orient` (a flip and/or a transpose, so nothing is resampled).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sortline.belt import Direction
from sortline_dev.belt.scene import BeltItem, Sprite
from sortline_dev.belt.settings import BeltClipSettings
from sortline_dev.belt.texture import belt_texture, rails


class BeltRenderer:
    """Holds the belt loop, the rails and the light's drift; renders one canonical frame at a time."""

    def __init__(self, settings: BeltClipSettings, rng: np.random.Generator, length: int, across: int,
                 belt: tuple[int, int]) -> None:  # fmt: skip
        self.settings = settings
        self.length, self.across, self.belt = length, across, belt
        self.texture = belt_texture(rng, 2 * length, belt[1] - belt[0])
        self.canvas = np.zeros((length, across, 3), np.float32)
        self.canvas[:, : belt[0]] = rails(rng, length, belt[0])[:, ::-1]
        self.canvas[:, belt[1] :] = rails(rng, length, across - belt[1])
        self.rows = np.arange(length)
        self.light = rng.uniform(0, 2 * math.pi, 3), rng.uniform(6.0, 20.0, 3)  # phases, periods (s)
        self.shadow_offset = rng.uniform(0.2, 0.6, 2) * length / 60
        self.rng = rng

    def render(self, frame: int, items: list[BeltItem], belt_offset: float) -> np.ndarray:
        """The canonical frame as uint8 BGR."""
        image = self.canvas.copy()
        index = (self.rows - round(belt_offset)) % self.texture.shape[0]
        image[:, self.belt[0] : self.belt[1]] = self.texture[index]
        sprites = [item.sprite(frame) for item in items]
        if self.settings.shadows:
            self._cast_shadows(image, sprites)
        for item, sprite in zip(items, sprites, strict=True):
            _composite(image, sprite, item.gain)
        image *= self._lighting(frame)
        blur = round(self.settings.exposure * self.settings.belt_speed * self.length / self.settings.fps)
        if blur >= 2:
            image = cv2.blur(image, (1, blur))
        if self.settings.noise:
            noise = np.empty_like(image)
            cv2.randn(noise, 0.0, self.settings.noise)
            image += noise
        return np.clip(image, 0, 255).astype(np.uint8)

    def _cast_shadows(self, image: np.ndarray, sprites: list[Sprite]) -> None:
        shade = np.zeros(image.shape[:2], np.float32)
        dr, dc = (round(v) for v in self.shadow_offset)
        for sprite in sprites:
            soft = cv2.GaussianBlur(sprite.alpha, (0, 0), 1.0 + self.length / 200)
            _paste_max(shade, soft, sprite.row + dr, sprite.col + dc)
        image *= (1.0 - 0.45 * shade)[..., None]

    def _lighting(self, frame: int) -> np.ndarray:
        """Slow drift of the light's brightness and of its gradients along and across the belt."""
        t = frame / self.settings.fps
        phases, periods = self.light
        wave = np.sin(2 * math.pi * t / periods + phases) * self.settings.light_drift
        along = 1 + wave[1] * np.linspace(-0.5, 0.5, self.length, dtype=np.float32)
        across = 1 + wave[2] * np.linspace(-0.5, 0.5, self.across, dtype=np.float32)
        flicker = 1 + float(self.rng.normal(0, 0.004))
        return ((1 + wave[0]) * flicker * np.outer(along, across))[..., None].astype(np.float32)


def _window(shape: tuple[int, ...], size: tuple[int, int], row: int, col: int):
    """Slices of the canvas and of a patch at (row, col) that overlap, or None when they do not."""
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + size[0], shape[0]), min(col + size[1], shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    return (slice(r0, r1), slice(c0, c1)), (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))


def _composite(image: np.ndarray, sprite: Sprite, gain: float) -> None:
    window = _window(image.shape, sprite.alpha.shape, sprite.row, sprite.col)
    if window is None:
        return
    target, source = window
    alpha = sprite.alpha[source][..., None]
    image[target] = image[target] * (1 - alpha) + sprite.bgr[source].astype(np.float32) * (gain * alpha)


def _paste_max(canvas: np.ndarray, patch: np.ndarray, row: int, col: int) -> None:
    window = _window(canvas.shape, patch.shape, row, col)
    if window is not None:
        target, source = window
        np.maximum(canvas[target], patch[source], out=canvas[target])


def orient(image: np.ndarray, direction: Direction) -> np.ndarray:
    """Turn a canonical image (items moving down its rows) to the clip's direction."""
    if direction is Direction.TOP_TO_BOTTOM:
        return image
    if direction is Direction.BOTTOM_TO_TOP:
        return np.ascontiguousarray(image[::-1])
    turned = image.transpose(1, 0, 2) if image.ndim == 3 else image.T
    return np.ascontiguousarray(turned if direction is Direction.LEFT_TO_RIGHT else turned[:, ::-1])


def orient_box(
    box: tuple[int, int, int, int], direction: Direction, length: int
) -> tuple[int, int, int, int]:
    """A canonical (row, col, rows, cols) box as an output-frame (x, y, w, h) box."""
    row, col, rows, cols = box
    if direction is Direction.TOP_TO_BOTTOM:
        return col, row, cols, rows
    if direction is Direction.BOTTOM_TO_TOP:
        return col, length - row - rows, cols, rows
    if direction is Direction.LEFT_TO_RIGHT:
        return row, col, rows, cols
    return length - row - rows, col, rows, cols
