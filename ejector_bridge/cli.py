"""``ejector-bridge``: exit codes 0 (stopped cleanly), 2 (bad flags or geometry, refused credentials, a
metrics port in use)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from ejector_bridge.consumer import BrokerRefused, DecisionConsumer
from ejector_bridge.metrics import BridgeMetrics
from ejector_bridge.outputs import CsvSchedule, ModbusCoils, OpcUaNodes
from ejector_bridge.planning import Pulse, Result
from ejector_bridge.scheduler import CoilOutput, PulseScheduler
from ejector_bridge.settings import BridgeSettings
from sortline.health import Health, serve_metrics
from sortline.settings import configure_logging, parse_cli

log = logging.getLogger("ejector_bridge")

#: On SIGTERM, pulses due within this long are still fired: their items are already on the way.
DRAIN_SECONDS = 10.0


#: How long a thread may hold the GIL before another may run (Python's default: 5 ms). The pulse
#: thread waiting for its instant must not wait for the consumer's JSON parsing that long.
SWITCH_INTERVAL_S = 0.0005


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(BridgeSettings, argv, prog="ejector-bridge")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    configure_logging(settings.log_level, settings.log_format)
    geometry = settings.resolved_geometry()
    output = open_output(settings)
    registry = CollectorRegistry()
    metrics = BridgeMetrics(registry)
    scheduler = PulseScheduler(output, written_counter(settings, metrics))
    stop = threading.Event()
    consumer = DecisionConsumer(settings, geometry, scheduler, metrics, stop)
    serve_metrics("ejector-bridge", settings.metrics_port, registry, bridge_health(consumer))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    bars = ", ".join(f"{bar.id} ({bar.valves} valves at {bar.distance_m} m: {'/'.join(bar.bins)})"
                     for bar in geometry.bars)  # fmt: skip
    log.info("line %s, belt %.2f m/s, bars %s", settings.line_id, geometry.belt_speed_mps, bars)
    try:
        consumer.run()
    except BrokerRefused as error:
        print(f"ejector-bridge: {error}", file=sys.stderr)
        return 2
    finally:
        scheduler.close(DRAIN_SECONDS)
    log.info("stopped")
    return 0


def bridge_health(consumer: DecisionConsumer) -> Health:
    """Ready while consuming the line's decisions (a standby bridge waits, not ready to fire)."""

    def consuming() -> str | None:
        return None if consumer.ready.is_set() else "not consuming the line's decisions queue"

    return Health(live={}, ready={"broker": consuming})


def open_output(settings: BridgeSettings) -> CoilOutput:
    if settings.output == "dry-run":
        log.info("dry run: writing the schedule to %s", settings.dry_run_csv)
        return CsvSchedule(settings.dry_run_csv)
    if settings.output == "opcua":
        coils: ModbusCoils | OpcUaNodes = OpcUaNodes(
            settings.opcua_url, settings.opcua_node, settings.opcua_namespace_uri, settings.opcua_timeout_s
        )
    else:
        coils = ModbusCoils(
            settings.modbus_host, settings.modbus_port, settings.modbus_device_id, settings.modbus_timeout_s
        )
    if not coils.connect():  # not fatal: the PLC may come up after us; each write tries again
        log.warning("PLC at %s not reachable yet; every write will try again", coils.target)
    return coils


def written_counter(settings: BridgeSettings, metrics: BridgeMetrics):
    def on_written(pulse: Pulse, on: bool, late_ns: int, error: Exception | None) -> None:
        if error is not None:
            metrics.ejections.labels(
                line=settings.line_id, bar=pulse.bar, result=Result.OUTPUT_ERROR.value
            ).inc()
            return
        metrics.coil_writes.labels(bar=pulse.bar, state="on" if on else "off").inc()
        metrics.lateness.labels(bar=pulse.bar).observe(max(0, late_ns) / 1e9)

    return on_written


if __name__ == "__main__":
    sys.exit(main())
