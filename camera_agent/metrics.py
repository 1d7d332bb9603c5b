"""Prometheus metrics of the camera agent (names as README.md lists them; dashboards rely on them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AgentMetrics:
    """All agent metrics on one registry, so tests can use a private registry per agent."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.published = Counter(
            "sortline_frames_published_total",
            "Frames confirmed by the broker.",
            ["line", "camera"],
            registry=registry,
        )
        self.dropped = Counter(
            "sortline_frames_dropped_total",
            "Frames captured but never published, by reason.",
            ["line", "camera", "reason"],
            registry=registry,
        )
        self.captured = Counter(
            "sortline_frames_captured_total",
            "Frames read from the source.",
            ["line", "camera"],
            registry=registry,
        )
        self.skipped = Counter(
            "sortline_camera_frames_skipped_total",
            "Frames a live camera delivered that a newer one replaced before the agent took them "
            "(the agent always takes the newest).",
            ["line", "camera"],
            registry=registry,
        )
        self.source_reconnects = Counter(
            "sortline_camera_reconnects_total",
            "Times a camera or stream that stopped delivering frames was opened again.",
            ["line", "camera"],
            registry=registry,
        )
        self.items = Counter(
            "sortline_camera_items_total",
            "Items mode: items that crossed the trigger line (one message each).",
            ["line", "camera"],
            registry=registry,
        )
        self.items_lost = Counter(
            "sortline_camera_items_lost_total",
            "Items mode: tracks that ended before their item reached the trigger line (never decided).",
            ["line", "camera"],
            registry=registry,
        )
        self.unconfirmed = Gauge(
            "sortline_agent_unconfirmed_frames",
            "Frames published but not yet confirmed by the broker.",
            ["line", "camera"],
            registry=registry,
        )
        self.buffered = Gauge(
            "sortline_agent_buffered_frames",
            "Frames captured and waiting to be published (grows while the broker is away).",
            ["line", "camera"],
            registry=registry,
        )
        self.encode_seconds = Histogram(
            "sortline_agent_encode_seconds",
            "Time to encode one frame.",
            ["line", "camera"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=registry,
        )
