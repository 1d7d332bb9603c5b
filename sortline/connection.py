"""Connection parameters every process uses: the URL plus a name that operators can see.

RabbitMQ shows ``connection_name`` in its management UI and ``rabbitmqctl list_connections``, so
an operator (or a fault test) can tell which worker or camera a connection belongs to.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pika


def connection_parameters(url: str, role: str, line_id: str) -> pika.URLParameters:
    """pika parameters for ``url`` (amqp:// or amqps:// with its TLS options) named after us."""
    import pika  # the contract package itself does not need pika

    parameters = pika.URLParameters(url)
    parameters.client_properties = {
        "connection_name": f"sortline-{role} line={line_id} host={socket.gethostname()} pid={os.getpid()}",
    }
    return parameters
