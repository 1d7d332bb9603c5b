"""What the classifier said about this camera's items: a tap on the line's decisions, for people.

The live view and ``--annotate`` label each item with its bin. The tap is a queue of its own
(exclusive, gone with the connection): it never takes a decision from the ejector bridge's queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass

from pydantic import ValidationError

from camera_agent.items.annotate import Verdict
from sortline import amqp_tables
from sortline.backoff import backoff_delays
from sortline.connection import TlsFiles, connection_parameters
from sortline.messages import DecisionMessage
from sortline.readable import decision_confidence_text, reason_text
from sortline.topology import DECISIONS_EXCHANGE, declare_exchanges, declare_tap

log = logging.getLogger(__name__)

#: Decisions remembered (a belt shows far fewer items at once).
RECENT = 200


@dataclass(frozen=True, slots=True)
class Decided:
    item_id: str
    bin: str
    confidence: float
    residual_reason: str | None
    latency_ms: float
    received_ns: int  # when this tap had it
    confidence_shown: str  # as people read it: 0.9994, not 1.0000
    why: str  # a residual's reason with its figures, else ''


class VerdictWatcher:
    """Consumes ``decisions.<line>.#`` of this camera on a thread of its own, reconnecting."""

    def __init__(self, url: str, tls: TlsFiles, line_id: str, camera_id: str, max_retry_s: float) -> None:
        self._url, self._tls, self._line_id, self._camera_id = url, tls, line_id, camera_id
        self._max_retry_s = max_retry_s
        self._recent: OrderedDict[str, Decided] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verdicts", daemon=True)
        amqp_tables.install()
        self._thread.start()

    def verdicts(self) -> dict[str, Verdict]:
        with self._lock:
            return {item: Verdict(d.bin, d.confidence) for item, d in self._recent.items()}

    def recent(self) -> list[dict]:
        """Newest first, for the live page."""
        with self._lock:
            return [asdict(d) for d in reversed(self._recent.values())]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        delays = backoff_delays(cap=self._max_retry_s)
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as error:  # the view is for people: never take the camera down with it
                log.info("decisions tap lost (%r); retrying", error)
                self._stop.wait(next(delays))

    def _consume(self) -> None:
        import pika

        parameters = connection_parameters(self._url, "camera-view", self._line_id, self._tls)
        connection = pika.BlockingConnection(parameters)
        try:
            channel = connection.channel()
            declare_exchanges(channel)
            queue = declare_tap(channel, DECISIONS_EXCHANGE, [f"decisions.{self._line_id}.#"])
            channel.basic_consume(queue, self._on_decision, auto_ack=True)
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.1)
        finally:
            if connection.is_open:
                connection.close()

    def _on_decision(self, _channel, _method, _properties, body: bytes) -> None:
        try:
            decision = DecisionMessage.from_json(body)
        except (ValidationError, ValueError):
            return
        if decision.camera_id != self._camera_id or decision.item_id is None:
            return
        seen = Decided(decision.item_id, decision.bin, decision.confidence, decision.residual_reason,
                       decision.latency_ms, time.time_ns(), decision_confidence_text(decision),
                       reason_text(decision))  # fmt: skip
        with self._lock:
            self._recent[decision.item_id] = seen
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
