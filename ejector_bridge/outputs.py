"""Where pulses go: coils of a PLC over Modbus/TCP, or a CSV schedule for a dry run."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ejector_bridge.planning import Pulse
from sortline.messages import ns_to_iso

log = logging.getLogger(__name__)


class OutputError(RuntimeError):
    """The PLC answered a write with an error, or not at all."""


class ModbusCoils:
    """One coil per valve on a Modbus/TCP device (pymodbus); reconnects on the next write."""

    def __init__(self, host: str, port: int, device_id: int, timeout_s: float) -> None:
        from pymodbus.client import ModbusTcpClient  # only bridges that drive a PLC need pymodbus

        self.device_id = device_id
        # retries=0: a write retried later than its time is worse than a write missed (counted).
        self._client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)
        self.target = f"{host}:{port} device {device_id}"

    def connect(self) -> bool:
        return bool(self._client.connect())

    def write(self, coil: int, on: bool, pulse: Pulse | None) -> None:
        from pymodbus.exceptions import ModbusException

        if not self._client.connected and not self._client.connect():
            raise OutputError(f"cannot reach the PLC at {self.target}")
        try:
            response = self._client.write_coil(coil, on, device_id=self.device_id)
        except ModbusException as error:
            raise OutputError(f"coil {coil} on {self.target}: {error}") from None
        if response.isError():
            raise OutputError(f"coil {coil} on {self.target}: the PLC answered {response}")

    def close(self) -> None:
        self._client.close()


class CsvSchedule:
    """``--dry-run``: every coil change as a row, with the item it is for, instead of a PLC."""

    FIELDS = ("at", "at_ns", "coil", "state", "bar", "valve", "frame_id", "item_id")

    def __init__(self, path: Path) -> None:
        self._file = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.FIELDS)

    def write(self, coil: int, on: bool, pulse: Pulse | None) -> None:
        at_ns = (pulse.on_ns if on else pulse.off_ns) if pulse else 0
        row = [ns_to_iso(at_ns) if at_ns else "", at_ns, coil, "on" if on else "off"]
        row += [pulse.bar, pulse.valve, pulse.frame_id, pulse.item_id or ""] if pulse else ["", "", "", ""]
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
