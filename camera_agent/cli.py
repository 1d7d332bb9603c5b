"""``camera-agent``: entry point; exit codes 0 (done or stopped), 2 (bad flags, source or credentials)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, start_http_server

from camera_agent.agent import CameraAgent
from camera_agent.metrics import AgentMetrics
from camera_agent.publisher import BrokerConfigError, FramePublisher
from camera_agent.settings import AgentSettings
from camera_agent.sources import SourceError, open_source
from sortline.settings import configure_logging, parse_cli

log = logging.getLogger("camera_agent")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(AgentSettings, argv, prog="camera-agent")
    configure_logging(settings.log_level)
    try:
        source = open_source(settings.source)
    except SourceError as error:
        print(f"camera-agent: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=registry)
    publisher = FramePublisher(
        settings.amqp_url.get_secret_value(),
        settings.line_id,
        stop,
        settings.max_retry_seconds,
        settings.tls_files(),
    )
    try:
        publisher.connect()
        CameraAgent(settings, source, publisher, metrics, stop).run()
    except BrokerConfigError as error:
        print(f"camera-agent: {error}", file=sys.stderr)
        return 2
    except InterruptedError:
        log.info("stopped")
    finally:
        publisher.close()
        source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
