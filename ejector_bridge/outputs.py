"""Where pulses go: coils of a PLC over Modbus/TCP, boolean nodes over OPC UA, or a CSV schedule for a
dry run."""

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


class OpcUaNodes:
    """One boolean node per valve on an OPC UA server (asyncua's synchronous client).

    ``node`` names a valve's node with ``{coil}`` (its address, as for Modbus) and optionally ``{ns}``,
    the index of ``namespace_uri`` on this server: indices may change when a PLC program is
    reloaded, its namespace's URI does not.
    """

    def __init__(self, url: str, node: str, namespace_uri: str | None, timeout_s: float) -> None:
        self._url, self._timeout_s = url, timeout_s
        self._template, self._namespace_uri = node, namespace_uri
        self._client = None  # a new one per connection: a closed synchronous client cannot reopen
        self._nodes: dict[int, object] = {}
        self.target = url.split("@")[-1]  # never the credentials a URL may carry
        if not log.isEnabledFor(logging.DEBUG):  # its notes on every reconnect; ours say what failed
            logging.getLogger("asyncua").setLevel(logging.ERROR)

    def connect(self) -> bool:
        from asyncua.sync import Client  # only bridges that drive an OPC UA server need asyncua

        self._client, self._nodes = Client(self._url, timeout=self._timeout_s), {}
        try:
            self._client.connect()
            uri = self._namespace_uri
            self._namespace = self._client.get_namespace_index(uri) if uri else 0
        except Exception as error:  # asyncua raises OSError, TimeoutError, UaError and ValueError here
            log.debug("OPC UA server at %s: %s", self.target, error)
            self.close()
            return False
        return True

    def write(self, coil: int, on: bool, pulse: Pulse | None) -> None:
        from asyncua import ua

        if self._client is None and not self.connect():
            raise OutputError(f"cannot reach the OPC UA server at {self.target}")
        try:
            self._node(coil).write_value(ua.DataValue(ua.Variant(on, ua.VariantType.Boolean)))
        except Exception as error:  # a refused write (bad node, no access) or a lost connection
            if not isinstance(error, ua.UaStatusCodeError):
                self.close()  # reconnect on the next write
            raise OutputError(f"valve {coil} on {self.target}: {type(error).__name__}: {error}") from None

    def _node(self, coil: int):
        if coil not in self._nodes:
            self._nodes[coil] = self._client.get_node(self._template.format(coil=coil, ns=self._namespace))
        return self._nodes[coil]

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.disconnect()
        except Exception:  # never connected, or already gone: its thread is stopped all the same
            client.tloop.stop()
            log.debug("OPC UA disconnect from %s", self.target, exc_info=True)


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
