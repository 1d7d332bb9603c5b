"""``camera-agent``: entry point; exit codes 0 (done or stopped), 2 (bad flags, source or credentials)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from camera_agent.agent import CameraAgent
from camera_agent.health import agent_health
from camera_agent.metrics import AgentMetrics
from camera_agent.publisher import BrokerConfigError, FramePublisher
from camera_agent.settings import AgentSettings
from camera_agent.sources import SourceError, open_source
from sortline.health import serve
from sortline.provisioning import BrokerSetupError
from sortline.settings import configure_logging, parse_cli

log = logging.getLogger("camera_agent")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(AgentSettings, argv, prog="camera-agent")
    configure_logging(settings.log_level, settings.log_format)
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
    publisher = FramePublisher(
        settings.amqp_url.get_secret_value(),
        settings.line_id,
        stop,
        settings.max_retry_seconds,
        settings.tls_files(),
        settings.topology,
    )
    agent = CameraAgent(settings, source, publisher, metrics, stop)
    if settings.metrics_port:
        try:
            serve(settings.metrics_port, registry, agent_health(agent))
        except OSError as error:
            print(f"camera-agent: cannot serve on port {settings.metrics_port}: {error}", file=sys.stderr)
            source.close()
            return 2
    try:
        publisher.connect()
        agent.run()
    except (BrokerConfigError, BrokerSetupError) as error:
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
