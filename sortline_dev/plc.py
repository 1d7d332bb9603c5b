"""A PLC for tests and the benchmark: pymodbus's own Modbus/TCP server, recording every coil write
with the time it arrived.

It runs in a process of its own (``python -m sortline_dev.plc``), so that what it measures is the
bridge's timing, not how long the process that started it kept it from the interpreter lock.
"""

from __future__ import annotations

import asyncio
import json
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


class RecordingPlc:
    """A PLC with ``coils`` coils on device 1 on 127.0.0.1; ``writes`` is filled when it stops."""

    def __init__(self, log: Path, coils: int = 128) -> None:
        self.port = free_port()
        self.log = log
        self.coils = coils
        self.writes: list[CoilWrite] = []

    def __enter__(self) -> RecordingPlc:
        command = [
            sys.executable,
            "-m",
            "sortline_dev.plc",
            str(self.port),
            str(self.log),
            str(self.coils),
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        if self._process.stdout.readline().strip() != "serving":
            raise RuntimeError("the Modbus server did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._process.terminate()
        self._process.wait(10)
        self.writes = [CoilWrite(*json.loads(line)) for line in self.log.read_text().splitlines()]


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
    serve(int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
