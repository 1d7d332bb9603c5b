"""The review queue of a line, held open while a person works through it.

Items are consumed with a small prefetch and acked only once labelled and written (or skipped),
so an item the page has shown but nobody labelled goes back to the queue when the tool stops.
pika is not thread-safe: the page's thread hands labels over with ``add_callback_threadsafe``.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sortline import amqp_tables
from sortline.connection import TlsFiles, connection_parameters
from sortline.messages import REVIEW_DECISION_HEADER, REVIEW_SHADOW_HEADER, REVIEW_WHY_HEADER
from sortline.topology import review_queue

log = logging.getLogger(__name__)

#: Items held from the queue at once: enough to label without waiting, few enough to give back.
PREFETCH = 20


@dataclass
class ReviewItem:
    key: str  # unique while the tool runs
    message_id: str
    why: str
    views: list[bytes]
    content_type: str
    decision: dict
    shadow: dict | None
    delivery_tag: int = field(repr=False, default=0)


def split_body(body: bytes, view_bytes: list[int] | None) -> list[bytes]:
    if not view_bytes or sum(view_bytes) != len(body):
        return [body]
    views, start = [], 0
    for size in view_bytes:
        views.append(body[start : start + size])
        start += size
    return views


class ReviewQueue:
    """Consumes ``sortline.review.<line>`` on a thread of its own until ``close``."""

    def __init__(self, url: str, tls: TlsFiles, line_id: str) -> None:
        import pika

        amqp_tables.install()  # review copies keep whatever headers their frame had
        self._pika = pika
        self._parameters = connection_parameters(url, "reviewer", line_id, tls)
        self.line_id = line_id
        self.pending: OrderedDict[str, ReviewItem] = OrderedDict()
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self._connection = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-queue", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("could not start consuming the review queue")

    def next(self) -> ReviewItem | None:
        with self._lock:
            return next(iter(self.pending.values()), None)

    def settle(self, key: str, keep: Callable[[ReviewItem], None] | None) -> bool:
        """Take item ``key`` out: run ``keep`` on it (write it), then ack it on the pika thread."""
        with self._lock:
            item = self.pending.pop(key, None)
        if item is None:
            return False
        if keep is not None:
            keep(item)
        self._connection.add_callback_threadsafe(lambda: self._channel.basic_ack(item.delivery_tag))
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        self._connection = self._pika.BlockingConnection(self._parameters)
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=PREFETCH)
        self._channel.basic_consume(review_queue(self.line_id), self._on_message)
        self._ready.set()
        try:
            while not self._stop.is_set():
                self._connection.process_data_events(time_limit=0.1)
        finally:
            if self._connection.is_open:
                self._connection.close()

    def _on_message(self, _channel, method, properties, body: bytes) -> None:
        headers = properties.headers or {}
        shadow = headers.get(REVIEW_SHADOW_HEADER)
        item = ReviewItem(
            key=str(next(self._keys)),
            message_id=str(properties.message_id or method.delivery_tag),
            why=str(headers.get(REVIEW_WHY_HEADER, "?")),
            views=split_body(body, headers.get("view_bytes")),
            content_type=properties.content_type or "image/jpeg",
            decision=json.loads(headers.get(REVIEW_DECISION_HEADER) or "{}"),
            shadow=json.loads(shadow) if shadow else None,
            delivery_tag=method.delivery_tag,
        )
        with self._lock:
            self.pending[item.key] = item
