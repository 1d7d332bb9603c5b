"""Prometheus metrics of the classifier worker (names as README.md lists them; dashboards rely on them)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sortline.labels import BINS, HAZARD
from sortline.messages import DeadLetterReason, DecisionMessage

#: Capture-to-decision latency: the ejector window is ~35 ms, so resolve 5-100 ms finely.
LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class WorkerMetrics:
    """All worker metrics on one registry, so tests can use a private registry per worker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "sortline_decisions_total", "Sorting decisions published.", ["line", "bin"], registry=registry
        )
        self.hazard_items = Counter(
            "sortline_hazard_items_total",
            "Items decided into the hazard bin (batteries): each one is a fire risk someone must know of.",
            ["line"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "sortline_dead_letters_total", "Frames dead-lettered, by reason.", ["reason"], registry=registry
        )
        self.decision_latency = Histogram(
            "sortline_decision_latency_seconds",
            "Capture to decision published, seconds.",
            ["line"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "sortline_inference_batch_size",
            "Frames per inference batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "sortline_worker_stage_seconds",
            "Seconds spent in each stage: decode per frame (on a decode thread), inference and publish "
            "per batch.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "sortline_model_info", "The model being served (value 1).", ["version"], registry=registry
        )
        self.model_reloads = Counter(
            "sortline_model_reloads_total",
            "Promotion events handled, by result: ok (swapped in), unchanged (nothing new on disk), "
            "failed (the old model kept serving).",
            ["result"],
            registry=registry,
        )
        self.frames_received = Counter(
            "sortline_worker_frames_received_total",
            "Frames taken from the queue.",
            ["line"],
            registry=registry,
        )
        self.redelivered = Counter(
            "sortline_worker_redelivered_total",
            "Frames received that the broker had delivered before.",
            ["line"],
            registry=registry,
        )
        self.duplicates = Counter(
            "sortline_worker_duplicate_frames_total",
            "Frames received again (same message_id from the same camera) while in flight or lately "
            "settled: acked, not decided again.",
            ["line"],
            registry=registry,
        )
        self.dead_letter_fallbacks = Counter(
            "sortline_worker_dead_letter_fallbacks_total",
            "Frames whose dead letter (or decision) could not be published as built, rejected instead to "
            "the queue's own dead-letter exchange (they arrive there with RabbitMQ's x-death header).",
            registry=registry,
        )
        self.unroutable = Counter(
            "sortline_decisions_unroutable_total",
            "Decisions the broker returned because no queue is bound for them (published mandatory): "
            "no ejector bridge ever sees these.",
            ["line"],
            registry=registry,
        )
        self.reconnects = Counter(
            "sortline_worker_reconnects_total",
            "Connections to the broker opened after the first (each one follows a lost connection).",
            registry=registry,
        )
        self.review_items = Counter(
            "sortline_review_items_total",
            "Items sent to the line's review queue, by why: abstained, disagreement (shadow), audit.",
            ["line", "why"],
            registry=registry,
        )
        self.shadow_decisions = Counter(
            "sortline_shadow_decisions_total",
            "Items the shadow candidate looked at, by the line's bin and the candidate's (the confusion) "
            "and whether they agreed (yes/no: agreement without comparing labels in PromQL).",
            ["line", "current_bin", "candidate_bin", "agreed"],
            registry=registry,
        )
        self.shadow_skipped = Counter(
            "sortline_shadow_skipped_total",
            "Items picked for the shadow candidate that it had no time for (its queue was full).",
            ["line"],
            registry=registry,
        )
        self.shadow_model_info = Gauge(
            "sortline_shadow_model_info",
            "The candidate on trial in shadow (value 1).",
            ["version"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "sortline_worker_in_flight_frames",
            "Frames handed to this worker and not yet settled (decoding, batching, inferring, publishing).",
            registry=registry,
        )

    def start_line(self, line: str) -> None:
        """Create the line's series (and every dead-letter reason's) at 0: a series that first
        appears at 1 shows no increase to rate(), and a panel shows 0 rather than no data."""
        for counter in (
            self.frames_received,
            self.redelivered,
            self.duplicates,
            self.unroutable,
            self.hazard_items,
        ):
            counter.labels(line=line)
        for bin_name in BINS:  # a bin no item went to yet has a share of 0, not no share
            self.decisions.labels(line=line, bin=bin_name)
        for reason in DeadLetterReason:
            self.dead_letters.labels(reason=reason.value)

    def record_decision(self, message: DecisionMessage) -> None:
        """Count a confirmed decision and its capture-to-decision latency."""
        self.decisions.labels(line=message.line_id, bin=message.bin).inc()
        if message.bin == HAZARD:
            self.hazard_items.labels(line=message.line_id).inc()
        # A camera clock slightly ahead (within --max-clock-ahead-ms) must not put negative
        # latencies into the histogram: they would pull its sum, and every mean read off it, down.
        latency_ns = max(0, time.time_ns() - message.captured_at_ns)
        self.decision_latency.labels(line=message.line_id).observe(latency_ns / 1e9)

    def set_shadow_model(self, version: str | None) -> None:
        self.shadow_model_info.clear()
        if version is not None:
            self.shadow_model_info.labels(version=version).set(1)

    def set_model(self, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version).set(1)
