"""What the release builds next to model.onnx; torch-free, so the CLI settings can read its defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReleaseOptions:
    """What to build next to model.onnx, and how hard to measure it."""

    workers: int = 2
    int8: bool = True
    fp16: bool = True
    speed_seconds: float = 4.0
