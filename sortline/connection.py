"""Connection parameters every process uses: the URL, verified TLS, and a name operators can see.

RabbitMQ shows ``connection_name`` in its management UI and ``rabbitmqctl list_connections``, so
an operator (or a fault test) can tell which worker or camera a connection belongs to.

For ``amqps://`` URLs the broker's certificate is always verified, against the given CA bundle
(or the system's) and the URL's host name; a client certificate enables mutual TLS.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import pika


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the TLS material lives; all optional (system CAs, no client certificate)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """A client context that verifies the server: certificate chain and host name, TLS 1.2 or newer."""
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    return context


def connection_parameters(
    url: str, role: str, line_id: str, tls: TlsFiles | None = None
) -> pika.URLParameters:
    """pika parameters for ``url`` (amqp:// or amqps://) named after us, with verified TLS."""
    import pika  # the contract package itself does not need pika

    parameters = pika.URLParameters(url)
    parameters.client_properties = {
        "connection_name": f"sortline-{role} line={line_id} host={socket.gethostname()} pid={os.getpid()}",
    }
    parts = urlsplit(url)
    if parts.scheme == "amqps":
        parameters.ssl_options = pika.SSLOptions(
            tls_context(tls or TlsFiles()), server_hostname=parts.hostname
        )
    return parameters
