"""What the worker publishes: decisions (to ``sortline.decisions``) and dead letters (to the DLX)."""

from __future__ import annotations

import logging
import time

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel

from classifier_worker.frames import Delivery
from sortline.messages import (
    DEAD_LETTER_DETAIL_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DeadLetterReason,
    DecisionMessage,
)
from sortline.topology import DEAD_LETTER_EXCHANGE, DECISIONS_EXCHANGE, decisions_routing_key

log = logging.getLogger(__name__)


def publish_decision(channel: BlockingChannel | Channel, message: DecisionMessage) -> None:
    """Publish one decision (the caller tracks its confirm).

    ``message_id`` is the frame id, so a consumer can drop the duplicate that a redelivered frame
    may cause; the body says ``redelivered`` when that can be the case.
    """
    channel.basic_publish(
        DECISIONS_EXCHANGE,
        decisions_routing_key(message.line_id, message.bin),
        message.to_json(),
        pika.BasicProperties(
            content_type="application/json",
            message_id=message.frame_id,
            delivery_mode=pika.DeliveryMode.Persistent,
            timestamp=int(time.time()),
            headers={"line_id": message.line_id, "camera_id": message.camera_id, "bin": message.bin},
        ),
    )


def publish_dead_letter(
    channel: BlockingChannel, delivery: Delivery, reason: DeadLetterReason, detail: str
) -> None:
    """Publish the frame, unchanged, to the DLX with its reason, under its original routing key."""
    headers = dict(delivery.headers or {})
    headers[DEAD_LETTER_REASON_HEADER] = reason.value
    headers[DEAD_LETTER_DETAIL_HEADER] = detail[:512]
    channel.basic_publish(
        DEAD_LETTER_EXCHANGE,
        delivery.routing_key,
        delivery.body,
        pika.BasicProperties(
            content_type=delivery.content_type,
            message_id=delivery.message_id,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=headers,  # no expiration: a dead letter must not expire in its queue
        ),
    )
    # DEBUG, not WARNING: a camera sending garbage would flood the log; the reason is counted in
    # sortline_dead_letters_total{reason} and kept, with the detail, on the dead letter itself.
    log.debug("dead-lettered frame %s: %s (%s)", delivery.message_id, reason.value, detail)
