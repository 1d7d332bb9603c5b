"""The bounded buffer between capture and publishing.

While the broker is away, a live camera keeps producing frames. They wait here; once the buffer is
full the oldest are dropped (a fresh frame beats an old one) and counted. Replayed files and
folders never drop: their capture simply waits for room, so a replay loses nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameBuffer(Generic[T]):
    """A thread-safe bounded FIFO with drop-oldest or blocking behaviour chosen per ``put``."""

    def __init__(self, capacity: int, on_drop: Callable[[T], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._on_drop = on_drop
        self._changed = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)

    def put(self, item: T, *, drop_oldest: bool, stop: threading.Event | None = None) -> bool:
        """Add ``item``; when full, drop the oldest or wait for room. False if stopped while waiting."""
        with self._changed:
            while len(self._items) >= self.capacity:
                if drop_oldest:
                    dropped = self._items.popleft()
                    if self._on_drop:
                        self._on_drop(dropped)
                    break
                if stop is not None and stop.is_set():
                    return False
                self._changed.wait(0.1)
            self._items.append(item)
            self._changed.notify_all()
            return True

    def get(self, timeout: float) -> T | None:
        """The oldest item, or None if none arrived within ``timeout`` (or the buffer is closed and empty)."""
        with self._changed:
            if not self._items and not self._closed:
                self._changed.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    def close(self) -> None:
        """No more items will come; ``get`` returns None once the buffer is empty."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def drained(self) -> bool:
        with self._changed:
            return self._closed and not self._items
