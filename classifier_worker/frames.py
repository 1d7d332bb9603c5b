"""What arrives from the queue, and the checks a frame must pass before it costs any decoding."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sortline.messages import IMAGE_CONTENT_TYPES, DeadLetterReason, FrameHeaders, InvalidFrame


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as the broker handed it over, detached from pika's objects."""

    delivery_tag: int
    redelivered: bool
    routing_key: str
    body: bytes
    content_type: str | None
    message_id: str | None
    expiration: str | None
    headers: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Frame:
    """A delivery whose metadata checked out; its image is decoded later, in a decode thread."""

    delivery: Delivery
    headers: FrameHeaders
    frame_id: str
    deadline_ns: int | None


def check_frame(delivery: Delivery, *, max_body_bytes: int, now_ns: int | None = None) -> Frame:
    """Validate everything but the pixels, raising :class:`InvalidFrame` with the reason."""
    if delivery.content_type not in IMAGE_CONTENT_TYPES:
        raise InvalidFrame(
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
            f"content type {delivery.content_type!r}, expected one of {', '.join(IMAGE_CONTENT_TYPES)}",
        )
    if len(delivery.body) > max_body_bytes:
        raise InvalidFrame(
            DeadLetterReason.OVERSIZED_BODY, f"{len(delivery.body)} bytes exceeds {max_body_bytes}"
        )
    headers = FrameHeaders.from_amqp(delivery.headers)
    deadline_ns = frame_deadline_ns(headers.captured_at_ns, delivery.expiration)
    if deadline_ns is not None and (now_ns or time.time_ns()) > deadline_ns:
        raise InvalidFrame(DeadLetterReason.EXPIRED, "frame is past its deadline")
    frame_id = delivery.message_id or f"{headers.line_id}.{headers.camera_id}.{headers.captured_at_ns}"
    return Frame(delivery, headers, frame_id, deadline_ns)


def frame_deadline_ns(captured_at_ns: int, expiration: str | None) -> int | None:
    """The frame's deadline: capture time plus its expiration (ms), as the camera set it."""
    if not expiration:
        return None
    try:
        return captured_at_ns + int(expiration) * 1_000_000
    except ValueError:
        raise InvalidFrame(DeadLetterReason.INVALID_HEADERS, f"expiration {expiration!r} is not ms") from None
