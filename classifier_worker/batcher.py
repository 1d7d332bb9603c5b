"""Dynamic micro-batching with Triton's semantics.

A batch closes when it holds ``max_batch`` frames or ``max_delay`` after its first frame arrived,
whichever comes first. When the model is the bottleneck, frames wait in the queue and batches fill
at once (throughput); when the line is quiet, a lone frame waits at most ``max_delay`` (latency).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """A thread-safe FIFO whose consumer takes batches; ``arrival`` says when an item arrived."""

    def __init__(self, max_batch: int, max_delay_s: float, arrival: Callable[[T], float]) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._arrival = arrival
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()

    def put(self, item: T) -> None:
        self._queue.put(item)

    def qsize(self) -> int:
        return self._queue.qsize()

    def next_batch(self, idle_timeout: float) -> list[T]:
        """Up to ``max_batch`` items; empty if nothing arrived within ``idle_timeout`` seconds."""
        try:
            first = self._queue.get(timeout=idle_timeout)
        except queue.Empty:
            return []
        batch = [first]
        closes_at = self._arrival(first) + self.max_delay_s
        while len(batch) < self.max_batch:
            remaining = closes_at - time.monotonic()
            try:
                # Past the deadline we still take what is already waiting, without waiting more.
                batch.append(
                    self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch
