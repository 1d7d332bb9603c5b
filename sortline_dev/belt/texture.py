"""Procedural belt surfaces: dark rubber or woven fabric, periodic along the belt so it can loop.

Everything is drawn in the *canonical* orientation (rows run along the belt, columns across it);
the renderer turns finished frames to the clip's direction.
"""

from __future__ import annotations

import cv2
import numpy as np


def band_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-std noise whose blobs are about ``scale_px`` wide; periodic in both axes (FFT)."""
    spectrum = np.fft.rfft2(rng.standard_normal(shape).astype(np.float32))
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    radius = np.sqrt(fx**2 + fy**2) * scale_px
    noise = np.fft.irfft2(spectrum * np.exp(-(radius**2)), s=shape).astype(np.float32)
    return noise / max(float(noise.std()), 1e-6)


def weave(shape: tuple[int, int], period_px: int, amplitude: float) -> np.ndarray:
    """A fine fabric weave; the period divides the texture's length so the loop has no seam."""
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    cols = np.arange(shape[1], dtype=np.float32)[None, :]
    phase = 2 * np.pi / period_px
    return amplitude * np.sin(rows * phase) * np.sin(cols * phase)


def wear_marks(rng: np.random.Generator, shape: tuple[int, int], count: int, amplitude: float) -> np.ndarray:
    """Soft scuffs and stains, and thin scratches running along the belt."""
    marks = np.zeros(shape, np.float32)
    for _ in range(count):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(4, shape[1] // 12 + 5)), int(rng.integers(3, shape[1] // 25 + 4)))
        cv2.ellipse(marks, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-1, 1)), -1)
    marks = cv2.GaussianBlur(marks, (0, 0), max(2.0, shape[1] / 200))
    for column in rng.integers(0, shape[1], size=count // 2):
        marks[:, column] += float(rng.uniform(-0.6, 0.6))
    return marks * amplitude


def belt_texture(rng: np.random.Generator, length: int, width: int) -> np.ndarray:
    """A loop of belt, ``length`` rows by ``width`` columns, BGR float32 in grey levels (dark)."""
    fabric = bool(rng.random() < 0.5)
    period = int(rng.integers(3, 6))
    length = max(period, length // period * period)
    shape = (length, width)
    base = float(rng.uniform(32, 70))
    grey = base + float(rng.uniform(2, 6)) * band_noise(rng, shape, width / 10)
    grey += float(rng.uniform(1, 3)) * band_noise(rng, shape, 2.0)
    if fabric:
        grey += weave(shape, period, float(rng.uniform(1.5, 4.0)))
    grey += wear_marks(rng, shape, int(rng.integers(6, 20)), float(rng.uniform(3, 9)))
    splice = int(rng.integers(0, length))
    grey[splice : splice + 3] += float(rng.uniform(-6, 6))
    tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    return np.clip(grey[..., None] * tint, 0, 255).astype(np.float32)


def rails(rng: np.random.Generator, length: int, width: int) -> np.ndarray:
    """The static steel frame beside the belt: brushed grey, a dark gap on its belt side (column 0)."""
    if width == 0:
        return np.zeros((length, 0, 3), np.float32)
    rows = np.arange(length, dtype=np.float32)[:, None]
    grey = float(rng.uniform(90, 150)) + 12 * np.sin(rows / length * np.pi * float(rng.uniform(0.5, 2)))
    grey = grey + 3 * band_noise(rng, (length, width), 1.5)
    grey[:, : max(1, width // 8)] *= 0.35
    return np.clip(np.repeat(grey[..., None], 3, axis=2), 0, 255).astype(np.float32)
