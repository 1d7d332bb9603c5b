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
MIN_BRIGHTNESS_VAR = 1.5**2  # floors: sensor noise is never zero
MIN_COLOUR_VAR = 2 * 1.5**2


class BeltBackground:
    """Per-pixel belt model at detection scale; ``foreground`` then ``learn`` once per frame.

    Differences from the mean are split into brightness (the mean of the three channels) and
    colour (the rest), each with its own variance: a grey belt's texture varies in brightness far
    more than in colour, so a dark but coloured item stands out in colour where its brightness
    alone would hide in the texture.
    """

    def __init__(self, warmup_frames: int, learning_rate: float, threshold: float, min_contrast: float,
                 along_axis: int | None = None) -> None:  # fmt: skip
        self.warmup_frames = warmup_frames
        self.along_axis = along_axis  # image axis the belt moves along (0: rows, 1: columns)
        self.learning_rate = learning_rate
        self.threshold = threshold
        self.min_contrast = min_contrast
        self.mean: np.ndarray | None = None
        self.brightness_var: np.ndarray | None = None
        self.colour_var: np.ndarray | None = None  # of the squared colour difference (two degrees of freedom)
        self.gain = 1.0
        self._warmup: list[np.ndarray] = []
        self._belt_last_frame: np.ndarray | None = None

    @property
    def ready(self) -> bool:
        return self.mean is not None

    def warm_up(self, image: np.ndarray) -> bool:
        """Collect a start-up frame; True once the median model exists."""
        self._warmup.append(image)
        if len(self._warmup) >= self.warmup_frames:
            stack = np.stack(self._warmup).astype(np.float32)
            self.mean = np.median(stack, axis=0)
            brightness, colour = _split(stack - self.mean)
            self.brightness_var = self._pooled(
                np.maximum(np.median(brightness**2, axis=0) * 2.2, MIN_BRIGHTNESS_VAR)
            )
            self.colour_var = self._pooled(np.maximum(np.median(colour, axis=0) * 1.45, MIN_COLOUR_VAR))
            self._warmup.clear()
        return self.ready

    def _pooled(self, variance: np.ndarray) -> np.ndarray:
        """A few start-up frames see little of the belt's texture; but every pixel along the
        direction of travel sees the same belt go by, so each starts from at least the median
        variance of its line along the belt."""
        if self.along_axis is None:
            return variance
        return np.maximum(variance, np.median(variance, axis=self.along_axis, keepdims=True))

    def foreground(self, image: np.ndarray) -> np.ndarray:
        """uint8 mask, 255 where the frame shows something that is neither belt nor shadow."""
        assert self.mean is not None, "warm_up first"
        frame = image.astype(np.float32)
        self.gain = self._measure_gain(frame)
        expected = self.mean * self.gain
        brightness, colour = _split(frame - expected)
        gain2 = self.gain**2
        unusual = brightness**2 / (self.brightness_var * gain2) + colour / (self.colour_var * gain2)
        contrast = 3 * brightness**2 + colour  # squared colour distance
        moving = (unusual > self.threshold**2) & (contrast > self.min_contrast**2)
        ratio = 1.0 + brightness * 3 / np.maximum(expected.sum(axis=2), 1.0)
        dimmed = (ratio > SHADOW_DARKEST) & (ratio < SHADOW_LIGHTEST)
        shadow = dimmed & (colour < (self.threshold**2) * self.colour_var * gain2 * ratio**2)
        self._last = (frame, brightness, colour)
        return (moving & ~shadow).astype(np.uint8) * 255

    def learn(self, items: np.ndarray) -> None:
        """Update the model from the last frame; ``items`` (uint8, 255 = item) is learnt slowly."""
        frame, brightness, colour = self._last
        belt = cv2.bitwise_not(items)
        rate, gain2 = self.learning_rate, self.gain**2
        normalised = frame / self.gain
        cv2.accumulateWeighted(normalised, self.mean, rate, mask=belt)
        cv2.accumulateWeighted(normalised, self.mean, rate / GHOST_SLOWDOWN, mask=items)
        cv2.accumulateWeighted(
            np.maximum(brightness**2 / gain2, MIN_BRIGHTNESS_VAR), self.brightness_var, rate, mask=belt
        )
        cv2.accumulateWeighted(np.maximum(colour / gain2, MIN_COLOUR_VAR), self.colour_var, rate, mask=belt)
        self._belt_last_frame = belt

    def _measure_gain(self, frame: np.ndarray) -> float:
        """Ratio of this frame's brightness to the model's, on pixels that were belt last frame."""
        step = GAIN_SAMPLE_STEP
        now = frame[::step, ::step].sum(axis=2)
        model = self.mean[::step, ::step].sum(axis=2)
        if self._belt_last_frame is not None:
            keep = self._belt_last_frame[::step, ::step] > 0
            if keep.sum() > 50:
                now, model = now[keep], model[keep]
        return float(np.clip(np.median(now) / max(float(np.median(model)), 1.0), 0.3, 3.0))


def _split(difference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brightness change (mean over channels) and squared colour change (what is left) of BGR differences."""
    brightness = difference.mean(axis=-1)
    colour = np.einsum("...k,...k->...", difference, difference) - 3 * brightness**2
    return brightness, np.maximum(colour, 0.0)
