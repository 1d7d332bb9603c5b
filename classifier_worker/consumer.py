"""The broker side of the worker: consume, gather micro-batches, publish outcomes, then ack.

All pika calls happen on this one thread (pika is not thread-safe); decoding runs in the
processor's thread pool and inference in ONNX Runtime's own threads. A frame is acked only after
its decision (or its dead letter) has been confirmed by the broker, so a crash at any point loses
nothing: unacked frames go back to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPChannelError, AMQPConnectionError

from classifier_worker.frames import Delivery
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor, Decided, Outcome, Rejected
from classifier_worker.settings import WorkerSettings
from sortline.backoff import backoff_delays
from sortline.messages import DEAD_LETTER_DETAIL_HEADER, DEAD_LETTER_REASON_HEADER
from sortline.settings import redact_url
from sortline.topology import DEAD_LETTER_EXCHANGE, DECISIONS_EXCHANGE, decisions_routing_key, declare_line

log = logging.getLogger(__name__)

#: How often an idle worker looks at its stop flag.
IDLE_POLL_SECONDS = 0.25


class FrameConsumer:
    """Runs until ``stop`` is set, reconnecting (with backoff) whenever the broker goes away."""

    def __init__(
        self,
        settings: WorkerSettings,
        processor: BatchProcessor,
        metrics: WorkerMetrics,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.metrics = metrics
        self.stop = stop
        self._url = settings.amqp_url.get_secret_value()
        self._pending: deque[tuple[float, Delivery]] = deque()
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._consumer_tag: str | None = None
        self.ready = threading.Event()  # set once consuming, for tests and health checks

    def run(self) -> None:
        delays = backoff_delays(cap=self.settings.max_retry_seconds)
        while not self.stop.is_set():
            try:
                self._connect()
                delays = backoff_delays(cap=self.settings.max_retry_seconds)
                self._consume_until_stopped()
                self._drain()
                return
            except (AMQPConnectionError, AMQPChannelError) as error:
                self.ready.clear()
                self._pending.clear()  # unacked deliveries of a dead channel go back to the queue
                delay = next(delays)
                log.warning("broker connection lost (%r); reconnecting in %.1fs", error, delay)
                self.stop.wait(delay)
            finally:
                self._close()

    def _connect(self) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(self._url))
        channel = self._connection.channel()
        channel.confirm_delivery()
        queue = declare_line(channel, self.settings.line_id)
        channel.basic_qos(prefetch_count=self.settings.prefetch)
        self._consumer_tag = channel.basic_consume(queue, self._on_message)
        self._channel = channel
        self.ready.set()
        log.info("consuming %s on %s", queue, redact_url(self._url))

    def _on_message(self, _channel, method, properties, body: bytes) -> None:
        delivery = Delivery(
            delivery_tag=method.delivery_tag,
            redelivered=bool(method.redelivered),
            routing_key=method.routing_key,
            body=body,
            content_type=properties.content_type,
            message_id=properties.message_id,
            expiration=properties.expiration,
            headers=properties.headers,
        )
        self._pending.append((time.monotonic(), delivery))

    def _consume_until_stopped(self) -> None:
        while not self.stop.is_set():
            batch = self._next_batch()
            if batch:
                self._handle(batch)

    def _next_batch(self) -> list[Delivery]:
        """Wait for a first frame, then close the batch at max_batch frames or max_delay after it."""
        assert self._connection is not None
        while not self._pending and not self.stop.is_set():
            self._connection.process_data_events(time_limit=IDLE_POLL_SECONDS)
        if not self._pending:
            return []
        closes_at = self._pending[0][0] + self.settings.max_delay_ms / 1000.0
        while (
            len(self._pending) < self.settings.max_batch and (remaining := closes_at - time.monotonic()) > 0
        ):
            self._connection.process_data_events(time_limit=remaining)
        count = min(len(self._pending), self.settings.max_batch)
        return [self._pending.popleft()[1] for _ in range(count)]

    def _handle(self, batch: list[Delivery]) -> None:
        line = self.settings.line_id
        self.metrics.frames_received.labels(line=line).inc(len(batch))
        redelivered = sum(d.redelivered for d in batch)
        if redelivered:
            self.metrics.redelivered.labels(line=line).inc(redelivered)
        outcomes = self.processor.process(batch)
        started = time.perf_counter()
        for outcome in outcomes:
            self._publish(outcome)
        assert self._channel is not None
        # Batches are handled in delivery order, so one multiple-ack covers the whole batch.
        self._channel.basic_ack(delivery_tag=batch[-1].delivery_tag, multiple=True)
        self.metrics.stage_seconds.labels(stage="publish").observe(time.perf_counter() - started)

    def _publish(self, outcome: Outcome) -> None:
        assert self._channel is not None
        if isinstance(outcome, Decided):
            message = outcome.message
            self._channel.basic_publish(
                DECISIONS_EXCHANGE,
                decisions_routing_key(message.line_id, message.bin),
                message.to_json(),
                pika.BasicProperties(
                    content_type="application/json",
                    message_id=message.frame_id,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    timestamp=int(time.time()),
                    headers={"line_id": message.line_id, "camera_id": message.camera_id, "bin": message.bin},
                ),
            )
            self.metrics.decisions.labels(line=message.line_id, bin=message.bin).inc()
            self.metrics.decision_latency.labels(line=message.line_id).observe(
                (time.time_ns() - message.captured_at_ns) / 1e9
            )
        elif isinstance(outcome, Rejected):
            self._dead_letter(outcome)

    def _dead_letter(self, rejected: Rejected) -> None:
        """Publish the frame, unchanged, to the DLX with its reason; the original is acked after."""
        assert self._channel is not None
        delivery = rejected.delivery
        headers = dict(delivery.headers or {})
        headers[DEAD_LETTER_REASON_HEADER] = rejected.reason.value
        headers[DEAD_LETTER_DETAIL_HEADER] = rejected.detail[:512]
        self._channel.basic_publish(
            DEAD_LETTER_EXCHANGE,
            delivery.routing_key,
            delivery.body,
            pika.BasicProperties(
                content_type=delivery.content_type,
                message_id=delivery.message_id,
                delivery_mode=pika.DeliveryMode.Persistent,
                headers=headers,  # no expiration: a dead letter must not expire in its queue
            ),
        )
        self.metrics.dead_letters.labels(reason=rejected.reason.value).inc()
        log.warning(
            "dead-lettered frame %s: %s (%s)", delivery.message_id, rejected.reason.value, rejected.detail
        )

    def _drain(self) -> None:
        """On stop: take no new frames, finish the ones already handed to us, then close."""
        if self._channel is None or self._consumer_tag is None:
            return
        self._channel.basic_cancel(self._consumer_tag)
        while self._pending:
            count = min(len(self._pending), self.settings.max_batch)
            self._handle([self._pending.popleft()[1] for _ in range(count)])
        log.info("drained; stopping")

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except AMQPConnectionError:
                log.debug("connection already gone while closing")
