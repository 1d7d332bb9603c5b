"""``python -m bench.ejector``: how close to their planned instant the ejector bridge writes coils.

A real ``ejector-bridge`` process, the real broker and a real PLC protocol server in a process of
its own (pymodbus's Modbus/TCP server, or asyncua's OPC UA server with ``--protocol opcua``) that
stamps each valve write as it arrives; decisions published at
``--rate`` items/s for ``--seconds``. Prints JSON on stdout and a table on stderr; the target
(p99 of |write - planned| <= 10 ms at 100 items/s) is reported as met or not.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console
from rich.table import Table

from sortline.settings import SortlineSettings, parse_cli
from sortline.topology import delete_line
from sortline_dev.broker import connect
from sortline_dev.ejection_run import (
    TRAVEL_NS,
    bridge_process,
    match_writes,
    publish_stream,
    timing_summary,
    wait_for_consumer,
)
from sortline_dev.plc import RecordingPlc

TARGET_P99_MS = 10.0


class EjectorBenchSettings(SortlineSettings):
    """Measure the ejector bridge's pulse timing against a real Modbus/TCP or OPC UA server."""

    protocol: Literal["modbus", "opcua"] = Field("modbus", description="The PLC protocol the bridge drives.")
    rate: float = Field(100.0, gt=0.0, le=2000.0, description="Decisions per second.")
    seconds: float = Field(10.0, gt=0.0, le=3600.0, description="How long to publish.")


def measure(settings: SortlineSettings, rate: float, seconds: float, protocol: str = "modbus") -> dict:
    url = settings.amqp_url.get_secret_value()
    line_id = f"bench-eject-{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory() as folder,
        RecordingPlc(Path(folder) / "writes.jsonl", protocol=protocol) as plc,
    ):
        process = bridge_process(url, line_id, *plc.bridge_flags)
        with process:
            process.wait_ready(timeout=60, ready_metric="sortline_ejector_pending_events")
            wait_for_consumer(url, line_id, process)
            decisions = publish_stream(url, line_id, round(rate * seconds), rate)
            time.sleep(TRAVEL_NS / 1e9 + 0.5)
            results = process.metrics().values("sortline_ejections_total", "result")
    connection = connect(url)
    delete_line(connection.channel(), line_id)
    connection.close()
    summary = timing_summary(match_writes(decisions, plc.writes))
    return {"protocol": protocol, "rate": rate, "seconds": seconds, "decisions": len(decisions),
            "results": results, **summary,
            "target": f"p99_ms <= {TARGET_P99_MS}", "met": summary["p99_ms"] <= TARGET_P99_MS}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(EjectorBenchSettings, argv, prog="python -m bench.ejector")
    report = measure(settings, settings.rate, settings.seconds, settings.protocol)
    table = Table(title=f"Ejector bridge ({report['protocol']}) at {report['rate']:.0f} items/s:"
                        " |valve write - planned instant|")  # fmt: skip
    for column in ("pulses", "p50 ms", "p99 ms", "max ms", "target", "met"):
        table.add_column(column, justify="right")
    table.add_row(str(report["pulses"]), f"{report['p50_ms']:.2f}", f"{report['p99_ms']:.2f}",
                  f"{report['max_ms']:.2f}", report["target"], "yes" if report["met"] else "no")  # fmt: skip
    Console(stderr=True).print(table)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
