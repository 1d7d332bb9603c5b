"""A model of the empty belt, learnt only where no item is, and the foreground it leaves.

Each pixel holds a running mean colour and variance of the belt (a running Gaussian average, as in
Wren et al.'s Pfinder), started from the per-pixel median of the first frames so items already on
the belt do not end up in it. A pixel is foreground when its colour is both several standard
deviations and a minimum number of grey levels away from the mean. The model is then updated
through a mask (``cv2.accumulateWeighted``): fully where no item is, far more slowly under items,
so a passing item never bleeds into the belt but a stopped one, or a ghost left by the start-up
median, fades out in time. Slow lighting drift is followed in two ways: a global gain measured each
frame on background pixels, and the running update itself. Shadows (darker, same chromaticity) are
not foreground.
"""

from __future__ import annotations

import cv2
import numpy as np

GHOST_SLOWDOWN = 10.0  # under items the model learns this many times more slowly
SHADOW_DARKEST, SHADOW_LIGHTEST = 0.35, 0.92  # a shadow keeps this share of the belt's brightness
GAIN_SAMPLE_STEP = 6  # the lighting gain is measured on every 6th pixel of every 6th row


class BeltBackground:
    """Per-pixel belt model at detection scale; ``foreground`` then ``learn`` once per frame."""

    def __init__(
        self, warmup_frames: int, learning_rate: float, threshold: float, min_contrast: float
    ) -> None:
        self.warmup_frames = warmup_frames
        self.learning_rate = learning_rate
        self.threshold = threshold
        self.min_contrast = min_contrast
        self.mean: np.ndarray | None = None
        self.variance: np.ndarray | None = None  # per pixel, summed over the three channels
        self.gain = 1.0
        self._warmup: list[np.ndarray] = []
        self._last_background: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        return self.mean is not None

    def warm_up(self, image: np.ndarray) -> bool:
        """Collect a start-up frame; True once the median model exists."""
        self._warmup.append(image)
        if len(self._warmup) >= self.warmup_frames:
            stack = np.stack(self._warmup).astype(np.float32)
            self.mean = np.median(stack, axis=0)
            spread = np.median(np.abs(stack - self.mean), axis=0).sum(axis=2) * 1.4826  # MAD -> std
            self.variance = np.maximum(spread, 2.0) ** 2
            self._warmup.clear()
        return self.ready

    def foreground(self, image: np.ndarray) -> np.ndarray:
        """uint8 mask, 255 where the frame shows something that is neither belt nor shadow."""
        assert self.mean is not None and self.variance is not None, "warm_up first"
        frame = image.astype(np.float32)
        self.gain = self._measure_gain(frame)
        expected = self.mean * self.gain
        distance = _squared_distance(frame, expected)
        limit = np.maximum(self.variance * (self.threshold**2), 3 * self.min_contrast**2)
        moving = distance > limit
        ratio = frame.sum(axis=2) / np.maximum(expected.sum(axis=2), 1.0)
        dimmed = (ratio > SHADOW_DARKEST) & (ratio < SHADOW_LIGHTEST)
        shadow = dimmed & (_squared_distance(frame, expected * ratio[..., None]) < limit / 4)
        mask = (moving & ~shadow).astype(np.uint8) * 255
        self._last_distance = distance
        self._last_frame = frame
        return mask

    def learn(self, items: np.ndarray) -> None:
        """Update the model from the last frame; ``items`` (uint8, 255 = item) is learnt slowly."""
        frame, distance = self._last_frame, self._last_distance
        belt = cv2.bitwise_not(items)
        normalised = frame / self.gain
        rate = self.learning_rate
        cv2.accumulateWeighted(normalised, self.mean, rate, mask=belt)
        cv2.accumulateWeighted(normalised, self.mean, rate / GHOST_SLOWDOWN, mask=items)
        cv2.accumulateWeighted(distance / self.gain**2, self.variance, rate, mask=belt)
        self._last_background = belt

    def _measure_gain(self, frame: np.ndarray) -> float:
        """Ratio of this frame's brightness to the model's, on pixels that were belt last frame."""
        step = GAIN_SAMPLE_STEP
        now = frame[::step, ::step].sum(axis=2)
        model = self.mean[::step, ::step].sum(axis=2)
        if self._last_background is not None:
            keep = self._last_background[::step, ::step] > 0
            if keep.sum() > 50:
                now, model = now[keep], model[keep]
        return float(np.clip(np.median(now) / max(float(np.median(model)), 1.0), 0.3, 3.0))


def _squared_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    difference = a - b
    return np.einsum("ijk,ijk->ij", difference, difference)
