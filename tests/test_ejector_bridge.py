"""The ejector bridge on the real RabbitMQ, driving a real Modbus/TCP server (pymodbus's own) and a
real OPC UA server (asyncua's own).

Decisions arrive at 100 items/s; every one whose bin a bar ejects gets exactly one pulse on the
valve under it, near its time; late ones are never fired. How near is a benchmark figure.
"""

from __future__ import annotations

import csv
import time

import pytest

from sortline_dev.ejection_run import (
    EJECTED_BINS,
    PULSE_MS,
    TRAVEL_NS,
    bridge_process,
    is_late,
    make_decision,
    match_writes,
    publish_stream,
    timing_summary,
    wait_for_consumer,
)
from sortline_dev.plc import RecordingPlc
from sortline_dev.publishing import publish_decisions

pytestmark = pytest.mark.broker

#: Beyond this an air jet misses its item altogether (the timing itself is a benchmark figure:
#: ``python -m bench.ejector``).
MISSED_MS = 40.0


@pytest.mark.parametrize("protocol", ["modbus", "opcua"])
def test_every_decided_item_gets_one_pulse_on_its_valve_and_no_late_one_fires(
    amqp_url, line_id, tmp_path, protocol
):
    count = 300
    with RecordingPlc(tmp_path / "coil-writes.jsonl", protocol=protocol) as plc:
        process = bridge_process(amqp_url, line_id, *plc.bridge_flags)
        with process:
            process.wait_ready(timeout=60, ready_metric="sortline_ejector_pending_events")
            wait_for_consumer(amqp_url, line_id, process)
            decisions = publish_stream(amqp_url, line_id, count, rate=100.0)
            time.sleep(TRAVEL_NS / 1e9 + 0.5)
            metrics = process.metrics()
        assert process.process.returncode == 0, process.output()[-2000:]
    matched = match_writes(decisions, plc.writes)
    results = metrics.values("sortline_ejections_total", "result")
    late = sum(is_late(d) for d in decisions if d.bin in EJECTED_BINS)
    not_ejected = sum(d.bin not in EJECTED_BINS for d in decisions)
    assert results == {"scheduled": len(matched), "late": late, "not-ejected": not_ejected}
    # One on and one off per item, on its valve, near its time: nothing for the late or the others.
    assert sum(w.on for w in plc.writes) == len(matched) and len(plc.writes) == 2 * len(matched)
    # Timed from the right instant: the typical pulse within an air jet's reach of its item, none
    # anywhere near a pulse timed from the wrong instant (the travel time is 300 ms). The tail on a
    # busy machine is the benchmark's figure, not this test's.
    errors = sorted(m.error_ms for m in matched)
    assert errors[len(errors) // 2] < MISSED_MS and errors[-1] < TRAVEL_NS / 2e6, timing_summary(matched)
    assert len({(m.write.coil, m.write.at_ns) for m in matched}) == len(matched)


def test_a_dry_run_writes_the_schedule_as_csv(amqp_url, line_id, tmp_path):
    out = tmp_path / "schedule.csv"
    process = bridge_process(amqp_url, line_id, "--output", "dry-run", "--dry-run-csv", str(out))
    with process:
        process.wait_ready(timeout=60, ready_metric="sortline_ejector_pending_events")
        wait_for_consumer(amqp_url, line_id, process)
        now = time.time_ns()
        publish_decisions(
            amqp_url,
            [make_decision(line_id, 0, "plastic", 3, now), make_decision(line_id, 1, "glass", 5, now)],
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


def test_an_opcua_node_with_a_namespace_nobody_named_exits_2_with_what_to_give(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ejector_bridge.cli", "--output", "opcua"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "--opcua-namespace-uri" in result.stderr, result.stderr


def test_an_unreachable_opcua_server_is_an_output_error_not_a_crash():
    from ejector_bridge.outputs import OpcUaNodes, OutputError
    from sortline_dev.processes import free_port

    nodes = OpcUaNodes(f"opc.tcp://bridge:secret@127.0.0.1:{free_port()}/", "ns=2;s=V{coil}", None, 0.5)
    assert not nodes.connect()
    with pytest.raises(OutputError, match="cannot reach") as raised:
        nodes.write(3, True, None)
    assert "secret" not in str(raised.value)
    nodes.close()
