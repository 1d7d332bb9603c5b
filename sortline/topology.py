"""Exchange, queue and routing-key names of contract v1, and the idempotent declarations.

Every component declares what it uses at start and after every reconnect; declaring the same
thing twice is harmless as long as every declarer uses the same arguments, which is why the
arguments live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # pika is only needed by the processes that talk to the broker
    from pika.adapters.blocking_connection import BlockingChannel

FRAMES_EXCHANGE: Final = "sortline.frames"
DECISIONS_EXCHANGE: Final = "sortline.decisions"
DEAD_LETTER_EXCHANGE: Final = "sortline.dead-letters"
DEAD_LETTER_QUEUE: Final = "sortline.dead-letters"
MODEL_EVENTS_EXCHANGE: Final = "sortline.models"
#: Items the line found hard (abstained, shadow disagreements, an audit sample), for a person to label.
REVIEW_EXCHANGE: Final = "sortline.review"
#: A line's review queue keeps at most this many items, the oldest dropped: it is a sample to
#: learn from, not a record, and nothing must grow without bound at a plant.
REVIEW_QUEUE_MAX_LENGTH: Final = 1000

#: A frame that crashed decoding or inference this many times is dead-lettered by the broker.
FRAME_DELIVERY_LIMIT: Final = 5

#: Backpressure: a line's queue holds at most this many frames; beyond it the OLDEST is dropped
#: (and dead-lettered with reason ``maxlen``), because a fresh frame beats an old one. At 100
#: frames/s per line this is 50 s of backlog, longer than any useful deadline. Operators can lower
#: it with a RabbitMQ policy (the smaller of policy and argument applies).
FRAME_QUEUE_MAX_LENGTH: Final = 5000


#: A line's decisions queue holds at most this many (100 items/s for over 15 minutes); beyond it
#: the oldest go, dead-lettered with reason ``maxlen`` and counted by the broker: a decision that old
#: is past its eject time anyway.
DECISIONS_QUEUE_MAX_LENGTH: Final = 100_000


def frames_routing_key(line_id: str, camera_id: str) -> str:
    return f"frames.{line_id}.{camera_id}"


def decisions_routing_key(line_id: str, bin_name: str) -> str:
    return f"decisions.{line_id}.{bin_name}"


def frames_queue(line_id: str) -> str:
    """The work queue of one sorting line; its workers compete for its frames."""
    return f"sortline.frames.{line_id}"


def frames_queue_arguments() -> dict[str, Any]:
    """Quorum queue (replicated, delivery limit, bounded, drop-oldest) that dead-letters to the DLX."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-delivery-limit": FRAME_DELIVERY_LIMIT,
        "x-max-length": FRAME_QUEUE_MAX_LENGTH,
        "x-overflow": "drop-head",
    }


def decisions_queue(line_id: str) -> str:
    """A line's decisions, kept for its ejector bridge whether or not one is running."""
    return f"sortline.decisions.{line_id}"


def decisions_queue_arguments() -> dict[str, Any]:
    """Quorum (replicated), bounded drop-oldest, dead-lettered; one consumer at a time.

    Single active consumer: a second bridge of the line waits as a hot standby and takes over when
    the first goes away, so two bridges never fire the same valves.
    """
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-max-length": DECISIONS_QUEUE_MAX_LENGTH,
        "x-overflow": "drop-head",
        "x-single-active-consumer": True,
    }


def declare_decisions_queue(channel: BlockingChannel, line_id: str) -> str:
    queue = decisions_queue(line_id)
    channel.queue_declare(queue=queue, durable=True, arguments=decisions_queue_arguments())
    channel.queue_bind(queue=queue, exchange=DECISIONS_EXCHANGE, routing_key=f"decisions.{line_id}.#")
    return queue


def review_routing_key(line_id: str, why: str) -> str:
    return f"review.{line_id}.{why}"


def review_queue(line_id: str) -> str:
    """A line's items waiting for a person to label them (``trainer review``)."""
    return f"sortline.review.{line_id}"


def review_queue_arguments() -> dict[str, Any]:
    return {"x-queue-type": "quorum", "x-max-length": REVIEW_QUEUE_MAX_LENGTH, "x-overflow": "drop-head"}


def declare_review_queue(channel: BlockingChannel, line_id: str) -> str:
    queue = review_queue(line_id)
    channel.queue_declare(queue=queue, durable=True, arguments=review_queue_arguments())
    channel.queue_bind(queue=queue, exchange=REVIEW_EXCHANGE, routing_key=f"review.{line_id}.#")
    return queue


def declare_exchanges(channel: BlockingChannel) -> None:
    """The exchanges and the dead-letter queue (bound to every dead letter)."""
    for name in (FRAMES_EXCHANGE, DECISIONS_EXCHANGE, DEAD_LETTER_EXCHANGE, REVIEW_EXCHANGE):
        channel.exchange_declare(exchange=name, exchange_type="topic", durable=True)
    channel.exchange_declare(exchange=MODEL_EVENTS_EXCHANGE, exchange_type="fanout", durable=True)
    # Bounded by the operator's policy (deploy/), not by arguments: changing a queue's arguments
    # later makes every declaration fail with PRECONDITION_FAILED.
    channel.queue_declare(queue=DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue=DEAD_LETTER_QUEUE, exchange=DEAD_LETTER_EXCHANGE, routing_key="#")


def declare_model_events_queue(channel: BlockingChannel, worker_id: str) -> str:
    """A worker's own queue of promotion events: exclusive, gone with its connection.

    Named under ``sortline.`` (not a server-named ``amq.gen-*``) so that the per-site worker user,
    whose permissions cover ``^sortline\\.``, may declare it.
    """
    queue = f"sortline.model-events.{worker_id}"
    channel.queue_declare(queue=queue, exclusive=True, auto_delete=True)
    channel.queue_bind(queue=queue, exchange=MODEL_EVENTS_EXCHANGE)
    return queue


def declare_tap(channel: BlockingChannel, exchange: str, binding_keys: Sequence[str]) -> str:
    """A queue of one's own that gets a copy of what ``exchange`` routes by ``binding_keys``.

    For watching (``sortline tail``, the camera's live view, tests): server-named, exclusive and
    gone with its connection, so it never takes a message from another queue (a line's decisions
    stay in ``sortline.decisions.<line>`` for its ejector bridge) and leaves nothing behind.
    """
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    for key in binding_keys:
        channel.queue_bind(queue, exchange, key)
    return queue


def declare_line(channel: BlockingChannel, line_id: str) -> str:
    """Everything one line needs (its frames and its decisions queue); returns the frames queue."""
    declare_exchanges(channel)
    queue = frames_queue(line_id)
    channel.queue_declare(queue=queue, durable=True, arguments=frames_queue_arguments())
    channel.queue_bind(queue=queue, exchange=FRAMES_EXCHANGE, routing_key=frames_routing_key(line_id, "*"))
    declare_decisions_queue(channel, line_id)
    declare_review_queue(channel, line_id)
    return queue


def delete_line(channel: BlockingChannel, line_id: str) -> None:
    """Remove a line's queues (what a test, the demo or a benchmark run made), with what they hold."""
    channel.queue_delete(frames_queue(line_id))
    channel.queue_delete(decisions_queue(line_id))
    channel.queue_delete(review_queue(line_id))
