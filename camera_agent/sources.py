"""Frame sources: a camera, a video file or stream (OpenCV VideoCapture), or a folder of images."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


class SourceError(Exception):
    """The source cannot be opened; the agent exits with code 2."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One image and where it came from (relative path for replayed files)."""

    image: np.ndarray | None  # None: the file could not be read; counted as dropped
    source: str | None


class ImageFolderSource:
    """Every image below a folder, recursively, in sorted order (so replays are reproducible)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.paths:
            raise SourceError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def frames(self) -> Iterator[CapturedFrame]:
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            relative = path.relative_to(self.folder).as_posix()
            if image is None:
                log.warning("cannot read %s; skipping it", path)
            yield CapturedFrame(image, relative)

    def close(self) -> None:
        """Nothing to release; files are opened one at a time."""


class VideoSource:
    """A camera index, video file or network stream, read with OpenCV."""

    def __init__(self, spec: str, capture: cv2.VideoCapture, name: str | None) -> None:
        self.spec = spec
        self.capture = capture
        self.name = name  # file name for videos, so decisions can be traced to frame numbers

    def frames(self) -> Iterator[CapturedFrame]:
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok:
                return
            yield CapturedFrame(image, f"{self.name}#{index}" if self.name else None)
            index += 1

    def close(self) -> None:
        self.capture.release()


def open_source(spec: str) -> ImageFolderSource | VideoSource:
    """Open what ``--source`` names, or raise :class:`SourceError` saying why not."""
    if spec.isdigit():
        return _open_capture(spec, int(spec), name=None, what="camera")
    if spec.startswith(STREAM_SCHEMES):
        return _open_capture(spec, spec, name=None, what="stream")
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.is_file():
        return _open_capture(spec, str(path), name=path.name, what="video file")
    raise SourceError(f"{spec} is not a camera index, stream URL, video file or folder")


def _open_capture(spec: str, target: int | str, name: str | None, what: str) -> VideoSource:
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"OpenCV cannot open {what} {spec}")
    return VideoSource(spec, capture, name)


def is_finite(source: ImageFolderSource | VideoSource) -> bool:
    """Files and folders end; cameras and streams do not (they are never looped)."""
    return isinstance(source, ImageFolderSource) or source.name is not None
