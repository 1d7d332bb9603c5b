"""A bounded memory of recent frame ids, so that a frame sent twice is decided once.

A camera that loses a publisher confirm (its connection drops after the broker took the frame)
sends the frame again under the same ``message_id``; a worker whose ack was lost gets its frame
redelivered. Either way the frame's decision is already out. Ids are remembered while their frame
is in flight and, once its outcome is confirmed, among the last ``capacity`` settled ones; a frame
given back to the broker (requeued) is forgotten, so its redelivery is decided as it should be.

The memory is per worker: a repeat that reaches another worker of the line is decided again, with
the same ``frame_id`` and ``message_id``, which consumers of decisions de-duplicate on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RecentFrames:
    """Frame ids in flight and recently settled; only ever touched by the pika thread."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._in_flight: set[Hashable] = set()
        self._settled: OrderedDict[Hashable, None] = OrderedDict()

    def begin(self, frame_key: Hashable | None) -> bool:
        """Mark ``frame_key`` in flight; False if it is a repeat (in flight or settled lately).

        A frame without a key (no ``message_id``) is never a repeat.
        """
        if frame_key is None or self.capacity == 0:
            return True
        if frame_key in self._in_flight or frame_key in self._settled:
            return False
        self._in_flight.add(frame_key)
        return True

    def settled(self, frame_key: Hashable | None) -> None:
        """Its outcome is confirmed: remember it among the last ``capacity`` settled ids."""
        if frame_key is None or self.capacity == 0:
            return
        self._in_flight.discard(frame_key)
        self._settled[frame_key] = None
        if len(self._settled) > self.capacity:
            self._settled.popitem(last=False)

    def released(self, frame_key: Hashable | None) -> None:
        """It went back to the broker undecided: its next delivery is not a repeat."""
        self._in_flight.discard(frame_key)

    def forget_in_flight(self) -> None:
        """The channel closed: every unsettled frame is back in the queue."""
        self._in_flight.clear()
