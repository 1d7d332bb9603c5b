"""Who creates the broker's topology: each process at start (``declare``) or the broker (``check``).

With ``--topology declare`` (the default, for a development broker where the user has every
right) a process declares what it uses, as :mod:`sortline.topology` describes it. At a plant the
roles have no configure right (see :mod:`sortline.broker_definitions`): the topology comes from
the definitions RabbitMQ imports at boot, and ``--topology check`` only checks, passively, that
what the process uses exists; passive declarations need no right at all.

Either way a refusal is a :class:`BrokerSetupError` that names what is missing or refused, never a
silent reconnect loop: retrying cannot grant a right or create a queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from sortline.topology import (
    DEAD_LETTER_EXCHANGE,
    DECISIONS_EXCHANGE,
    FRAMES_EXCHANGE,
    MODEL_EVENTS_EXCHANGE,
    decisions_queue,
    declare_decisions_queue,
    declare_exchanges,
    declare_line,
    frames_queue,
)

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel

TopologyMode = Literal["declare", "check"]

#: AMQP reply codes with which the broker closes a channel.
ACCESS_REFUSED = 403
NOT_FOUND = 404


class BrokerSetupError(Exception):
    """The broker refuses this user what it needs, or lacks the topology it needs: a set-up fault
    that retrying cannot mend, so processes exit 2 on it."""


@contextmanager
def refusals_explained(mode: TopologyMode) -> Iterator[None]:
    """Turn the broker's channel close into a :class:`BrokerSetupError` that says what to do.

    Around anything that sets a process up on the broker (declaring or checking the topology,
    consuming) or that an unauthorised user must not retry (publishing).
    """
    from pika.exceptions import ChannelClosedByBroker

    try:
        yield
    except ChannelClosedByBroker as error:
        if error.reply_code == ACCESS_REFUSED:
            hint = (
                "declare the topology in the broker's definitions and run with --topology check"
                if mode == "declare"
                else "is this the role's own user? (its rights: python -m sortline.broker_definitions)"
            )
            raise BrokerSetupError(f"{error.reply_text}: {hint}") from None
        if error.reply_code == NOT_FOUND and mode == "check":
            raise BrokerSetupError(
                f"{error.reply_text}: with --topology check the broker's definitions must declare it "
                "(python -m sortline.broker_definitions)"
            ) from None
        raise


def _check(channel: BlockingChannel, exchanges: tuple[str, ...], queues: tuple[str, ...]) -> None:
    for exchange in exchanges:
        channel.exchange_declare(exchange=exchange, passive=True)
    for queue in queues:
        channel.queue_declare(queue=queue, passive=True)


def prepare_line(channel: BlockingChannel, line_id: str, mode: TopologyMode) -> str:
    """What a line's camera or worker uses, declared or checked; returns the frames queue's name."""
    with refusals_explained(mode):
        if mode == "declare":
            return declare_line(channel, line_id)
        exchanges = (FRAMES_EXCHANGE, DECISIONS_EXCHANGE, DEAD_LETTER_EXCHANGE, MODEL_EVENTS_EXCHANGE)
        _check(channel, exchanges, (frames_queue(line_id),))
        return frames_queue(line_id)


def prepare_decisions_queue(channel: BlockingChannel, line_id: str, mode: TopologyMode) -> str:
    """The line's decisions queue, declared or checked: what its ejector bridge consumes."""
    with refusals_explained(mode):
        if mode == "declare":
            declare_exchanges(channel)
            return declare_decisions_queue(channel, line_id)
        _check(channel, (DECISIONS_EXCHANGE,), (decisions_queue(line_id),))
        return decisions_queue(line_id)


def prepare_exchanges(channel: BlockingChannel, mode: TopologyMode) -> None:
    """The exchanges (and the dead-letter queue), declared or checked: for the trainer's promotion."""
    with refusals_explained(mode):
        if mode == "declare":
            declare_exchanges(channel)
        else:
            _check(channel, (MODEL_EVENTS_EXCHANGE,), ())
