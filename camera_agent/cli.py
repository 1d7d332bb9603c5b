"""``camera-agent``: exit codes 0 (done or stopped), 2 (bad flags, source or credentials, a metrics port
in use), 3 (a live source unreachable for longer than --source-give-up-s)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from camera_agent.agent import CameraAgent
from camera_agent.health import agent_health
from camera_agent.items.settings import GeometryFileError
from camera_agent.metrics import AgentMetrics
from camera_agent.publisher import BrokerConfigError, FramePublisher
from camera_agent.settings import AgentSettings
from camera_agent.sources import LiveCounters, Source, SourceError, SourceLost, open_source
from sortline.health import serve_metrics
from sortline.provisioning import BrokerSetupError
from sortline.settings import configure_logging, parse_cli

if TYPE_CHECKING:
    from camera_agent.view import FrameView

log = logging.getLogger("camera_agent")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(AgentSettings, argv, prog="camera-agent")
    configure_logging(settings.log_level, settings.log_format)
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    labels = {"line": settings.line_id, "camera": settings.camera_id}
    counters = LiveCounters(
        on_skipped=metrics.skipped.labels(**labels).inc,
        on_reconnected=metrics.source_reconnects.labels(**labels).inc,
    )
    try:
        source = open_source(settings.source, settings.source_give_up_s, settings.max_retry_seconds, counters)
    except SourceError as error:
        print(f"camera-agent: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    publisher = FramePublisher(
        settings.amqp_url.get_secret_value(),
        settings.line_id,
        stop,
        settings.max_retry_seconds,
        settings.tls_files(),
        settings.topology,
    )
    try:
        agent = CameraAgent(settings, source, publisher, metrics, stop, make_view(settings, source))
        serve_metrics("camera-agent", settings.metrics_port, registry, agent_health(agent))
    except (ImportError, GeometryFileError, ValueError, OSError) as error:  # items mode, a busy live port
        print(f"camera-agent: {error}", file=sys.stderr)
        source.close()
        return 2
    return run_agent(agent, publisher, source)


def run_agent(agent: CameraAgent, publisher: FramePublisher, source: Source) -> int:
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
    if isinstance(agent.source_error, SourceLost):
        print(f"camera-agent: {agent.source_error}; giving up", file=sys.stderr)
        return 3
    if agent.source_error is not None:
        raise agent.source_error
    return 0


def make_view(settings: AgentSettings, source: Source) -> FrameView | None:
    """Items mode's annotations for people, when asked for (--annotate, --live-port)."""
    if settings.mode != "items" or not (settings.annotate or settings.live_port):
        return None
    from camera_agent.live import LiveServer
    from camera_agent.verdicts import VerdictWatcher
    from camera_agent.view import FrameView

    verdicts = VerdictWatcher(settings.amqp_url.get_secret_value(), settings.tls_files(), settings.line_id,
                              settings.camera_id, settings.max_retry_seconds)  # fmt: skip
    view = FrameView(verdicts, settings.annotate, None, getattr(source, "fps", None) or 30.0)
    if settings.live_port:
        title = f"line {settings.line_id}, camera {settings.camera_id}"
        view.live = LiveServer(settings.live_port, title, view.state)
    return view


if __name__ == "__main__":
    sys.exit(main())
