"""A stream of decisions into a running ejector bridge, and the coil writes it made of them.

The test and the benchmark both drive the bridge this way: decisions published as a worker
publishes them, 30 ms after their item crossed the trigger line, at a steady rate; one in 50 a
second late (never to be fired), one in three of a bin no bar ejects. Ejected items take the valves
in turn, so no two pulses share a valve at once and each write belongs to one item.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pika

from sortline.labels import MATERIALS
from sortline.messages import DecisionMessage
from sortline.topology import (
    DECISIONS_EXCHANGE,
    decisions_queue,
    decisions_routing_key,
    declare_decisions_queue,
    declare_exchanges,
)
from sortline_dev.plc import CoilWrite
from sortline_dev.processes import ServiceProcess

#: The bar the stream is made for (flags of the bridge process).
VALVES, SPEED_MPS, DISTANCE_M, PULSE_MS = 16, 2.0, 0.6, 8.0
TRAVEL_NS = round(DISTANCE_M / SPEED_MPS * 1e9)
EJECTED_BINS = ("plastic", "metal")
DECISION_LATENCY_NS = 30_000_000


def bridge_process(amqp_url: str, line_id: str, *flags: str) -> ServiceProcess:
    """``ejector-bridge`` with the bar this stream is made for."""
    bar = ["--belt-speed-mps", str(SPEED_MPS), "--bar-distance-m", str(DISTANCE_M), "--valves", str(VALVES),
           "--bins", ",".join(EJECTED_BINS), "--pulse-ms", str(PULSE_MS)]  # fmt: skip
    return ServiceProcess("ejector_bridge.cli", ["--line-id", line_id, *bar, *flags], amqp_url)


def make_decision(
    line_id: str, index: int, bin_name: str, valve: int, captured_at_ns: int
) -> DecisionMessage:
    return DecisionMessage(
        frame_id=f"{line_id}-{index}", line_id=line_id, camera_id="cam-1", seq=index, item_id=f"i{index}",
        bin=bin_name, confidence=0.99, p_organic=0.01, material=bin_name,
        material_probs=dict.fromkeys(MATERIALS, 0.0), model_version="bench", belt_x=(valve + 0.5) / VALVES,
        captured_at="-", captured_at_ns=captured_at_ns, decided_at="-", latency_ms=30.0,
    )  # fmt: skip


def wait_for_consumer(amqp_url: str, line_id: str, process: ServiceProcess, timeout: float = 60) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    declare_exchanges(channel)
    declare_decisions_queue(channel, line_id)
    deadline = time.monotonic() + timeout
    while channel.queue_declare(decisions_queue(line_id), passive=True).method.consumer_count == 0:
        process.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("the bridge did not start consuming")
        time.sleep(0.1)
    connection.close()


def is_late(decision: DecisionMessage) -> bool:
    return decision.seq % 50 == 49


def publish_stream(amqp_url: str, line_id: str, count: int, rate: float) -> list[DecisionMessage]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    published, started = [], time.perf_counter()
    for index in range(count):
        if (wait := started + index / rate - time.perf_counter()) > 0:
            time.sleep(wait)
        captured = time.time_ns() - DECISION_LATENCY_NS - (1_000_000_000 if index % 50 == 49 else 0)
        bin_name = (*EJECTED_BINS, "glass")[index % 3]
        item = make_decision(line_id, index, bin_name, index % VALVES, captured)
        channel.basic_publish(DECISIONS_EXCHANGE, decisions_routing_key(line_id, item.bin), item.to_json())
        published.append(item)
    connection.close()
    return published


@dataclass
class Matched:
    """An item the bridge should have fired, and the on-write nearest its planned instant."""

    decision: DecisionMessage
    planned_on_ns: int
    write: CoilWrite | None

    @property
    def error_ms(self) -> float:
        return abs(self.write.at_ns - self.planned_on_ns) / 1e6 if self.write else float("inf")


def match_writes(decisions: list[DecisionMessage], writes: list[CoilWrite]) -> list[Matched]:
    """Each item that must fire, with the on-write on its valve nearest the planned instant."""
    ons = [w for w in writes if w.on]
    matched = []
    for item in decisions:
        if item.bin not in EJECTED_BINS or is_late(item):
            continue
        valve = round(item.belt_x * VALVES - 0.5)
        planned = item.captured_at_ns + TRAVEL_NS - round(PULSE_MS * 1e6 / 2)
        candidates = [w for w in ons if w.coil == valve]
        nearest = min(candidates, key=lambda w: abs(w.at_ns - planned)) if candidates else None
        matched.append(Matched(item, planned, nearest))
    return matched


def timing_summary(matched: list[Matched]) -> dict[str, float]:
    errors = [m.error_ms for m in matched]
    p50, p99 = np.percentile(errors, [50, 99])
    return {"pulses": len(errors), "p50_ms": float(p50), "p99_ms": float(p99), "max_ms": float(max(errors))}
