"""What arrives from the queue, and the checks a frame must pass before it costs any decoding."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sortline.messages import IMAGE_CONTENT_TYPES, DeadLetterReason, FrameHeaders, InvalidFrame

#: A frame id travels as the decision's ``message_id`` and in its body: printable ASCII, bounded.
_FRAME_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_ROUTING_KEY = re.compile(r"^frames\.([^.]+)\.([^.]+)$")


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


@dataclass(frozen=True, slots=True)
class FramePolicy:
    """What a worker accepts beyond the message schema: whose frames, and from when."""

    line_id: str
    max_body_bytes: int
    #: Cameras allowed to publish to this line; empty: any camera.
    cameras: frozenset[str] = frozenset()
    #: How far a capture time may lie ahead of this worker's clock (cameras' clocks drift).
    max_ahead_ns: int = 5_000_000_000
    #: How old a capture time may be; older frames are refused, deadline or not.
    max_age_ns: int = 86_400_000_000_000


def check_frame(delivery: Delivery, policy: FramePolicy, now_ns: int | None = None) -> Frame:
    """Validate everything but the pixels, raising :class:`InvalidFrame` with the reason."""
    if delivery.content_type not in IMAGE_CONTENT_TYPES:
        raise InvalidFrame(
            DeadLetterReason.UNSUPPORTED_CONTENT_TYPE,
            f"content type {_shown(delivery.content_type)}, expected one of {', '.join(IMAGE_CONTENT_TYPES)}",
        )
    if len(delivery.body) > policy.max_body_bytes:
        raise InvalidFrame(
            DeadLetterReason.OVERSIZED_BODY, f"{len(delivery.body)} bytes exceeds {policy.max_body_bytes}"
        )
    headers = FrameHeaders.from_amqp(delivery.headers)
    check_origin(delivery.routing_key, headers, policy)
    now_ns = now_ns or time.time_ns()
    check_capture_time(headers.captured_at_ns, policy, now_ns)
    deadline_ns = frame_deadline_ns(headers, delivery.expiration)
    if deadline_ns is not None and now_ns > deadline_ns:
        raise InvalidFrame(DeadLetterReason.EXPIRED, "frame is past its deadline")
    return Frame(delivery, headers, frame_id(delivery, headers), deadline_ns)


def check_origin(routing_key: str, headers: FrameHeaders, policy: FramePolicy) -> None:
    """The routing key, the headers and this worker's line must name the same line and camera.

    A frame is decided into the stream of the line its headers name; without this check a camera
    allowed to publish to line A could make line B's ejectors fire.
    """
    match = _ROUTING_KEY.match(routing_key)
    if match is None:
        raise InvalidFrame(
            DeadLetterReason.LINE_MISMATCH, f"routing key {_shown(routing_key)} is not frames.<line>.<camera>"
        )
    key_line, key_camera = match.groups()
    if not (headers.line_id == key_line == policy.line_id):
        raise InvalidFrame(
            DeadLetterReason.LINE_MISMATCH,
            f"line_id header {headers.line_id!r}, routing key line {_shown(key_line)}, "
            f"worker line {policy.line_id!r}",
        )
    if headers.camera_id != key_camera:
        raise InvalidFrame(
            DeadLetterReason.LINE_MISMATCH,
            f"camera_id header {headers.camera_id!r}, routing key camera {_shown(key_camera)}",
        )
    if policy.cameras and headers.camera_id not in policy.cameras:
        raise InvalidFrame(
            DeadLetterReason.CAMERA_NOT_ALLOWED, f"camera {headers.camera_id!r} may not publish to this line"
        )


def check_capture_time(captured_at_ns: int, policy: FramePolicy, now_ns: int) -> None:
    """A capture time outside [now - max age, now + max ahead] is a broken clock or a forged frame."""
    ahead_ns = captured_at_ns - now_ns
    if ahead_ns > policy.max_ahead_ns:
        raise InvalidFrame(
            DeadLetterReason.BAD_CAPTURE_TIME,
            f"captured {ahead_ns / 1e9:.3g} s in the future "
            f"(at most {policy.max_ahead_ns / 1e9:g} s allowed)",
        )
    if -ahead_ns > policy.max_age_ns:
        raise InvalidFrame(
            DeadLetterReason.BAD_CAPTURE_TIME,
            f"captured {-ahead_ns / 1e9:.3g} s ago (at most {policy.max_age_ns / 1e9:g} s allowed)",
        )


def frame_id(delivery: Delivery, headers: FrameHeaders) -> str:
    """The AMQP ``message_id``, or one made from the headers when the sender set none."""
    if delivery.message_id is None:
        return f"{headers.line_id}.{headers.camera_id}.{headers.captured_at_ns}"
    if not isinstance(delivery.message_id, str) or not _FRAME_ID.match(delivery.message_id):
        raise InvalidFrame(
            DeadLetterReason.INVALID_HEADERS,
            f"message_id {_shown(delivery.message_id)} is not 1-128 printable ASCII characters",
        )
    return delivery.message_id


def frame_deadline_ns(headers: FrameHeaders, expiration: str | None) -> int | None:
    """The instant after which this frame must not be decided.

    The ``deadline_ns`` header when the camera set one (an absolute time, so time spent in the
    camera's buffer and in the queue counts once). A sender without it gets its ``expiration``
    (milliseconds) counted from capture: the broker counts it from publication, so this is the
    earlier of the two and never lets a late frame through.
    """
    if headers.deadline_ns is not None:
        return headers.deadline_ns
    if not expiration:
        return None
    try:
        return headers.captured_at_ns + int(expiration) * 1_000_000
    except (TypeError, ValueError):
        raise InvalidFrame(
            DeadLetterReason.INVALID_HEADERS, f"expiration {_shown(expiration)} is not ms"
        ) from None


def _shown(value: object, limit: int = 80) -> str:
    """A sender's value, quoted and cut short, safe to put in a log line or a dead letter's detail."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
