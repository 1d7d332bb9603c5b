"""The worker's core: consume on the pika thread, decode in threads, infer on one thread, settle on pika's.

    pika thread          decode pool            inference thread             pika thread
    on_message  ──▶  prepare(delivery)  ──▶  MicroBatcher ─▶ model  ──▶  publish decision/dead letter;
    (submit)         check + decode    │     (max-batch /     (one      when the broker confirms it,
                     starts on arrival │      max-delay)      pass)     ack the frames
                                       └── unusable frame: a dead letter, settled with the next batch

Decoding starts the moment a frame arrives, so it overlaps with inference of the batch before.
Only decodable frames enter the batcher: a camera sending garbage does not shrink the model's
batches. Its bad frames are published and acked together with the next batch's outcomes (or after
at most ``POLL_SECONDS`` on a line without valid frames): the broker then takes them as one burst,
and a run of consecutive frames is acked with one ``ack(multiple=True)`` (``acks.AckWindow``).
pika is not thread-safe: only the pika thread touches the connection; the inference thread hands
its outcomes over with ``add_callback_threadsafe``. A frame is acked only after its decision (or
dead letter) is confirmed, so a crash anywhere loses nothing: unacked frames return to the queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from operator import itemgetter

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

from classifier_worker.acks import AckWindow
from classifier_worker.batcher import MicroBatcher
from classifier_worker.confirms import ConfirmTracker
from classifier_worker.frames import Delivery
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor, Decided, Outcome, Prepared, Rejected, Retry
from classifier_worker.publishing import (
    HEADER_FRAME_RESERVE,
    publish_dead_letter,
    publish_decision,
    publish_review,
)
from classifier_worker.settings import WorkerSettings
from sortline import amqp_tables
from sortline.broker_retry import BrokerRetry
from sortline.connection import connection_parameters
from sortline.dedup import RecentFrames
from sortline.health import Heartbeat
from sortline.messages import DeadLetterReason
from sortline.provisioning import BrokerSetupError, prepare_line, refusals_explained
from sortline.settings import redact_url
from sortline.topology import declare_model_events_queue

log = logging.getLogger(__name__)

#: How long the pika thread blocks waiting for I/O before it looks at its stop flag again.
POLL_SECONDS = 0.05
#: On SIGTERM, the longest wait for in-flight frames to be settled before closing anyway.
DRAIN_TIMEOUT_SECONDS = 30.0


class BrokerRefused(Exception):
    """The broker refused our credentials or permissions."""


@dataclass(frozen=True, slots=True)
class Ready:
    """A decoded frame waiting for a batch: when it arrived, and on which connection it came."""

    arrived: float
    generation: int
    prepared: Prepared


class FrameConsumer:
    """Runs until ``stop`` is set, reconnecting (with backoff) whenever the broker goes away."""

    def __init__(
        self,
        settings: WorkerSettings,
        processor: BatchProcessor,
        metrics: WorkerMetrics,
        stop: threading.Event,
        on_model_event: Callable[[bytes], None] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_model_event = on_model_event  # hot reload (``reload.ModelReloader.on_event``)
        self.on_connected = on_connected  # and a look at the model directory after every connection
        self._worker_id = uuid.uuid4().hex[:12]
        self.processor = processor
        self.metrics = metrics
        self.stop = stop
        self.ready = threading.Event()  # set while consuming, for tests and health checks
        self.inference_heartbeat = Heartbeat()  # liveness: the inference loop turns (sortline.health)
        self._url = settings.amqp_url.get_secret_value()
        # max_delay counts from a frame's delivery, so its decode time is part of the wait, not
        # added to it: a lone frame on a quiet line is decided max_delay after it arrived.
        self._batcher: MicroBatcher[Ready] = MicroBatcher(
            settings.max_batch, settings.max_delay_ms / 1000.0, arrival=lambda item: item.arrived
        )
        # Unusable frames wait here for the next hand-over, tagged with their connection generation.
        self._rejections: queue.SimpleQueue[tuple[int, Rejected]] = queue.SimpleQueue()
        self._generation = 0  # bumped on every (re)connect; outcomes of older channels are dropped
        self._acks = AckWindow()
        self._outstanding = 0  # frames received on the current channel and not yet settled
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._consumer_tag: str | None = None
        self._confirms: ConfirmTracker[Outcome] = ConfirmTracker()
        self._recent = RecentFrames(settings.dedup_window)
        self._acks_due = False  # frames settled without a publish (repeats) wait for the next ack round
        self._header_budget = 0  # bytes a dead letter may spend on the frame's own headers
        self._finished = threading.Event()
        amqp_tables.install()  # no header value may stop the connection (see sortline.amqp_tables)

    def run(self) -> None:
        inference = threading.Thread(target=self._inference_loop, name="inference", daemon=True)
        inference.start()
        try:
            self._run_connected()
        finally:
            self._finished.set()
            inference.join(timeout=DRAIN_TIMEOUT_SECONDS)

    def _run_connected(self) -> None:
        retry = BrokerRetry(self._url, log, self.settings.max_retry_seconds)
        while not self.stop.is_set():
            try:
                self._connect()
                retry.connected()
                while not self.stop.is_set():
                    self._connection.process_data_events(time_limit=POLL_SECONDS)
                    self._ack_confirmed()
                self._drain()
                return
            except (ProbableAuthenticationError, ProbableAccessDeniedError, BrokerSetupError) as error:
                # Wrong credentials or permissions: retrying will not help; the CLI exits 2.
                raise BrokerRefused(f"broker at {redact_url(self._url)} refused us: {error!r}") from None
            except (AMQPConnectionError, AMQPChannelError, OSError) as error:  # OSError: DNS, TLS
                self.ready.clear()
                self.stop.wait(retry.failed(error))
            finally:
                self._close()

    def _connect(self) -> None:
        self._generation += 1
        self._outstanding = 0  # unacked frames of the old channel are back in the queue
        self._acks = AckWindow()
        self._recent.forget_in_flight()
        if self._generation > 1:
            self.metrics.reconnects.inc()
        self._connection = pika.BlockingConnection(
            connection_parameters(self._url, "worker", self.settings.line_id, self.settings.tls_files())
        )
        # The content header of a message must fit one AMQP frame, whose size the broker negotiates.
        self._header_budget = max(0, self._connection._impl.params.frame_max - HEADER_FRAME_RESERVE)
        channel = self._connection.channel()
        self._enable_confirms(channel)
        with refusals_explained(self.settings.topology):  # a refusal exits 2, it is not retried
            queue = prepare_line(channel, self.settings.line_id, self.settings.topology)
            channel.basic_qos(prefetch_count=self.settings.prefetch)
            if self.on_model_event is not None:
                events = declare_model_events_queue(channel, self._worker_id)
                channel.basic_consume(events, self._on_model_event, auto_ack=True)
            self._consumer_tag = channel.basic_consume(queue, self._on_message)
        self._channel = channel
        if self.on_connected is not None:
            self.on_connected()
        self.ready.set()
        log.info("consuming %s on %s", queue, redact_url(self._url))

    def _enable_confirms(self, channel: BlockingChannel) -> None:
        """Confirm mode on the underlying asynchronous channel, so publishes need not wait one by one."""
        self._confirms = ConfirmTracker()
        selected = threading.Event()
        channel._impl.confirm_delivery(self._confirms.on_confirm, callback=lambda _frame: selected.set())
        channel._impl.add_on_return_callback(self._on_returned)
        while not selected.is_set():
            self._connection.process_data_events(time_limit=POLL_SECONDS)

    def _on_returned(self, _channel, method, properties, _body: bytes) -> None:
        """A decision no queue took (the line's decisions queue deleted, a binding gone): count it.

        The broker confirms it all the same, so its frame is acked: deciding it again would find
        no queue either. ``SortlineDecisionsUnroutable`` alerts on the counter.
        """
        line = (properties.headers or {}).get("line_id", self.settings.line_id)
        self.metrics.unroutable.labels(line=str(line)).inc()
        log.debug("decision %s returned unroutable: %s", properties.message_id, method.reply_text)

    def _on_model_event(self, _channel, _method, _properties, body: bytes) -> None:
        self.on_model_event(body)

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
        line = self.settings.line_id
        self.metrics.frames_received.labels(line=line).inc()
        if delivery.redelivered:
            self.metrics.redelivered.labels(line=line).inc()
        self._acks.delivered(method.delivery_tag)
        if not self._recent.begin(frame_key(delivery)):
            # Decided (or in flight) already: its outcome is out, so ack it without a second one.
            self.metrics.duplicates.labels(line=line).inc()
            self._acks.confirmed(method.delivery_tag)
            self._acks_due = True
            return
        self._outstanding += 1
        self.metrics.in_flight.set(self._outstanding)
        future = self.processor.submit(delivery)
        future.add_done_callback(partial(self._on_prepared, self._generation, time.monotonic()))

    def _on_prepared(self, generation: int, arrived: float, future: Future[Prepared | Rejected]) -> None:
        """In a decode thread: a usable frame waits for a batch, an unusable one for the hand-over."""
        result = future.result()  # prepare turns every failure into a Rejected
        if isinstance(result, Rejected):
            self._rejections.put((generation, result))
        else:
            self._batcher.put(Ready(arrived, generation, result))

    def _inference_loop(self) -> None:
        """Batches in, outcomes out; runs until the pika thread has finished and nothing is queued."""
        while not (self._finished.is_set() and self._batcher.qsize() == 0 and self._rejections.empty()):
            self.inference_heartbeat.beat()
            batch = self._batcher.next_batch(idle_timeout=POLL_SECONDS)
            settled: list[tuple[int, Outcome]] = []
            # A reconnect can leave frames of the old channel queued next to those of the new one.
            for generation, items in groupby(batch, key=lambda item: item.generation):
                settled += [(generation, o) for o in self._infer([item.prepared for item in items])]
            settled += self._take_rejections()
            for generation, outcomes in groupby(settled, key=itemgetter(0)):
                self._hand_over(generation, [outcome for _, outcome in outcomes])

    def _take_rejections(self) -> list[tuple[int, Rejected]]:
        rejections = []
        while True:
            try:
                rejections.append(self._rejections.get_nowait())
            except queue.Empty:
                return rejections

    def _infer(self, prepared: list[Prepared]) -> list[Outcome]:
        try:
            return self.processor.infer(prepared)
        except Exception as error:  # never lose frames to a bug: give them back to the broker
            log.exception("batch failed")
            return [Retry(item.frame.delivery, repr(error)) for item in prepared]

    def _hand_over(self, generation: int, outcomes: list[Outcome]) -> None:
        connection = self._connection
        if connection is None:
            return  # disconnected: the broker will deliver these frames again
        try:
            connection.add_callback_threadsafe(partial(self._settle, generation, outcomes))
        except Exception:  # the connection closed under us; same as above
            log.debug("connection gone; %d outcomes dropped for redelivery", len(outcomes))

    def _settle(self, generation: int, outcomes: list[Outcome]) -> None:
        """On the pika thread: publish each outcome (confirms arrive later), requeue the retries."""
        if generation != self._generation or self._channel is None:
            return  # delivery tags of a closed channel mean nothing on this one
        started = time.perf_counter()
        for outcome in outcomes:
            if isinstance(outcome, Retry):
                log.warning(
                    "requeueing frame %s after a failure: %s", outcome.delivery.message_id, outcome.detail
                )
                self._give_back(outcome.delivery, requeue=True)
            else:
                self._publish(outcome)
        self.metrics.in_flight.set(self._outstanding)
        self.metrics.stage_seconds.labels(stage="publish").observe(time.perf_counter() - started)

    def _publish(self, outcome: Decided | Rejected) -> None:
        """Publish a decision or dead letter; its confirm is tracked, not awaited."""
        publisher = self._channel._impl  # non-blocking publish
        try:
            if isinstance(outcome, Decided):
                publish_decision(publisher, outcome.message)
            else:
                publish_dead_letter(
                    publisher, outcome.delivery, outcome.reason, outcome.detail, self._header_budget
                )
        except AMQPError:
            raise  # the connection or channel is gone: reconnect, the frame comes back
        except Exception as error:  # something in the envelope pika cannot write: never stop the line
            self._hand_to_broker(outcome, error)
            return
        self._confirms.sent(outcome)
        if isinstance(outcome, Decided) and outcome.review:
            self._publish_review(outcome.delivery, outcome.message, outcome.review)

    def submit_review(self, delivery: Delivery, decision, candidate) -> None:
        """From the shadow thread: send a disagreement to review, on the pika thread."""
        connection = self._connection
        if connection is None:
            return  # a review copy is a sample: one lost to a reconnect is not worth keeping
        try:
            connection.add_callback_threadsafe(
                partial(self._publish_review, delivery, decision, "disagreement", candidate)
            )
        except Exception:
            log.debug("connection gone; a shadow disagreement not sent to review")

    def _publish_review(self, delivery: Delivery, decision, why: str, candidate=None) -> None:
        """A copy to the review queue; best effort (a confirm is awaited only to keep the count)."""
        if self._channel is None:
            return
        try:
            publish_review(self._channel._impl, delivery, decision, why, self._header_budget, candidate)
        except AMQPError:
            raise
        except Exception as error:  # the review copy must never cost the decision
            log.debug("review copy of %s not sent: %r", decision.frame_id, error)
            return
        self._confirms.sent(None)  # the channel numbers every publish: keep the count in step
        self.metrics.review_items.labels(line=self.settings.line_id, why=why).inc()

    def _hand_to_broker(self, outcome: Decided | Rejected, error: Exception) -> None:
        """Reject the frame without requeueing: the queue's own dead-letter exchange keeps it, as it
        came, with RabbitMQ's ``x-death`` header (reason ``rejected``) instead of ours."""
        reason = outcome.reason if isinstance(outcome, Rejected) else DeadLetterReason.POISON
        log.warning(
            "could not publish the outcome of frame %.80r (%s: %.200r); handing it to the broker's "
            "dead-letter exchange",
            outcome.delivery.message_id,
            reason.value,
            error,
        )
        self._give_back(outcome.delivery, requeue=False)
        self.metrics.dead_letters.labels(reason=reason.value).inc()
        self.metrics.dead_letter_fallbacks.inc()

    def _give_back(self, delivery: Delivery, *, requeue: bool) -> None:
        self._channel.basic_nack(delivery_tag=delivery.delivery_tag, requeue=requeue)
        self._acks.released(delivery.delivery_tag)
        self._outstanding -= 1
        if requeue:
            self._recent.released(frame_key(delivery))
        else:
            self._recent.settled(frame_key(delivery))

    def _ack_confirmed(self) -> None:
        """Ack the frames whose outcome the broker confirmed; requeue one whose publish it refused."""
        channel = self._channel
        if channel is None:
            return
        settled = self._confirms.take_settled()
        for outcome, confirmed in settled:
            if outcome is None:
                continue  # a review copy: no frame waits for it
            if not confirmed:
                log.warning(
                    "broker refused the outcome of frame %s; requeueing it", outcome.delivery.message_id
                )
                self._give_back(outcome.delivery, requeue=True)
                continue
            self._acks.confirmed(outcome.delivery.delivery_tag)
            self._recent.settled(frame_key(outcome.delivery))
            self._count(outcome)
            self._outstanding -= 1
        if not (settled or self._acks_due):
            return
        self._acks_due = False
        acks = self._acks.take()
        if acks.up_to is not None:
            channel.basic_ack(delivery_tag=acks.up_to, multiple=True)
        for tag in acks.singles:
            channel.basic_ack(delivery_tag=tag)
        self.metrics.in_flight.set(self._outstanding)

    def _count(self, outcome: Outcome) -> None:
        if isinstance(outcome, Decided):
            self.metrics.record_decision(outcome.message)
        elif isinstance(outcome, Rejected):
            self.metrics.dead_letters.labels(reason=outcome.reason.value).inc()

    def _drain(self) -> None:
        """On stop: take no new frames, settle the ones already handed to us, then close."""
        if self._channel is None or self._connection is None:
            return
        self._channel.basic_cancel(self._consumer_tag)
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while self._outstanding > 0 and time.monotonic() < deadline:
            self._connection.process_data_events(time_limit=POLL_SECONDS)
            self._ack_confirmed()
        log.info("drained (%d frames left unsettled for redelivery); stopping", self._outstanding)

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self.ready.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except AMQPConnectionError:
                log.debug("connection already gone while closing")


def frame_key(delivery: Delivery) -> tuple[str, object] | None:
    """What makes two deliveries the same frame: its id, per camera (the routing key names it).

    None (never a repeat) when the sender set no ``message_id``.
    """
    return None if delivery.message_id is None else (delivery.routing_key, delivery.message_id)
