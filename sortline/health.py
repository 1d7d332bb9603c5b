"""Liveness and readiness on each process's metrics port: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` answers as long as the process runs, even with the broker gone or the inference
thread stuck, so probes must not use it. A process registers named checks instead:

- ``/healthz`` (liveness) fails only when restarting the process would help: a thread that must
  keep moving (a worker's inference loop, a camera's capture loop) has not moved for too long;
- ``/readyz`` (readiness) fails also while the process cannot do its job: not connected to the
  broker, not consuming its queue.

Both answer 200 with ``ok``, or 503 with one failing check per line. Every check is also exported
as ``sortline_health_check{check} 1|0`` (alerts: a process that cannot reach the broker), next to
``sortline_build_info``.

``python -m sortline.health URL`` exits 0 when URL answers 200, else 1: the Docker HEALTHCHECK
and compose's healthchecks use it (the images have no curl).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

from sortline.build_info import register_build_info
from sortline.http_handler import QuietHandler

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

log = logging.getLogger(__name__)

#: A check returns None when it passes, else why it fails (one short line).
Check = Callable[[], "str | None"]


class Heartbeat:
    """A loop's proof of life: it calls :meth:`beat` on every turn; :meth:`age` is the time since."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()  # a loop that never started is as stale as one that stopped

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last

    def check(self, what: str, max_age: float) -> Check:
        """A check failing while this heartbeat is older than ``max_age`` seconds."""

        def stale() -> str | None:
            age = self.age()
            return f"{what} has not moved for {age:.0f} s (limit {max_age:.0f} s)" if age > max_age else None

        return stale


@dataclass
class Health:
    """The checks of one process: liveness checks count for readiness too."""

    live: dict[str, Check] = field(default_factory=dict)
    ready: dict[str, Check] = field(default_factory=dict)

    def failing(self, *, readiness: bool) -> list[str]:
        checks = {**self.live, **self.ready} if readiness else self.live
        return [f"{name}: {problem}" for name, problem in _run(checks) if problem is not None]

    def states(self) -> Iterator[tuple[str, bool]]:
        for name, problem in _run({**self.live, **self.ready}):
            yield name, problem is None


def _run(checks: dict[str, Check]) -> Iterator[tuple[str, str | None]]:
    for name, check in checks.items():
        try:
            yield name, check()
        except Exception as error:  # a broken check fails, it does not break the endpoint
            yield name, f"check raised {error!r}"


class _HealthCollector:
    """``sortline_health_check{check}``: each check's state at scrape time."""

    def __init__(self, health: Health) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "sortline_health_check",
            "Health checks of this process: 1 passing, 0 failing (/readyz needs every one).",
            labels=["check"],
        )
        for name, passing in self._health.states():
            family.add_metric([name], 1.0 if passing else 0.0)
        yield family


def _handler(registry: CollectorRegistry, health: Health) -> type[QuietHandler]:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self.send_body(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path in ("/healthz", "/readyz"):
                problems = health.failing(readiness=path == "/readyz")
                text = "\n".join(problems) if problems else "ok"
                self.send_body(503 if problems else 200, "text/plain; charset=utf-8", f"{text}\n".encode())
            else:
                self.send_body(404, "text/plain", b"not found: /metrics, /healthz, /readyz\n")

    return Handler


def serve(port: int, registry: CollectorRegistry, health: Health, host: str = "") -> ThreadingHTTPServer:
    """Serve the three endpoints on ``port`` (0: any free port) in a daemon thread;
    ``sortline_build_info`` and ``sortline_health_check`` join ``registry``, no ``*_created`` series
    are exported. Raises OSError when the port is taken."""
    from prometheus_client import disable_created_metrics

    # A `*_created` series beside every counter and histogram doubles what is scraped and stored,
    # for the creation time of each series, which no panel or rule reads.
    disable_created_metrics()
    register_build_info(registry)
    registry.register(_HealthCollector(health))
    server = ThreadingHTTPServer((host, port), _handler(registry, health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def serve_metrics(prog: str, port: int, registry: CollectorRegistry, health: Health) -> ThreadingHTTPServer:
    """:func:`serve` for a command: port 0 takes any free port (logged); a port in use is a one-line
    error and exit 2, as every bad setting is (the port is this process's setting, not a fault)."""
    try:
        server = serve(port, registry, health)
    except OSError as error:
        print(
            f"{prog}: cannot serve /metrics on port {port}: {error.strerror or error} (another process "
            "there?); give each process on a host its own --metrics-port, or 0 for any free port",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    log.info("serving /metrics, /healthz and /readyz on port %d", server.server_port)
    return server


def probe(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Whether ``url`` answers 200, and what it said."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return False, error.read().decode(errors="replace")
    except OSError as error:
        return False, str(error)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m sortline.health URL   (exit 0 when URL answers 200)", file=sys.stderr)
        return 2
    healthy, text = probe(args[0])
    if not healthy:
        print(text.strip(), file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
