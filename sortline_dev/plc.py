"""A PLC for tests and the benchmark, recording every valve write with the time it arrived:
pymodbus's own Modbus/TCP server (coils on device 1), or asyncua's OPC UA server (one boolean node
``ns=<index of OPCUA_NAMESPACE>;s=Valve<coil>`` per coil).

It runs in a process of its own (``python -m sortline_dev.plc``), so that what it measures is the
bridge's timing, not how long the process that started it kept it from the interpreter lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sortline_dev.processes import free_port


@dataclass(frozen=True)
class CoilWrite:
    at_ns: int  # wall clock when the request reached the server
    coil: int
    on: bool


#: The namespace the OPC UA server's valve nodes live in.
OPCUA_NAMESPACE = "urn:sortline:test-plc"


class RecordingPlc:
    """A PLC with ``coils`` valves on 127.0.0.1; ``writes`` is filled when it stops.

    ``protocol`` is ``modbus`` or ``opcua``; ``bridge_flags`` tell an ejector bridge how to drive it.
    """

    def __init__(self, log: Path, coils: int = 128, protocol: str = "modbus") -> None:
        self.port = free_port()
        self.log = log
        self.coils = coils
        self.protocol = protocol
        self.writes: list[CoilWrite] = []

    @property
    def bridge_flags(self) -> list[str]:
        if self.protocol == "modbus":
            return ["--modbus-port", str(self.port)]
        return ["--output", "opcua", "--opcua-url", f"opc.tcp://127.0.0.1:{self.port}/",
                "--opcua-namespace-uri", OPCUA_NAMESPACE]  # fmt: skip

    def __enter__(self) -> RecordingPlc:
        command = [sys.executable, "-m", "sortline_dev.plc", self.protocol, str(self.port), str(self.log),
                   str(self.coils)]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        if self._process.stdout.readline().strip() != "serving":
            raise RuntimeError(f"the {self.protocol} server did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._process.terminate()
        self._process.wait(10)
        self.writes = [CoilWrite(*json.loads(line)) for line in self.log.read_text().splitlines()]


def serve_opcua(port: int, log: Path, coils: int) -> None:
    from asyncua import Server, ua
    from asyncua.common.callback import CallbackType

    sys.setswitchinterval(0.0005)
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # its warnings about an unsecured test server
    out = log.open("w", buffering=1)

    async def run() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
        namespace = await server.register_namespace(OPCUA_NAMESPACE)
        bar = await server.nodes.objects.add_object(namespace, "Bar")
        for coil in range(coils):
            node = await bar.add_variable(ua.NodeId(f"Valve{coil}", namespace), f"Valve{coil}", False)
            await node.set_writable()

        def trace(event, _dispatcher) -> None:  # every client write, before the server applies it
            now = time.time_ns()
            for write in event.request_params.NodesToWrite:
                if write.NodeId.NamespaceIndex == namespace:
                    coil = int(str(write.NodeId.Identifier).removeprefix("Valve"))
                    out.write(json.dumps([now, coil, bool(write.Value.Value.Value)]) + "\n")

        server.iserver.subscribe_server_callback(CallbackType.PreWrite, trace)
        async with server:
            print("serving", flush=True)
            await asyncio.Event().wait()  # until terminated

    asyncio.run(run())


def serve(port: int, log: Path, coils: int) -> None:
    from pymodbus.pdu.bit_message import WriteMultipleCoilsRequest, WriteSingleCoilRequest
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    sys.setswitchinterval(0.0005)
    out = log.open("w", buffering=1)

    def trace(sending: bool, pdu):
        if not sending and isinstance(pdu, WriteSingleCoilRequest | WriteMultipleCoilsRequest):
            now = time.time_ns()
            for offset, bit in enumerate(pdu.bits):
                out.write(json.dumps([now, pdu.address + offset, bool(bit)]) + "\n")
        return pdu

    device = SimDevice(id=1, simdata=(
        [SimData(0, count=coils, values=False, datatype=DataType.BITS)], [SimData(0, datatype=DataType.BITS)],
        [SimData(0, datatype=DataType.REGISTERS)], [SimData(0, datatype=DataType.REGISTERS)],
    ))  # fmt: skip

    async def run() -> None:  # pymodbus binds its server to the loop running it
        server = ModbusTcpServer(device, address=("127.0.0.1", port), trace_pdu=trace)
        task = asyncio.create_task(server.serve_forever())
        while not server.is_active():
            await asyncio.sleep(0.01)
        print("serving", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    protocol, port, log_path, coils = sys.argv[1:5]
    (serve_opcua if protocol == "opcua" else serve)(int(port), Path(log_path), int(coils))
