"""The line's decisions queue in, pulses scheduled out; each decision acked once planned.

A decision is acked as soon as its pulses are scheduled, or it is refused (late, no position, a
bin no bar ejects): from then on its fate is the scheduler's, and a decision redelivered after a
reconnect would be late anyway. The queue holds one consumer at a time (single active consumer):
a second bridge of the line waits and takes over if this one goes.
"""

from __future__ import annotations

import logging
import threading
import time

import pika
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from pydantic import ValidationError

from ejector_bridge.geometry import EjectorGeometry
from ejector_bridge.metrics import BridgeMetrics
from ejector_bridge.planning import Plan, Result, plan_ejections
from ejector_bridge.scheduler import PulseScheduler
from ejector_bridge.settings import BridgeSettings
from sortline import amqp_tables
from sortline.broker_retry import BrokerRetry
from sortline.connection import connection_parameters
from sortline.dedup import RecentFrames
from sortline.messages import DecisionMessage
from sortline.provisioning import BrokerSetupError, prepare_decisions_queue, refusals_explained
from sortline.settings import redact_url

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
#: Frame ids remembered: two workers deciding one repeated frame must not fire its valves twice.
RECENT_DECISIONS = 10_000


class BrokerRefused(Exception):
    """The broker refused our credentials or permissions."""


class DecisionConsumer:
    """Consumes ``sortline.decisions.<line>`` until ``stop`` is set, reconnecting with backoff."""

    def __init__(
        self,
        settings: BridgeSettings,
        geometry: EjectorGeometry,
        scheduler: PulseScheduler,
        metrics: BridgeMetrics,
        stop: threading.Event,
    ) -> None:
        self.settings, self.geometry, self.scheduler = settings, geometry, scheduler
        self.metrics, self.stop = metrics, stop
        self.ready = threading.Event()
        self._url = settings.amqp_url.get_secret_value()
        self._min_lead_ns = round(settings.min_lead_ms * 1e6)
        self._recent = RecentFrames(RECENT_DECISIONS)
        amqp_tables.install()  # whoever else publishes to the decisions exchange

    def run(self) -> None:
        retry = BrokerRetry(self._url, log, self.settings.max_retry_seconds)
        while not self.stop.is_set():
            connection = None
            try:
                connection = self._connect()
                retry.connected()
                while not self.stop.is_set():
                    connection.process_data_events(time_limit=POLL_SECONDS)
                    self.metrics.pending.set(self.scheduler.pending())
            except (ProbableAuthenticationError, ProbableAccessDeniedError, BrokerSetupError) as error:
                raise BrokerRefused(f"broker at {redact_url(self._url)} refused us: {error}") from None
            except (AMQPConnectionError, AMQPChannelError, OSError) as error:  # OSError: DNS, TLS
                self.stop.wait(retry.failed(error))
            finally:
                self.ready.clear()
                if connection is not None and connection.is_open:
                    connection.close()

    def _connect(self) -> pika.BlockingConnection:
        parameters = connection_parameters(
            self._url, "ejector-bridge", self.settings.line_id, self.settings.tls_files()
        )
        connection = pika.BlockingConnection(parameters)
        channel = connection.channel()
        queue = prepare_decisions_queue(channel, self.settings.line_id, self.settings.topology)
        with refusals_explained(self.settings.topology):
            channel.basic_qos(prefetch_count=self.settings.prefetch)
            channel.basic_consume(queue, self._on_message)
        self.ready.set()
        log.info("consuming %s on %s", queue, redact_url(self._url))
        return connection

    def _on_message(self, channel, method, _properties, body: bytes) -> None:
        try:
            decision = DecisionMessage.from_json(body)
        except (ValidationError, ValueError) as error:
            log.warning("not a decision (%s); dead-lettering it", str(error)[:200])
            self._count(None, Result.INVALID)
            channel.basic_nack(method.delivery_tag, requeue=False)
            return
        if decision.line_id != self.settings.line_id:
            self._count(None, Result.INVALID)
            channel.basic_nack(method.delivery_tag, requeue=False)
            return
        if not self._recent.begin(decision.frame_id):
            self._count(None, Result.DUPLICATE)
        else:
            self._act_on(decision)
            self._recent.settled(decision.frame_id)
        channel.basic_ack(method.delivery_tag)

    def _act_on(self, decision: DecisionMessage) -> None:
        now_ns = time.time_ns()
        for plan in plan_ejections(decision, self.geometry, now_ns, self._min_lead_ns):
            self._count(plan.bar, plan.result)
            if plan.result is Result.SCHEDULED:
                self.scheduler.schedule(plan.pulses)
                self.metrics.lead.labels(bar=plan.bar).observe((plan.pulses[0].on_ns - now_ns) / 1e9)
            elif plan.result is Result.LATE:
                log.debug("decision %s reached bar %s %s", decision.frame_id, plan.bar, late_by(plan, now_ns))

    def _count(self, bar: str | None, result: Result) -> None:
        self.metrics.ejections.labels(line=self.settings.line_id, bar=bar or "", result=result.value).inc()


def late_by(plan: Plan, now_ns: int) -> str:
    return f"{(now_ns - plan.due_ns) / 1e6:.1f} ms after the item passed" if plan.due_ns else "late"
