"""Test helpers that talk to the real broker: taps on exchanges, a worker in a thread, raw publishing."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika

from classifier_worker.service import Worker, build_worker
from classifier_worker.settings import WorkerSettings
from sortline import amqp_tables
from sortline.topology import (
    DEAD_LETTER_EXCHANGE,
    DECISIONS_EXCHANGE,
    FRAMES_EXCHANGE,
    declare_exchanges,
    declare_line,
    frames_routing_key,
)
from sortline_runtime.model import CascadeModel


@dataclass
class Received:
    routing_key: str
    properties: pika.BasicProperties
    body: bytes


class Tap:
    """An exclusive queue bound to one exchange and key, collecting what arrives."""

    def __init__(self, amqp_url: str, exchange: str, binding_key: str) -> None:
        amqp_tables.install()  # dead letters carry whatever headers their frame had
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)  # the exchange must exist before we bind to it
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, exchange, binding_key)
        self.received: list[Received] = []
        self.channel.basic_consume(self.queue, self._on_message, auto_ack=True)

    def _on_message(self, _ch, method, properties, body) -> None:
        self.received.append(Received(method.routing_key, properties, body))

    def collect(self, count: int, timeout: float) -> list[Received]:
        """Wait until ``count`` messages arrived or ``timeout`` passed; return what arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.1)
        return self.received

    def settle(self, quiet: float = 0.5) -> list[Received]:
        """Keep collecting until nothing arrives for ``quiet`` seconds (catches extra messages)."""
        seen = -1
        while seen != len(self.received):
            seen = len(self.received)
            self.collect(seen + 1, quiet)
        return self.received

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@contextmanager
def tap(amqp_url: str, exchange: str, binding_key: str) -> Iterator[Tap]:
    t = Tap(amqp_url, exchange, binding_key)
    try:
        yield t
    finally:
        t.close()


def decisions_tap(amqp_url: str, line_id: str):
    return tap(amqp_url, DECISIONS_EXCHANGE, f"decisions.{line_id}.#")


def dead_letter_tap(amqp_url: str, line_id: str):
    return tap(amqp_url, DEAD_LETTER_EXCHANGE, f"frames.{line_id}.#")


@contextmanager
def running_worker(
    amqp_url: str, line_id: str, model_dir: Path, model: Any = None, **overrides: Any
) -> Iterator[Worker]:
    """The worker the CLI runs (``build_worker``), in a thread of this process; ``model`` may wrap one."""
    settings = WorkerSettings(
        amqp_url=amqp_url, line_id=line_id, model=model_dir, metrics_port=0, **overrides
    )
    with build_worker(settings, model or CascadeModel.load(model_dir)) as worker:
        thread = threading.Thread(target=worker.run, name=f"worker-{line_id}", daemon=True)
        thread.start()
        assert worker.consumer.ready.wait(10), "worker did not start consuming"
        try:
            yield worker
        finally:
            worker.stop.set()
            thread.join(15)
            assert not thread.is_alive(), "worker did not stop"


def publish_raw(
    amqp_url: str,
    line_id: str,
    messages: list[tuple[bytes, dict[str, Any] | None, str | None]],
    camera_id: str = "cam-1",
    confirm: bool = True,
    expiration: str | None = None,
) -> None:
    """Publish (body, headers, content_type) triples to a line, bypassing the agent.

    With ``confirm`` each publish waits for the broker; without, they are sent in a burst and the
    connection is closed only after a final round trip, so they have all reached the broker.
    """
    batch = uuid.uuid4().hex[:8]  # frame ids are unique, as a camera's are: workers drop repeats
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        if confirm:
            channel.confirm_delivery()
        declare_line(channel, line_id)
        for index, (body, headers, content_type) in enumerate(messages):
            channel.basic_publish(
                FRAMES_EXCHANGE,
                frames_routing_key(line_id, camera_id),
                body,
                pika.BasicProperties(
                    content_type=content_type,
                    headers=headers,
                    message_id=f"{batch}-{index}",
                    expiration=expiration,
                ),
                mandatory=confirm,
            )
        if not confirm:
            # A synchronous call after the burst: the broker answers it only after reading them all.
            declare_line(channel, line_id)
    finally:
        connection.close()


def frame_headers(
    line_id: str, seq: int, source: str | None = None, camera_id: str = "cam-1"
) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "line_id": line_id,
        "camera_id": camera_id,
        "seq": seq,
        "captured_at_ns": time.time_ns(),
    }
    if source is not None:
        headers["source"] = source
    return headers
