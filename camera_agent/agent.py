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
from typing import TYPE_CHECKING

import pika

from camera_agent.buffer import FrameBuffer
from camera_agent.encoding import EncodedFrame, FrameEncoder, ItemEncoder
from camera_agent.metrics import AgentMetrics
from camera_agent.publisher import FramePublisher
from camera_agent.settings import AgentSettings
from camera_agent.sources import CapturedFrame, Source
from sortline.health import Heartbeat
from sortline.topology import frames_routing_key

if TYPE_CHECKING:
    from camera_agent.view import FrameView

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
        source: Source,
        publisher: FramePublisher,
        metrics: AgentMetrics,
        stop: threading.Event,
        view: FrameView | None = None,
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
        self.source_error: Exception | None = None  # why capturing ended early, if it did
        self.view = view  # annotations for people (live view, --annotate), items mode only
        self._counted = (0, 0)  # items and lost items already counted in the metrics
        if settings.mode == "items":
            self.encoder: FrameEncoder | ItemEncoder = ItemEncoder(settings, source.live, self.source_fps())
        else:
            self.encoder = FrameEncoder(settings, source.live)

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
        if isinstance(self.encoder, ItemEncoder):
            stats = self.encoder.pipeline.finish()
            log.info("items: %d crossed the trigger line, %d lost before it, %d frames skipped",
                     stats.items, stats.lost_before_trigger, stats.skipped_frames)  # fmt: skip
        return self.published

    def source_fps(self) -> float:
        """The source's own frame rate (a video file's; a camera's as it reports it), else 30."""
        return getattr(self.source, "fps", None) or 30.0

    def pace_fps(self) -> float:
        """Frame mode: --fps. Items mode: every frame the source gives; a file at its own rate (so
        items move as they would on a belt) unless --fps says otherwise."""
        if self.settings.mode == "frame" or "fps" in self.settings.model_fields_set:
            return self.settings.fps
        return 0.0 if self.source.live else self.source_fps()

    def _capture_loop(self) -> None:
        pacer = Pacer(self.pace_fps(), self.stop)
        live = self.source.live
        seq = 0
        try:
            while not self.stop.is_set():
                frames = self.source.frames()
                while not self.stop.is_set():
                    pacer.wait()  # before taking a frame: a live source then hands out its newest
                    frame = next(frames, None)
                    if frame is None:
                        break
                    self.capture_heartbeat.beat()
                    for encoded in self._encode(frame, seq):
                        if self.buffer.put(encoded, drop_oldest=live, stop=self.stop):
                            seq += 1
                            self.metrics.buffered.labels(**self._labels).set(len(self.buffer))
                if live or not self.settings.loop:
                    break
        except Exception as error:  # a lost live source ends the agent (exit 3), after what it buffered
            self.source_error = error
        finally:
            self.buffer.close()
            if self.view is not None:
                self.view.close()

    def _encode(self, frame: CapturedFrame, seq: int) -> list[EncodedFrame]:
        self.metrics.captured.labels(**self._labels).inc()
        if frame.image is None:
            self.metrics.dropped.labels(**self._labels, reason="unreadable").inc()
            return []
        with self.metrics.encode_seconds.labels(**self._labels).time():
            messages = self.encoder.encode(frame, seq)
        if self.settings.mode == "frame" and not messages:
            self.metrics.dropped.labels(**self._labels, reason="encode-failed").inc()
        if isinstance(self.encoder, ItemEncoder):
            self._count_items(self.encoder)
            if self.view is not None:
                self.view.show(frame, self.encoder)
        return messages

    def _count_items(self, encoder: ItemEncoder) -> None:
        """The pipeline keeps running totals; the counters take what is new since the last frame."""
        stats = encoder.pipeline.stats
        self.metrics.items.labels(**self._labels).inc(stats.items - self._counted[0])
        self.metrics.items_lost.labels(**self._labels).inc(stats.lost_before_trigger - self._counted[1])
        self._counted = (stats.items, stats.lost_before_trigger)

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
        """AMQP properties; None when the frame's deadline passed while it waited for the broker.

        The deadline travels as an absolute time (``deadline_ns``), which workers check; the
        broker's ``expiration`` counts from publication, so it is set to what remains of it now.
        """
        expiration = None
        if frame.headers.deadline_ns is not None:
            remaining_ms = (frame.headers.deadline_ns - time.time_ns()) // 1_000_000
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
