"""The ejector bridge on the real RabbitMQ, driving a real Modbus/TCP server (pymodbus's own).

Decisions arrive at 100 items/s; every one whose bin a bar ejects gets exactly one pulse on the
valve under it, at its time; late ones are never fired; the schedule's accuracy is measured from
the time each coil write reached the server.
"""

from __future__ import annotations

import csv
import time

import numpy as np
import pika
import pytest

from sortline.labels import MATERIALS
from sortline.messages import DecisionMessage
from sortline.topology import (
    DECISIONS_EXCHANGE,
    decisions_queue,
    decisions_routing_key,
    declare_decisions_queue,
    declare_exchanges,
)
from sortline_dev.processes import ServiceProcess
from sortline_dev.publishing import publish_decisions
from tests.support.modbus import RecordingPlc

pytestmark = pytest.mark.broker

VALVES, SPEED, DISTANCE, PULSE_MS = 16, 2.0, 0.6, 8.0
TRAVEL_NS = round(DISTANCE / SPEED * 1e9)


def bridge(amqp_url: str, line_id: str, *flags: str) -> ServiceProcess:
    geometry = ["--belt-speed-mps", str(SPEED), "--bar-distance-m", str(DISTANCE), "--valves", str(VALVES),
                "--bins", "plastic,metal", "--pulse-ms", str(PULSE_MS)]  # fmt: skip
    return ServiceProcess("ejector_bridge.cli", ["--line-id", line_id, *geometry, *flags], amqp_url)


def decision(line_id: str, index: int, bin_name: str, valve: int, captured_at_ns: int) -> DecisionMessage:
    return DecisionMessage(
        frame_id=f"{line_id}-{index}", line_id=line_id, camera_id="cam-1", seq=index, item_id=f"i{index}",
        bin=bin_name, confidence=0.99, p_organic=0.01, material=bin_name,
        material_probs=dict.fromkeys(MATERIALS, 0.0), model_version="v", belt_x=(valve + 0.5) / VALVES,
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
        assert time.monotonic() < deadline, "the bridge did not start consuming"
        time.sleep(0.1)
    connection.close()


def publish_stream(amqp_url: str, line_id: str, count: int, rate: float) -> list[DecisionMessage]:
    """Decisions as a worker publishes them, each 30 ms after its capture; one in 50 a second late,
    one in three of a bin no bar ejects. Ejected items take the valves in turn: no two overlap."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    published, started = [], time.perf_counter()
    for index in range(count):
        if (wait := started + index / rate - time.perf_counter()) > 0:
            time.sleep(wait)
        captured = time.time_ns() - 30_000_000 - (1_000_000_000 if index % 50 == 49 else 0)
        item = decision(line_id, index, ("plastic", "metal", "glass")[index % 3], index % VALVES, captured)
        channel.basic_publish(DECISIONS_EXCHANGE, decisions_routing_key(line_id, item.bin), item.to_json())
        published.append(item)
    connection.close()
    return published


def test_every_decided_item_gets_one_pulse_on_its_valve_on_time(amqp_url, line_id, tmp_path):
    count, rate = 500, 100.0
    with RecordingPlc(tmp_path / "coil-writes.jsonl") as plc:
        process = bridge(amqp_url, line_id, "--modbus-port", str(plc.port))
        with process:
            process.wait_ready(timeout=60, ready_metric="sortline_ejector_pending_events")
            wait_for_consumer(amqp_url, line_id, process)
            decisions = publish_stream(amqp_url, line_id, count, rate)
            time.sleep(TRAVEL_NS / 1e9 + 0.5)
            metrics = process.metrics()
        assert process.process.returncode == 0, process.output()[-2000:]
    late = [d for d in decisions if d.seq % 50 == 49 and d.bin != "glass"]
    ejected = [d for d in decisions if d.bin != "glass" and d not in late]
    ons = [w for w in plc.writes if w.on]
    results = metrics.values("sortline_ejections_total", "result")
    assert len(ons) == len(ejected) and len(plc.writes) == 2 * len(ejected), results  # one pulse each
    errors_ms = []
    for item in ejected:
        valve = round(item.belt_x * VALVES - 0.5)
        planned_on = item.captured_at_ns + TRAVEL_NS - round(PULSE_MS * 1e6 / 2)
        nearest = min((w for w in ons if w.coil == valve), key=lambda w: abs(w.at_ns - planned_on))
        errors_ms.append(abs(nearest.at_ns - planned_on) / 1e6)
    p50, p99 = np.percentile(errors_ms, [50, 99])
    print(f"ejector: {len(ejected)} pulses at {rate:.0f} items/s, |write - planned| p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, max {max(errors_ms):.2f} ms")  # fmt: skip
    assert p99 <= 10.0
    results = metrics.values("sortline_ejections_total", "result")
    assert results == {
        "scheduled": len(ejected),
        "late": len(late),
        "not-ejected": count // 3 + (count % 3 > 2),
    }


def test_a_dry_run_writes_the_schedule_as_csv(amqp_url, line_id, tmp_path):
    out = tmp_path / "schedule.csv"
    process = bridge(amqp_url, line_id, "--output", "dry-run", "--dry-run-csv", str(out))
    with process:
        process.wait_ready(timeout=60, ready_metric="sortline_ejector_pending_events")
        wait_for_consumer(amqp_url, line_id, process)
        now = time.time_ns()
        publish_decisions(
            amqp_url, [decision(line_id, 0, "plastic", 3, now), decision(line_id, 1, "glass", 5, now)]
        )
        time.sleep(TRAVEL_NS / 1e9 + 0.3)
    rows = list(csv.DictReader(out.open()))
    assert [(r["coil"], r["state"], r["frame_id"]) for r in rows] == [
        ("3", "on", f"{line_id}-0"), ("3", "off", f"{line_id}-0")
    ]  # fmt: skip
    assert int(rows[0]["at_ns"]) == now + TRAVEL_NS - round(PULSE_MS * 1e6 / 2)


def test_a_geometry_that_cannot_work_exits_2_with_the_reason(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "line.json"
    path.write_text(
        '{"belt_speed_mps": 2, "bars": [{"id": "b", "bins": ["compost"], "distance_m": 1, "valves": 4}]}'
    )
    result = subprocess.run([sys.executable, "-m", "ejector_bridge.cli", "--geometry", str(path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "unknown bins" in result.stderr
