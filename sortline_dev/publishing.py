"""Publishing frames the way a camera does, without running one: for tests and the benchmark.

Each frame gets a unique ``message_id`` (workers drop a repeated one) and contract headers built
by :class:`sortline.messages.FrameHeaders`, so what is published is what a camera agent publishes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import pika

from sortline.messages import DecisionMessage, FrameHeaders
from sortline.topology import (
    DECISIONS_EXCHANGE,
    FRAMES_EXCHANGE,
    decisions_routing_key,
    declare_exchanges,
    declare_line,
    frames_routing_key,
)
from sortline_dev.broker import connect

#: (body, headers, content type): one message as a test writes it, headers possibly broken on purpose.
RawFrame = tuple[bytes, dict[str, Any] | None, str | None]


def frame_headers(
    line_id: str,
    seq: int,
    source: str | None = None,
    camera_id: str = "cam-1",
    captured_at_ns: int | None = None,
) -> dict[str, Any]:
    """Valid contract headers of one frame, captured now unless told otherwise."""
    captured = captured_at_ns or time.time_ns()
    return FrameHeaders(
        line_id=line_id, camera_id=camera_id, seq=seq, captured_at_ns=captured, source=source
    ).to_amqp()


def frame_properties(
    headers: dict[str, Any] | None,
    content_type: str | None = "image/jpeg",
    message_id: str | None = None,
    expiration: str | None = None,
) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=content_type,
        headers=headers,
        message_id=message_id or uuid.uuid4().hex,
        expiration=expiration,
        timestamp=int(time.time()),
        delivery_mode=pika.DeliveryMode.Persistent,
    )


def publish_frames(
    amqp_url: str,
    line_id: str,
    frames: Iterable[RawFrame],
    camera_id: str = "cam-1",
    confirm: bool = True,
    expiration: str | None = None,
) -> list[str]:
    """Publish frames to a line (declaring it); returns their message ids, in order.

    With ``confirm`` each publish waits for the broker; without, they go in a burst and one
    synchronous call at the end returns only once the broker has read them all.
    """
    connection = connect(amqp_url, role="publisher")
    ids = []
    try:
        channel = connection.channel()
        if confirm:
            channel.confirm_delivery()
        declare_line(channel, line_id)
        for body, headers, content_type in frames:
            properties = frame_properties(headers, content_type, expiration=expiration)
            channel.basic_publish(
                FRAMES_EXCHANGE, frames_routing_key(line_id, camera_id), body, properties, mandatory=confirm
            )
            ids.append(properties.message_id)
        if not confirm:
            declare_line(channel, line_id)  # answered only after the burst before it was read
    finally:
        connection.close()
    return ids


def publish_decisions(amqp_url: str, decisions: Iterable[DecisionMessage]) -> None:
    """Publish decisions as a worker does (confirmed, routed by line and bin)."""
    connection = connect(amqp_url, role="publisher")
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        declare_exchanges(channel)
        for decision in decisions:
            properties = pika.BasicProperties(
                content_type="application/json", message_id=decision.frame_id, delivery_mode=2
            )
            key = decisions_routing_key(decision.line_id, decision.bin)
            channel.basic_publish(DECISIONS_EXCHANGE, key, decision.to_json(), properties)
    finally:
        connection.close()
