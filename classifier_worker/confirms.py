"""Publisher confirms without waiting for each one.

The blocking pika channel waits for the broker's confirm of every publish before the next; with a
quorum queue behind the exchange each confirm waits for a disk write. Here publishes stay in flight
and each frame is acked when the confirm of its outcome arrives, so one round trip covers many
publishes. A frame is still acked only after its decision (or dead letter) is confirmed.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from pika.spec import Basic

T = TypeVar("T")


class ConfirmTracker(Generic[T]):
    """Maps the channel's publish sequence numbers to what each publish was for.

    ``on_confirm`` is pika's ack/nack callback (it runs inside pika's I/O loop, so it only records);
    the consumer then takes the settled items with ``take_settled`` and acks their frames.
    """

    def __init__(self) -> None:
        self._next_sequence = 1  # the broker numbers a channel's publishes from 1 once confirms are on
        self._in_flight: dict[int, T] = {}
        self._settled: deque[tuple[T, bool]] = deque()

    def __len__(self) -> int:
        return len(self._in_flight)

    def sent(self, item: T) -> None:
        self._in_flight[self._next_sequence] = item
        self._next_sequence += 1

    def on_confirm(self, frame) -> None:
        method = frame.method
        confirmed = isinstance(method, Basic.Ack)
        if method.multiple:
            sequences = [s for s in self._in_flight if s <= method.delivery_tag]  # dict keeps send order
        else:
            sequences = [method.delivery_tag]
        for sequence in sequences:
            item = self._in_flight.pop(sequence, None)
            if item is not None:
                self._settled.append((item, confirmed))

    def take_settled(self) -> list[tuple[T, bool]]:
        """(item, confirmed) pairs since the last call; False means the broker nacked the publish."""
        settled = list(self._settled)
        self._settled.clear()
        return settled
