"""Items mode, for people: each frame drawn with its items (boxes, ids, decided bins, the trigger
line, fps) to ``--annotate out.mp4`` and to the live view."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from camera_agent.encoding import ItemEncoder, jpeg
from camera_agent.items.annotate import draw_items
from camera_agent.live import LiveServer
from camera_agent.sources import CapturedFrame
from camera_agent.verdicts import VerdictWatcher

#: The live view is scaled to this width and sent at most this often: it is for people.
LIVE_WIDTH = 960
LIVE_MAX_FPS = 10.0


class FrameView:
    def __init__(
        self,
        verdicts: VerdictWatcher,
        annotate: Path | None,
        live: LiveServer | None,
        fps: float,
    ) -> None:
        self.verdicts = verdicts
        self.live = live
        self._annotate = annotate
        self._fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._measured_fps = 0.0
        self._last_capture_ns: int | None = None
        self._last_live = 0.0

    def state(self) -> dict:
        return {"fps": self._measured_fps, "items": self.verdicts.recent()}

    def show(self, frame: CapturedFrame, encoder: ItemEncoder) -> None:
        self._measure(frame.captured_at_ns)
        now = time.monotonic()
        live_due = self.live is not None and now - self._last_live >= 1.0 / LIVE_MAX_FPS
        if self._annotate is None and not live_due:
            return
        drawn = draw_items(frame.image, encoder.pipeline.tracks, encoder.belt, encoder.items_settings.trigger,
                           self.verdicts.verdicts(), self._measured_fps)  # fmt: skip
        if self._annotate is not None:
            self._write(drawn)
        if live_due:
            self._last_live = now
            scale = LIVE_WIDTH / drawn.shape[1]
            small = (
                cv2.resize(drawn, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                if scale < 1
                else drawn
            )
            if (body := jpeg(small, 80)) is not None:
                self.live.publish(body)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
        if self.live is not None:
            self.live.close()
        self.verdicts.close()

    def _measure(self, captured_ns: int) -> None:
        if self._last_capture_ns is not None and captured_ns > self._last_capture_ns:
            instant = 1e9 / (captured_ns - self._last_capture_ns)
            self._measured_fps = (
                instant if not self._measured_fps else 0.9 * self._measured_fps + 0.1 * instant
            )
        self._last_capture_ns = captured_ns

    def _write(self, drawn) -> None:
        if self._writer is None:
            height, width = drawn.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self._annotate), fourcc, self._fps, (width, height))
        self._writer.write(drawn)
