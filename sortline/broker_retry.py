"""What a process says while it cannot reach its broker: one line per attempt, and what to check.

Every process that keeps a connection to RabbitMQ (worker, camera agent, ejector bridge,
``sortline tail``) retries with :func:`sortline.backoff.backoff_delays` and reports each failed
attempt through :class:`BrokerRetry`: one WARNING line that names the broker (password hidden),
says why in words (connection refused, host name not found, certificate not trusted, ...) and when
the next attempt comes; from the second failure on it says once what to check. pika's own lines
and tracebacks about the same failure are shown at ``--log-level DEBUG`` only
(:func:`sortline.settings.configure_logging`).
"""

from __future__ import annotations

import logging
import socket
import ssl
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sortline.backoff import backoff_delays


class BrokerRetry:
    """Backoff and log lines for one process's attempts to reach ``url``."""

    def __init__(self, url: str, log: logging.Logger, max_retry_seconds: float) -> None:
        from sortline.settings import redact_url  # settings imports much of the contract

        self._url = url
        self._shown = redact_url(url)
        self._log = log
        self._cap = max_retry_seconds
        self._delays = backoff_delays(cap=max_retry_seconds)
        self._failures = 0  # since the last connection
        self._was_connected = False

    def connected(self) -> None:
        """A connection is up: backoff starts afresh, and the next failure is a loss."""
        self._delays = backoff_delays(cap=self._cap)
        self._failures = 0
        self._was_connected = True

    def failed(self, error: BaseException) -> float:
        """Log this failed attempt (or lost connection) in one line; seconds until the next attempt."""
        delay = next(self._delays)
        self._failures += 1
        at = (datetime.now() + timedelta(seconds=delay)).strftime("%H:%M:%S")
        why, check = failure(error, self._url)
        if self._was_connected and self._failures == 1:
            line = f"lost the broker at {self._shown} ({why}); reconnecting in {delay:.1f} s ({at})"
        else:
            line = f"broker at {self._shown} unreachable ({why}); retrying in {delay:.1f} s ({at})"
        if self._failures == 2:  # a second failure in a row is not a blip: say where to look, once
            line += f"; check {check}"
        self._log.warning(line)
        return delay


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception: pika wraps a refused socket in two or three of its own."""
    seen = {id(error)}
    while True:
        inner = error.args[0] if error.args else None
        if isinstance(getattr(error, "exception", None), BaseException):  # pika's phase errors
            inner = error.exception
        elif getattr(error, "exceptions", None):  # pika's connection workflow: every address it tried
            inner = error.exceptions[-1]
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return error
        error = inner
        seen.add(id(error))


def failure(error: BaseException, url: str) -> tuple[str, str]:
    """Why an attempt to reach (or keep) the broker at ``url`` failed, in a few words, and what to
    check first for that kind of failure."""
    from pika.exceptions import AMQPChannelError, ConnectionClosedByBroker, StreamLostError

    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    address = f"{host}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    reach = (
        f"that RabbitMQ runs at {address} and this host can reach it (firewall, network policy), and the "
        "URL (--amqp-url, --amqp-url-file, SORTLINE_AMQP_URL or AMQP_URL)"
    )
    cause = root_cause(error)
    if isinstance(cause, ssl.SSLError):
        what = getattr(cause, "verify_message", None) or cause
        why = (
            f"certificate verify failed: {what}"
            if isinstance(cause, ssl.SSLCertVerificationError)
            else str(cause)
        )
        return why, f"--tls-ca-file (the CA that signed the broker's certificate) and that it names {host}"
    if isinstance(cause, socket.gaierror):
        return f"host name not found: {cause.strerror}", f"that {host} resolves here (DNS, /etc/hosts)"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused", f"that RabbitMQ runs at {address} (nothing listens there now)"
    if isinstance(cause, ConnectionClosedByBroker):
        return f"closed by the broker: {cause.reply_text}", reach
    if isinstance(cause, AMQPChannelError) and len(cause.args) >= 2:
        return f"channel closed by the broker: {cause.args[1]}", reach
    if isinstance(cause, StreamLostError):
        return "connection dropped", reach
    if isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__:
        return "timed out", reach
    return (cause.strerror.lower() if isinstance(cause, OSError) and cause.strerror else str(cause)), reach
