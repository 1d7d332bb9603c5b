"""Publishing frames with publisher confirms, surviving broker restarts.

A frame counts as published only once the broker confirms it. Until then the agent holds it, and
after a lost connection it reconnects (backoff with jitter), declares its topology again and
publishes the same frame again, so a broker restart loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import pika
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    NackError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    UnroutableError,
)

from sortline.broker_retry import BrokerRetry
from sortline.connection import TlsFiles, connection_parameters
from sortline.provisioning import BrokerSetupError, TopologyMode, prepare_line, refusals_explained
from sortline.settings import redact_url
from sortline.topology import FRAMES_EXCHANGE

log = logging.getLogger(__name__)


class BrokerConfigError(Exception):
    """The broker refused our credentials or permissions: retrying will not help."""


class FramePublisher:
    """Blocking, confirmed publisher to ``sortline.frames``; one per agent thread."""

    def __init__(
        self,
        url: str,
        line_id: str,
        stop: threading.Event,
        max_retry_seconds: float,
        tls: TlsFiles | None = None,
        topology: TopologyMode = "declare",
    ) -> None:
        self._url = url
        self._topology = topology
        self._tls = tls
        self._line_id = line_id
        self._stop = stop
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._retry = BrokerRetry(url, log, max_retry_seconds)

    def connect(self) -> None:
        """Connect, enable confirms and declare the line, retrying until the broker answers."""
        while True:
            try:
                self._open()
                self._retry.connected()
                return
            except (ProbableAuthenticationError, ProbableAccessDeniedError, BrokerSetupError) as error:
                raise BrokerConfigError(f"broker at {redact_url(self._url)} refused us: {error!r}") from None
            except (AMQPConnectionError, OSError) as error:  # OSError: a host name not found, TLS
                delay = self._retry.failed(error)
            if self._stop.wait(delay):
                raise InterruptedError("stopped while waiting for the broker")

    def _open(self) -> None:
        self.close()
        parameters = connection_parameters(self._url, "camera-agent", self._line_id, self._tls)
        self._connection = pika.BlockingConnection(parameters)
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        prepare_line(self._channel, self._line_id, self._topology)
        log.info("connected to %s; publishing to line %s", redact_url(self._url), self._line_id)

    @property
    def connected(self) -> bool:
        """Whether a channel to the broker is open (for the readiness check)."""
        connection = self._connection
        return self._channel is not None and connection is not None and connection.is_open

    def publish(self, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Return once the broker has confirmed the frame; reconnect and re-send as often as needed."""
        while True:
            if self._channel is None:
                self.connect()
            try:
                with refusals_explained(self._topology):  # a key this user may not publish: exit 2
                    self._channel.basic_publish(
                        FRAMES_EXCHANGE, routing_key, body, properties, mandatory=True
                    )
                return
            except NackError:
                log.warning("broker nacked a frame; publishing it again")
            except UnroutableError:
                # Someone deleted the line's queue; declaring it again restores the route.
                log.warning("frame was unroutable; declaring the line again")
                self._channel = None
            except (AMQPConnectionError, AMQPChannelError) as error:
                self._channel = None  # reconnected and re-sent after the wait
                if self._stop.wait(self._retry.failed(error)):
                    raise InterruptedError("stopped with an unconfirmed frame") from None
            if self._stop.is_set():
                raise InterruptedError("stopped with an unconfirmed frame")

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(AMQPConnectionError):
                connection.close()
