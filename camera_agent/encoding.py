"""From captured frames to messages: a frame as one message, or items as one message each.

Frame mode: each frame is a JPEG, stamped at capture. Items mode: the frames go through the item
pipeline (``camera_agent.items``), and each item that crosses the trigger line becomes ONE message
carrying its best views back to back (``view_bytes``), where it is (``bbox``, ``belt_x``,
``belt_span``) and when it crossed; with the site's geometry also when it reaches the ejectors,
which less a margin is its deadline.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

import cv2
import numpy as np

from camera_agent.settings import AgentSettings
from camera_agent.sources import CapturedFrame
from sortline.belt import BeltFrame
from sortline.messages import FrameHeaders


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A message ready to publish: its body, its contract headers, its id."""

    body: bytes
    headers: FrameHeaders
    frame_id: str


class FrameEncoder:
    """Frame mode: one JPEG per frame."""

    def __init__(self, settings: AgentSettings, live: bool) -> None:
        self.settings = settings
        self.deadline_ms = settings.effective_deadline_ms(live)

    def encode(self, frame: CapturedFrame, seq: int) -> list[EncodedFrame]:
        body = jpeg(frame.image, self.settings.jpeg_quality)
        if body is None:
            return []
        deadline_ns = frame.captured_at_ns + self.deadline_ms * 1_000_000 if self.deadline_ms else None
        headers = FrameHeaders(
            line_id=self.settings.line_id, camera_id=self.settings.camera_id, seq=seq,
            captured_at_ns=frame.captured_at_ns, source=frame.source, deadline_ns=deadline_ns,
        )  # fmt: skip
        return [EncodedFrame(body, headers, uuid.uuid4().hex)]


class ItemEncoder:
    """Items mode: every frame through the item pipeline; a message per item at the trigger line."""

    def __init__(self, settings: AgentSettings, live: bool, fps: float) -> None:
        from camera_agent.items.pipeline import ItemsPipeline  # the items extra (trackers)
        from camera_agent.items.settings import load_site_geometry

        self.settings = settings
        self.items_settings = settings.items_settings()
        self.geometry = load_site_geometry(settings.site) if settings.site else None
        self.deadline_ms = settings.effective_deadline_ms(live)
        prefix = f"{settings.camera_id}-{secrets.token_hex(3)}"  # item ids unique across restarts
        self.pipeline = ItemsPipeline(self.items_settings, fps=fps, id_prefix=prefix)
        self.belt: BeltFrame | None = None

    def encode(self, frame: CapturedFrame, _seq: int) -> list[EncodedFrame]:
        if self.belt is None:
            height, width = frame.image.shape[:2]
            self.belt = BeltFrame(self.items_settings.roi_for(width, height), self.items_settings.direction)
        events = self.pipeline.process(frame.image, frame.index, frame.captured_at_ns)
        return [message for event in events if (message := self._message(event)) is not None]

    def _message(self, event) -> EncodedFrame | None:
        views = [jpeg(crop.image, self.settings.jpeg_quality) for crop in event.crops]
        views = [view for view in views if view]
        if not views:
            return None
        eject_at_ns = deadline_ns = None
        if self.geometry is not None:
            eject_at_ns = event.crossed_at_ns + round(self.geometry.ejector_delay_s() * 1e9)
            deadline_ns = eject_at_ns - round(self.settings.eject_margin_ms * 1e6)
        elif self.deadline_ms:
            deadline_ns = event.crossed_at_ns + self.deadline_ms * 1_000_000
        headers = FrameHeaders(
            line_id=self.settings.line_id, camera_id=self.settings.camera_id, seq=event.seq,
            captured_at_ns=event.crossed_at_ns, item_id=event.item_id, bbox=event.bbox,
            belt_x=min(1.0, max(0.0, event.belt_x)), belt_span=self._span(event.bbox),
            view_bytes=tuple(len(view) for view in views), eject_at_ns=eject_at_ns, deadline_ns=deadline_ns,
        )  # fmt: skip
        return EncodedFrame(b"".join(views), headers, uuid.uuid4().hex)

    def _span(self, bbox: tuple[int, int, int, int]) -> tuple[float, float]:
        """The item's extent across the belt, 0..1 (clipped to the ROI)."""
        x, y, w, h = bbox
        edges = sorted((self.belt.across(x, y), self.belt.across(x + w, y + h)))
        return (min(1.0, max(0.0, edges[0])), min(1.0, max(0.0, edges[1])))


def jpeg(image: np.ndarray | None, quality: int) -> bytes | None:
    if image is None:
        return None
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return encoded.tobytes() if ok else None
