"""Capture and publishing, in two threads joined by a bounded buffer.

The capture thread reads, paces, encodes and stamps frames; the publishing loop sends them with
publisher confirms, holding each until the broker confirms it and re-sending it after a reconnect.
A broker outage therefore never stalls the camera: frames pile up in the buffer (oldest dropped
and counted when it is full), and none that the broker confirmed is ever lost.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import cv2
import numpy as np
import pika

from camera_agent.buffer import FrameBuffer
from camera_agent.metrics import AgentMetrics
from camera_agent.publisher import FramePublisher
from camera_agent.settings import AgentSettings
from camera_agent.sources import ImageFolderSource, VideoSource, is_finite
from sortline.health import Heartbeat
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


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A frame ready to publish: JPEG bytes and its contract headers, stamped at capture."""

    body: bytes
    headers: FrameHeaders
    frame_id: str


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
        self.published = 0
        self.capture_heartbeat = Heartbeat()  # liveness: frames keep coming from the source
        self._labels = {"line": settings.line_id, "camera": settings.camera_id}
        self._routing_key = frames_routing_key(settings.line_id, settings.camera_id)
        self.buffer: FrameBuffer[EncodedFrame] = FrameBuffer(
            settings.buffer_frames, on_drop=self._dropped_oldest
        )

    def run(self) -> int:
        """Publish until the source ends (files, folders without --loop) or we are stopped."""
        capture = threading.Thread(target=self._capture_loop, name="capture", daemon=True)
        capture.start()
        try:
            self._publish_loop()
        finally:
            self.stop.set()  # if publishing failed, capturing has no purpose either
            capture.join(timeout=5)
        log.info("published %d frames", self.published)
        return self.published

    def _capture_loop(self) -> None:
        pacer = Pacer(self.settings.fps, self.stop)
        live = not is_finite(self.source)
        seq = 0
        try:
            while not self.stop.is_set():
                for frame in self.source.frames():
                    if self.stop.is_set():
                        break
                    self.capture_heartbeat.beat()
                    pacer.wait()
                    encoded = self._encode(frame.image, frame.source, seq)
                    if encoded is not None and self.buffer.put(encoded, drop_oldest=live, stop=self.stop):
                        seq += 1
                        self.metrics.buffered.labels(**self._labels).set(len(self.buffer))
                if not (self.settings.loop and not live):
                    break
        finally:
            self.buffer.close()

    def _encode(self, image: np.ndarray | None, source: str | None, seq: int) -> EncodedFrame | None:
        self.metrics.captured.labels(**self._labels).inc()
        if image is None:
            self.metrics.dropped.labels(**self._labels, reason="unreadable").inc()
            return None
        captured_at_ns = time.time_ns()
        with self.metrics.encode_seconds.labels(**self._labels).time():
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
        if not ok:
            self.metrics.dropped.labels(**self._labels, reason="encode-failed").inc()
            return None
        headers = FrameHeaders(
            line_id=self.settings.line_id,
            camera_id=self.settings.camera_id,
            seq=seq,
            captured_at_ns=captured_at_ns,
            source=source,
        )
        return EncodedFrame(encoded.tobytes(), headers, uuid.uuid4().hex)

    def _publish_loop(self) -> None:
        while not self.buffer.drained:
            frame = self.buffer.get(timeout=0.1)
            if frame is None:
                continue
            self.metrics.buffered.labels(**self._labels).set(len(self.buffer))
            properties = self._properties(frame)
            if properties is None:
                self.metrics.dropped.labels(**self._labels, reason="expired").inc()
                continue
            self.metrics.unconfirmed.labels(**self._labels).set(1)
            self.publisher.publish(self._routing_key, frame.body, properties)
            self.metrics.unconfirmed.labels(**self._labels).set(0)
            self.metrics.published.labels(**self._labels).inc()
            self.published += 1

    def _properties(self, frame: EncodedFrame) -> pika.BasicProperties | None:
        """AMQP properties; None when the frame's deadline passed while it waited for the broker."""
        expiration = None
        if self.settings.deadline_ms:
            # The broker counts expiration from enqueueing; the deadline counts from capture.
            waited_ms = (time.time_ns() - frame.headers.captured_at_ns) // 1_000_000
            remaining_ms = self.settings.deadline_ms - waited_ms
            if remaining_ms <= 0:
                return None
            expiration = str(remaining_ms)
        return pika.BasicProperties(
            content_type="image/jpeg",
            message_id=frame.frame_id,
            timestamp=frame.headers.captured_at_ns // 1_000_000_000,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=frame.headers.to_amqp(),
            expiration=expiration,
        )

    def _dropped_oldest(self, _frame: EncodedFrame) -> None:
        self.metrics.dropped.labels(**self._labels, reason="buffer-full").inc()
