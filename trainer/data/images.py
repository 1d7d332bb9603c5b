"""Labelled image files read as the worker reads frames, so training sees the pixels that are served."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sortline.manifest import InputSpec
from sortline.messages import InvalidFrame
from sortline_runtime.imaging import load_rgb

log = logging.getLogger(__name__)


def load_rgb_or_none(path: Path, spec: InputSpec) -> np.ndarray | None:
    """The file decoded and resized by the serving runtime, or None (with a warning) when it cannot be."""
    try:
        return load_rgb(path, spec)
    except (InvalidFrame, OSError) as error:
        log.warning("skipping %s: %s", path, error)
        return None
