"""Watching what a line publishes: an exclusive queue bound to an exchange, collecting each message.

Used by the tests, the benchmark and the demo alike. Dead letters carry whatever headers their
frame had, so a tap decodes with :mod:`sortline.amqp_tables` installed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika

from sortline import amqp_tables
from sortline.connection import TlsFiles
from sortline.messages import DecisionMessage
from sortline.topology import DEAD_LETTER_EXCHANGE, DECISIONS_EXCHANGE, declare_exchanges, declare_tap
from sortline_dev.broker import connect


@dataclass
class Received:
    routing_key: str
    properties: pika.BasicProperties
    body: bytes
    received_ns: int  # wall clock when the tap took it

    def decision(self) -> DecisionMessage:
        return DecisionMessage.from_json(self.body)


class Tap:
    """An exclusive (server-named) queue on ``exchange`` bound with ``binding_key``."""

    def __init__(self, amqp_url: str, exchange: str, binding_key: str, tls: TlsFiles | None = None) -> None:
        amqp_tables.install()
        self.connection = connect(amqp_url, tls, role="tap")
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)  # the exchange must exist before we bind to it
        self.queue = declare_tap(self.channel, exchange, [binding_key])
        self.received: list[Received] = []
        self.channel.basic_consume(self.queue, self._on_message, auto_ack=True)

    def _on_message(self, _channel, method, properties, body: bytes) -> None:
        self.received.append(Received(method.routing_key, properties, body, time.time_ns()))

    @classmethod
    def for_decisions(cls, amqp_url: str, line_id: str, tls: TlsFiles | None = None) -> Tap:
        """Every decision of ``line_id``, whatever its bin."""
        return cls(amqp_url, DECISIONS_EXCHANGE, f"decisions.{line_id}.#", tls)

    @classmethod
    def for_dead_letters(cls, amqp_url: str, line_id: str) -> Tap:
        """Every dead letter of ``line_id``'s frames (dead letters keep the frame's routing key)."""
        return cls(amqp_url, DEAD_LETTER_EXCHANGE, f"frames.{line_id}.#")

    def poll(self, seconds: float = 0.05) -> int:
        """Take what arrives within ``seconds``; how many messages arrived so far."""
        self.connection.process_data_events(time_limit=seconds)
        return len(self.received)

    def collect(self, count: int, timeout: float) -> list[Received]:
        """Wait until ``count`` messages arrived or ``timeout`` passed; return what arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            self.poll(0.1)
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
def opened(tap: Tap) -> Iterator[Tap]:
    try:
        yield tap
    finally:
        tap.close()


def decisions_tap(amqp_url: str, line_id: str, tls: TlsFiles | None = None):
    """:meth:`Tap.for_decisions` for a ``with`` block."""
    return opened(Tap.for_decisions(amqp_url, line_id, tls))


def dead_letter_tap(amqp_url: str, line_id: str):
    """:meth:`Tap.for_dead_letters` for a ``with`` block."""
    return opened(Tap.for_dead_letters(amqp_url, line_id))
