"""The benchmark's frames: the committed demo sample, resized to 512x384 and JPEG-encoded at quality 90."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples" / "demo"
FRAME_WIDTH, FRAME_HEIGHT = 512, 384
JPEG_QUALITY = 90


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    source: str  # path relative to the sample folder
    jpeg: bytes


def load_frames(samples_dir: Path = SAMPLES_DIR) -> list[EncodedFrame]:
    """One 512x384 JPEG per sample image, in a stable order; the benchmark cycles through them."""
    frames = []
    for path in sorted(samples_dir.rglob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        resized = cv2.resize(image, (FRAME_WIDTH, FRAME_HEIGHT), interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            frames.append(EncodedFrame(str(path.relative_to(samples_dir)), encoded.tobytes()))
    if not frames:
        raise FileNotFoundError(f"no JPEG images under {samples_dir}")
    return frames


def cycle(frames: list[EncodedFrame], count: int) -> list[EncodedFrame]:
    return [frames[index % len(frames)] for index in range(count)]
