"""The capture loop: read, pace, encode, stamp and publish each frame."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import cv2
import numpy as np
import pika

from camera_agent.metrics import AgentMetrics
from camera_agent.publisher import FramePublisher
from camera_agent.settings import AgentSettings
from camera_agent.sources import CapturedFrame, ImageFolderSource, VideoSource, is_finite
from sortline.messages import FrameHeaders
from sortline.topology import frames_routing_key

log = logging.getLogger(__name__)


class Pacer:
    """Sleeps so frames leave at a steady rate; falling behind is not made up in a burst."""

    def __init__(self, fps: float, stop: threading.Event) -> None:
        self._interval = 1.0 / fps if fps > 0 else 0.0
        self._stop = stop
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if self._next > now:
            self._stop.wait(self._next - now)
        self._next = max(self._next, now) + self._interval


class CameraAgent:
    """Publishes every frame of a source, confirmed, with the contract's headers."""

    def __init__(
        self,
        settings: AgentSettings,
        source: ImageFolderSource | VideoSource,
        publisher: FramePublisher,
        metrics: AgentMetrics,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.source = source
        self.publisher = publisher
        self.metrics = metrics
        self.stop = stop
        self.seq = 0
        self._labels = {"line": settings.line_id, "camera": settings.camera_id}
        self._routing_key = frames_routing_key(settings.line_id, settings.camera_id)

    def run(self) -> int:
        """Publish until the source ends (files, folders without --loop) or we are stopped."""
        pacer = Pacer(self.settings.fps, self.stop)
        while not self.stop.is_set():
            for frame in self.source.frames():
                if self.stop.is_set():
                    break
                pacer.wait()
                self._publish(frame)
            if not (self.settings.loop and is_finite(self.source)):
                break
        log.info("published %d frames", self.seq)
        return self.seq

    def _publish(self, frame: CapturedFrame) -> None:
        self.metrics.captured.labels(**self._labels).inc()
        if frame.image is None:
            self.metrics.dropped.labels(**self._labels, reason="unreadable").inc()
            return
        captured_at_ns = time.time_ns()
        with self.metrics.encode_seconds.labels(**self._labels).time():
            body = encode_jpeg(frame.image, self.settings.jpeg_quality)
        if body is None:
            self.metrics.dropped.labels(**self._labels, reason="encode-failed").inc()
            return
        self.metrics.unconfirmed.labels(**self._labels).set(1)
        self.publisher.publish(self._routing_key, body, self._properties(frame, captured_at_ns))
        self.metrics.unconfirmed.labels(**self._labels).set(0)
        self.metrics.published.labels(**self._labels).inc()
        self.seq += 1

    def _properties(self, frame: CapturedFrame, captured_at_ns: int) -> pika.BasicProperties:
        headers = FrameHeaders(
            line_id=self.settings.line_id,
            camera_id=self.settings.camera_id,
            seq=self.seq,
            captured_at_ns=captured_at_ns,
            source=frame.source,
        )
        deadline = self.settings.deadline_ms
        return pika.BasicProperties(
            content_type="image/jpeg",
            message_id=uuid.uuid4().hex,
            timestamp=captured_at_ns // 1_000_000_000,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=headers.to_amqp(),
            expiration=str(deadline) if deadline else None,
        )


def encode_jpeg(image: np.ndarray, quality: int) -> bytes | None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return encoded.tobytes() if ok else None
