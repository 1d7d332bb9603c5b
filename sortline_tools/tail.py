"""``sortline tail``: a line's decisions as they are made, one readable row per item (or ``--json``).

It watches through a queue of its own (:func:`sortline.topology.declare_tap`: exclusive, gone with
its connection), bound only to the bins asked for, so the broker does the filtering and nothing
is ever taken from the line's decisions queue that its ejector bridge consumes. What is decided
while the tail is disconnected is not shown: it reconnects (one log line per attempt,
:class:`sortline.broker_retry.BrokerRetry`) and follows on.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import datetime
from typing import Literal, TextIO

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from pydantic import Field, ValidationError

from sortline.broker_retry import BrokerRetry
from sortline.connection import connection_parameters
from sortline.labels import BINS, RESIDUAL
from sortline.messages import DecisionMessage, Identifier
from sortline.provisioning import BrokerSetupError, refusals_explained
from sortline.readable import decision_confidence_text, reason_text
from sortline.settings import SortlineSettings, redact_url
from sortline.topology import DECISIONS_EXCHANGE, decisions_routing_key, declare_exchanges, declare_tap

log = logging.getLogger(__name__)

#: How long the consumer waits for a decision before it looks at its stop flag again.
POLL_SECONDS = 0.2
COLUMNS = f"{'decided':<12}  {'camera':<10} {'item':<24} {'bin':<9} {'confidence':>10} {'latency':>10}  why"


class TailSettings(SortlineSettings):
    """Follow a line's decisions live: time, camera, item, bin, confidence, latency and reason.

    Watches through a queue of its own: the line's ejector bridge loses nothing. Ctrl-C stops it.
    """

    line_id: Identifier = Field(description="The line to watch.")
    bins: list[Literal[BINS]] = Field(  # type: ignore[valid-type]
        [], description="Only decisions for these bins (e.g. --bins plastic,metal); empty: every bin."
    )
    residual: bool = Field(
        False, description="Only items sent to residual, with why (same as --bins residual)."
    )
    cameras: list[Identifier] = Field(
        [], max_length=1024, description="Only these cameras; empty: every one."
    )
    json_output: bool = Field(
        False, alias="json", description="One decision per line as the JSON the worker published, no table."
    )
    count: int = Field(0, ge=0, le=10_000_000, description="Stop after this many decisions; 0: follow on.")

    def binding_keys(self) -> list[str]:
        """The routing keys to bind: one per bin asked for, else all of the line's."""
        bins = sorted({*self.bins, *([RESIDUAL] if self.residual else [])}, key=BINS.index)
        return [decisions_routing_key(self.line_id, b) for b in bins] or [f"decisions.{self.line_id}.#"]


def decision_row(decision: DecisionMessage) -> str:
    """One table row: when it was decided (local time), where, what, how sure, how late, and why."""
    decided = datetime.fromisoformat(decision.decided_at).astimezone().strftime("%H:%M:%S.%f")[:-3]
    item = decision.item_id or decision.source or decision.frame_id
    confidence = decision_confidence_text(decision)
    latency = f"{decision.latency_ms:.1f} ms"
    row = f"{decided:<12}  {decision.camera_id:<10} {item[-24:]:<24} {decision.bin:<9} {confidence:>10} "
    return f"{row}{latency:>10}  {reason_text(decision)}".rstrip()


class BrokerRefused(Exception):
    """The broker refused our credentials or our tap: retrying will not help."""


class Follower:
    """Prints each decision that passes the filters, until ``stop`` or ``--count``."""

    def __init__(self, settings: TailSettings, out: TextIO, stop: threading.Event) -> None:
        self.settings, self.out, self.stop = settings, out, stop
        self.shown = 0
        self._url = settings.amqp_url.get_secret_value()

    def run(self) -> None:
        """Follow until done, reconnecting whenever the broker goes away."""
        retry = BrokerRetry(self._url, log, self.settings.max_retry_seconds)
        if not self.settings.json_output:
            self._print(COLUMNS)
        while not self._done():
            connection = None
            try:
                connection = pika.BlockingConnection(
                    connection_parameters(self._url, "tail", self.settings.line_id, self.settings.tls_files())
                )
                channel = connection.channel()
                queue = self._open_tap(channel)
                retry.connected()
                keys = ", ".join(self.settings.binding_keys())
                log.info("following %s on %s", keys, redact_url(self._url))
                self._consume(channel, queue)
            except (ProbableAuthenticationError, ProbableAccessDeniedError, BrokerSetupError) as error:
                raise BrokerRefused(f"broker at {redact_url(self._url)} refused us: {error}") from None
            except (AMQPConnectionError, AMQPChannelError, OSError) as error:  # OSError: DNS, TLS
                self.stop.wait(retry.failed(error))
            finally:
                if connection is not None and connection.is_open:
                    connection.close()

    def _open_tap(self, channel: BlockingChannel) -> str:
        """The exchange declared (a development broker) or checked (a plant's), then our own queue."""
        with refusals_explained(self.settings.topology):
            if self.settings.topology == "declare":
                declare_exchanges(channel)
            else:
                channel.exchange_declare(DECISIONS_EXCHANGE, passive=True)
            return declare_tap(channel, DECISIONS_EXCHANGE, self.settings.binding_keys())

    def _consume(self, channel: BlockingChannel, queue: str) -> None:
        for method, _properties, body in channel.consume(
            queue, auto_ack=True, inactivity_timeout=POLL_SECONDS
        ):
            if self._done():
                return
            if method is not None:
                self.show(body)

    def show(self, body: bytes) -> None:
        """Print one message if it is a decision that passes the filters."""
        try:
            decision = DecisionMessage.from_json(body)
        except (ValidationError, ValueError) as error:
            log.debug("not a decision, skipped: %s", str(error)[:200])
            return
        if self.settings.cameras and decision.camera_id not in self.settings.cameras:
            return
        self._print(body.decode().strip() if self.settings.json_output else decision_row(decision))
        self.shown += 1

    def _done(self) -> bool:
        return self.stop.is_set() or 0 < self.settings.count <= self.shown

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)  # flushed: people pipe it to grep and jq


def run_tail(settings: TailSettings, out: TextIO) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        Follower(settings, out, stop).run()
    except BrokerRefused as error:
        print(f"sortline tail: {error}", file=sys.stderr)
        return 2
    return 0
