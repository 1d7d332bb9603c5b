"""What the worker publishes: decisions (to ``sortline.decisions``) and dead letters (to the DLX)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel

from classifier_worker.frames import Delivery
from sortline.amqp_tables import encoded_size
from sortline.messages import (
    DEAD_LETTER_DETAIL_HEADER,
    DEAD_LETTER_DROPPED_HEADER,
    DEAD_LETTER_REASON_HEADER,
    REVIEW_DECISION_HEADER,
    REVIEW_SHADOW_HEADER,
    REVIEW_WHY_HEADER,
    DeadLetterReason,
    DecisionMessage,
    FrameHeaders,
)
from sortline.topology import (
    DEAD_LETTER_EXCHANGE,
    DECISIONS_EXCHANGE,
    REVIEW_EXCHANGE,
    decisions_routing_key,
    review_routing_key,
)

log = logging.getLogger(__name__)


def publish_decision(channel: BlockingChannel | Channel, message: DecisionMessage) -> None:
    """Publish one decision (the caller tracks its confirm).

    ``message_id`` is the frame id, so a consumer can drop the duplicate that a redelivered frame
    may cause; the body says ``redelivered`` when that can be the case. ``mandatory``: a decision
    that no queue takes comes back (``basic.return``) to be counted, instead of vanishing.
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
        mandatory=True,
    )


#: Longest reason detail and list of dropped header names on a dead letter, in UTF-8 bytes.
MAX_DETAIL_BYTES = 512
#: What the rest of a dead letter's content header (content type, message id, flags, frame
#: overhead) and our own headers may take of a frame; the sender's headers get the remainder.
HEADER_FRAME_RESERVE = 4096
#: Frame headers of the contract, kept first when a dead letter cannot carry all of a frame's.
_CONTRACT_HEADERS = tuple(FrameHeaders.model_fields)


def publish_dead_letter(
    channel: BlockingChannel | Channel,
    delivery: Delivery,
    reason: DeadLetterReason,
    detail: str,
    header_budget: int,
) -> None:
    """Publish the frame to the DLX with its reason, under its original routing key.

    The body is the frame's, unchanged, and so are its headers as far as ``header_budget`` bytes
    and pika's encoder allow (see :func:`dead_letter_headers`). The caller catches what still fails.
    """
    headers = dead_letter_headers(delivery.headers, reason, detail, header_budget)
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


def dead_letter_headers(
    original: dict[Any, Any] | None, reason: DeadLetterReason, detail: str, budget: int
) -> dict[Any, Any]:
    """The frame's headers plus reason and detail, never larger than the broker's frame allows.

    A frame whose headers nearly fill an AMQP frame would, with a reason added, become a content
    header the broker refuses by closing the connection (see :func:`bounded_headers`).
    """
    ours = {DEAD_LETTER_REASON_HEADER: reason.value, DEAD_LETTER_DETAIL_HEADER: _bounded(detail)}
    return bounded_headers(original, ours, budget)


def bounded_headers(original: dict[Any, Any] | None, ours: dict[str, Any], budget: int) -> dict[Any, Any]:
    """``ours``, then the frame's headers: the contract's first, the others in order, while they fit
    ``budget`` encoded bytes; a header pika cannot encode or that does not fit is left out and
    named in ``x-sortline-dropped-headers``."""
    headers: dict[Any, Any] = dict(ours)
    original = original or {}
    skip = {*ours, DEAD_LETTER_DROPPED_HEADER}
    names = [name for name in _CONTRACT_HEADERS if name in original]
    names += [name for name in original if name not in _CONTRACT_HEADERS and name not in skip]
    used, dropped = 0, []
    for name in names:
        try:
            size = encoded_size({name: original[name]})
        except Exception:  # a value pika cannot write back (whatever the client sent)
            size = None
        if size is None or used + size > budget:
            dropped.append(name if isinstance(name, str) else repr(name))
            continue
        headers[name] = original[name]
        used += size
    if dropped:
        headers[DEAD_LETTER_DROPPED_HEADER] = _bounded(", ".join(dropped))
    return headers


def publish_review(
    channel: BlockingChannel | Channel,
    delivery: Delivery,
    decision: DecisionMessage,
    why: str,
    header_budget: int,
    shadow: DecisionMessage | None = None,
) -> None:
    """A copy of a decided frame (its views, its headers) for a person to label, with what the line
    decided (and, for a shadow disagreement, what the candidate would have)."""
    ours = {REVIEW_WHY_HEADER: why, REVIEW_DECISION_HEADER: decision.to_json().decode()}
    if shadow is not None:
        ours[REVIEW_SHADOW_HEADER] = shadow.to_json().decode()
    channel.basic_publish(
        REVIEW_EXCHANGE,
        review_routing_key(decision.line_id, why),
        delivery.body,
        pika.BasicProperties(
            content_type=delivery.content_type,
            message_id=f"{decision.frame_id}.{why}",
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=bounded_headers(delivery.headers, ours, header_budget),
        ),
    )


def _bounded(text: str) -> str:
    return text.encode("utf-8", errors="replace")[:MAX_DETAIL_BYTES].decode("utf-8", errors="ignore")
