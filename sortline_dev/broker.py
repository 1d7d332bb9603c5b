"""A RabbitMQ for the demo and the tests: AMQP_URL if it answers (starting this machine's own
rabbitmq-server if it is installed but stopped), else a testcontainer, else advice.

Production never uses this module; it exists so that ``make demo`` and ``make test`` work on a
fresh machine that has either a broker or a Docker engine.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pika
from pika.exceptions import AMQPError

from sortline.connection import TlsFiles, connection_parameters
from sortline.settings import SortlineSettings, redact_url

log = logging.getLogger(__name__)

RABBITMQ_IMAGE = "rabbitmq:4-management"

HOW_TO_GET_A_BROKER = """\
No RabbitMQ answered at {url} and no Docker engine is available to start one.
Get a broker in one of these ways, then run the command again:
  - Debian/Ubuntu:  sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
  - Docker:         docker run -d -p 5672:5672 -p 15672:15672 {image}
  - elsewhere:      export AMQP_URL=amqp://USER:PASSWORD@HOST:5672/VHOST"""


class BrokerUnavailable(RuntimeError):
    """Neither AMQP_URL nor Docker gave us a broker; the message says how to get one."""


def configured_amqp_url() -> str:
    """The broker URL as every Sortline command resolves it (SORTLINE_AMQP_URL, AMQP_URL, a URL file)."""
    return SortlineSettings().amqp_url.get_secret_value()


def connect(url: str, tls: TlsFiles | None = None, role: str = "dev") -> pika.BlockingConnection:
    """A connection as the services open theirs: verified TLS for amqps://, named for operators."""
    return pika.BlockingConnection(connection_parameters(url, role, "-", tls))


def process_env(url: str, tls: TlsFiles | None = None) -> dict[str, str]:
    """The environment a Sortline subprocess needs to reach this broker the same way."""
    env = {**os.environ, "AMQP_URL": url, "SORTLINE_AMQP_URL": url}
    files = {"CA": tls.ca_file, "CERT": tls.cert_file, "KEY": tls.key_file} if tls else {}
    env.update({f"SORTLINE_TLS_{name}_FILE": str(path) for name, path in files.items() if path})
    return env


def broker_answers(url: str, tls: TlsFiles | None = None, timeout: float = 3.0) -> bool:
    parameters = connection_parameters(url, "dev", "-", tls)
    parameters.socket_timeout = timeout
    parameters.connection_attempts = 1
    try:
        pika.BlockingConnection(parameters).close()
        return True
    except (AMQPError, OSError) as error:
        log.debug("no broker at %s: %r", redact_url(url), error)
        return False


def docker_available() -> bool:
    try:
        import docker  # only needed where Docker might be
    except ImportError:
        return False
    try:
        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # any failure means "no usable engine"
        return False


def start_local_rabbitmq(url: str, wait_seconds: float = 60.0) -> bool:
    """Start this machine's own rabbitmq-server (installed, stopped) when the URL points here."""
    parts = urlsplit(url)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1") and (parts.port or 5672) == 5672
    if not local or shutil.which("rabbitmq-server") is None:
        return False
    log.warning("no broker at %s; starting the local rabbitmq-server", redact_url(url))
    subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True, timeout=60)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if broker_answers(url):
            return True
        time.sleep(1.0)
    return False


@contextmanager
def provide_broker(url: str | None = None, tls: TlsFiles | None = None) -> Iterator[str]:
    """Yield the URL of a reachable RabbitMQ for as long as the block runs.

    ``url`` (default: :func:`configured_amqp_url`) if it answers, or once this machine's own
    rabbitmq-server is started; else a testcontainer (only where the URL was not given).
    """
    url = url or configured_amqp_url()
    if broker_answers(url, tls) or start_local_rabbitmq(url):
        yield url
        return
    if url != configured_amqp_url():  # a broker named on the command line: no substitute for it
        raise BrokerUnavailable(f"no RabbitMQ answered at {redact_url(url)}")
    if not docker_available():
        raise BrokerUnavailable(HOW_TO_GET_A_BROKER.format(url=redact_url(url), image=RABBITMQ_IMAGE))
    from testcontainers.rabbitmq import RabbitMqContainer  # dev extra only

    log.info("no broker at %s; starting %s with testcontainers", redact_url(url), RABBITMQ_IMAGE)
    with RabbitMqContainer(RABBITMQ_IMAGE) as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/%2F"
