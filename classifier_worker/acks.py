"""Acking frames with as few AMQP frames as the order of their outcomes allows.

Every ``basic.ack`` on a quorum queue is a command written to the broker's Raft log, and on a
machine whose cores the broker shares with the worker that costs the worker throughput: measured
in bench section (f), a malformed frame settled on its own cost the broker ~1 CPU-ms, three times
what it cost in a burst. When the outcomes of a run of consecutive deliveries are all confirmed,
one ``ack(multiple=True)`` settles the whole run.

A frame settled out of order (its neighbours still waiting for a batch) is acked on its own at
once: coalescing must never make a finished frame wait for an unfinished one, or one stuck frame
would hold the prefetch window shut.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

_TO_ACK = "to-ack"
_DONE = "done"  # acked on its own, or nacked: the broker no longer counts it as unacked


@dataclass
class Acks:
    """What to send: one multiple ack up to ``up_to`` (if any), then single acks."""

    up_to: int | None = None
    singles: list[int] = field(default_factory=list)


class AckWindow:
    """The delivery tags of one channel, in delivery order, and which are ready to be acked.

    Tags are registered as they are delivered (``delivered``), marked when their outcome is
    confirmed (``confirmed``) or when the frame was given back some other way (``released``, e.g.
    a nack), and ``take`` says which acks to send.
    """

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._state: dict[int, str] = {}

    def __len__(self) -> int:
        """Tags delivered and not yet passed over by an ack."""
        return len(self._order)

    def delivered(self, tag: int) -> None:
        self._order.append(tag)

    def confirmed(self, tag: int) -> None:
        self._state[tag] = _TO_ACK

    def released(self, tag: int) -> None:
        self._state[tag] = _DONE

    def take(self) -> Acks:
        """The acks that settle every confirmed tag; the leading settled run becomes one ack."""
        acks = Acks()
        while self._order and self._order[0] in self._state:
            tag = self._order.popleft()
            if self._state.pop(tag) == _TO_ACK:
                acks.up_to = tag  # a multiple ack skips tags that are already acked or nacked
        for tag, state in self._state.items():
            if state == _TO_ACK:
                acks.singles.append(tag)
                self._state[tag] = _DONE
        return acks
