"""Prometheus metrics of the ejector bridge."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: How far a coil write came after its planned time: the air jet's error along the belt is this
#: times the belt speed (10 ms at 2 m/s is 2 cm).
LATENESS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.ejections = Counter(
            "sortline_ejections_total",
            "Decisions per bar by what became of them: scheduled, late (never fired), no-position, "
            "outside-bar, not-ejected, duplicate, invalid, output-error.",
            ["line", "bar", "result"],
            registry=registry,
        )
        self.coil_writes = Counter(
            "sortline_ejector_coil_writes_total",
            "Coil writes made, by bar and state (on, off).",
            ["bar", "state"],
            registry=registry,
        )
        self.lateness = Histogram(
            "sortline_ejector_write_lateness_seconds",
            "Time from a coil write's planned instant to the moment it was sent.",
            ["bar"],
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.lead = Histogram(
            "sortline_ejector_lead_seconds",
            "Time left between a decision's arrival and its pulse: the margin the line runs with.",
            ["bar"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.pending = Gauge(
            "sortline_ejector_pending_events", "Coil writes scheduled and not yet due.", registry=registry
        )
