"""Frame sources: a folder of images, a video file, or a live camera or network stream.

Files are read in order, every frame. A live source is different in two ways. OpenCV (and the
camera driver under it) buffer frames, so reading one at the agent's pace hands out frames that
are seconds old: a thread of its own reads the camera as fast as it delivers and keeps only the
newest, each stamped when it was grabbed; a frame replaced before anyone took it is counted as
skipped. And a camera or stream that stops answering is not the end of the line: the source
reopens it with backoff, counting reconnects, and gives up only after ``give_up_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sortline.backoff import backoff_delays

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")
#: How long OpenCV may wait for a stream to open or to deliver a frame before a read fails.
STREAM_TIMEOUT_MS = 5000


class SourceError(Exception):
    """The source cannot be opened; the agent exits with code 2."""


class SourceLost(Exception):
    """A live source stayed unreachable for longer than its give-up time; the agent exits with 3."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One image, when it was grabbed, and where it came from."""

    image: np.ndarray | None  # None: the file could not be read; counted as dropped
    source: str | None  # replayed files: the path relative to the folder, or "video#index"
    captured_at_ns: int  # grab time (epoch ns): live frames when the camera delivered them
    index: int  # position in a file or folder from 0; for a live source, how many were grabbed


class ImageFolderSource:
    """Every image below a folder, recursively, in sorted order (so replays are reproducible)."""

    live = False

    fps = None  # a folder has no frame rate of its own

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.paths:
            raise SourceError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def frames(self) -> Iterator[CapturedFrame]:
        for index, path in enumerate(self.paths):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("cannot read %s; skipping it", path)
            yield CapturedFrame(image, path.relative_to(self.folder).as_posix(), time.time_ns(), index)

    def close(self) -> None:
        """Nothing to release; files are opened one at a time."""


class VideoFileSource:
    """A video file, every frame in order."""

    live = False

    def __init__(self, path: Path) -> None:
        self.name = path.name  # so decisions can be traced to frame numbers
        self.capture = _open_capture(str(path), f"video file {path}")
        self.fps: float | None = self.capture.get(cv2.CAP_PROP_FPS) or None

    def frames(self) -> Iterator[CapturedFrame]:
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok:
                return
            yield CapturedFrame(image, f"{self.name}#{index}", time.time_ns(), index)
            index += 1

    def close(self) -> None:
        self.capture.release()


@dataclass
class LiveCounters:
    """What a live source reports: frames replaced unseen, reconnects (successful reopenings)."""

    on_skipped: Callable[[], None] = lambda: None
    on_reconnected: Callable[[], None] = lambda: None


class LiveSource:
    """A camera index or stream URL: the newest frame on demand, reopened when it fails."""

    live = True

    def __init__(
        self,
        spec: str,
        what: str,
        give_up_s: float,
        max_retry_s: float,
        counters: LiveCounters | None = None,
    ) -> None:
        self.spec, self.what = spec, what
        self.give_up_s, self.max_retry_s = give_up_s, max_retry_s
        self.counters = counters or LiveCounters()
        self._capture = _open_capture(spec, f"{what} {spec}")
        reported = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps: float | None = reported if 1.0 <= reported <= 240.0 else None  # drivers report odd values
        self._newest: CapturedFrame | None = None
        self._lost: str | None = None
        self._closed = False
        self._changed = threading.Condition()
        self._grabber = threading.Thread(target=self._grab_loop, name="grab", daemon=True)
        self._grabber.start()

    def frames(self) -> Iterator[CapturedFrame]:
        """The newest frame each time one is asked for (waiting for one newer than the last)."""
        while True:
            with self._changed:
                while self._newest is None and self._lost is None and not self._closed:
                    self._changed.wait(0.5)
                if self._lost is not None:
                    raise SourceLost(self._lost)
                if self._closed:
                    return
                frame, self._newest = self._newest, None
            yield frame

    def _grab_loop(self) -> None:
        index = 0
        while not self._closed:
            ok, image = self._capture.read()
            if not ok:
                if not self._reopen():
                    return
                continue
            frame = CapturedFrame(image, None, time.time_ns(), index)
            index += 1
            with self._changed:
                if self._newest is not None:
                    self.counters.on_skipped()
                self._newest = frame
                self._changed.notify_all()

    def _reopen(self) -> bool:
        """Reopen with backoff until it works (True), the source is closed or the give-up passes."""
        started = time.monotonic()
        log.warning("%s %s stopped delivering frames; reconnecting", self.what, self.spec)
        for delay in backoff_delays(cap=self.max_retry_s):
            self._capture.release()
            if self._closed:
                return False
            if self.give_up_s and time.monotonic() - started + delay > self.give_up_s:
                with self._changed:
                    self._lost = f"{self.what} {self.spec} unreachable for {self.give_up_s:g} s"
                    self._changed.notify_all()
                return False
            time.sleep(delay)
            try:
                self._capture = _open_capture(self.spec, f"{self.what} {self.spec}")
            except SourceError as error:
                log.info("%s; next attempt in up to %.1f s", error, self.max_retry_s)
                continue
            log.warning("%s %s delivers frames again", self.what, self.spec)
            self.counters.on_reconnected()
            return True
        return False

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._grabber.join(STREAM_TIMEOUT_MS / 1000 + 1)
        self._capture.release()


Source = ImageFolderSource | VideoFileSource | LiveSource


def open_source(
    spec: str, give_up_s: float = 0.0, max_retry_s: float = 30.0, counters: LiveCounters | None = None
) -> Source:
    """Open what ``--source`` names, or raise :class:`SourceError` saying why not."""
    if spec.isdigit():
        return LiveSource(spec, "camera", give_up_s, max_retry_s, counters)
    if spec.startswith(STREAM_SCHEMES):
        return LiveSource(spec, "stream", give_up_s, max_retry_s, counters)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.is_file():
        return VideoFileSource(path)
    raise SourceError(f"{spec} is not a camera index, stream URL, video file or folder")


def _open_capture(spec: str, what: str) -> cv2.VideoCapture:
    target: int | str = int(spec) if spec.isdigit() else spec
    if isinstance(target, str) and target.startswith(STREAM_SCHEMES):
        timeouts = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
        ]
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, timeouts)
    else:
        capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"OpenCV cannot open {what}")
    return capture
