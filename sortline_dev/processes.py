"""Sortline's commands run as an operator runs them: subprocesses, their own /metrics port, SIGTERM.

Tests, the benchmark and the demo start workers (and other services) through this module only,
so each of them exercises the process a plant runs, not an assembly of its parts.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from sortline.connection import TlsFiles
from sortline_dev.broker import process_env
from sortline_dev.metrics import Scrape, scrape_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessFailed(RuntimeError):
    """A service process exited, or never became ready; the message carries the end of its log."""


#: Ports handed to services: below Linux's ephemeral range (32768-60999), from which the kernel
#: assigns ports to every outgoing connection and every ``bind(0)``, so that a port found free here
#: is not taken by someone else's connection before the service binds it.
SERVICE_PORTS = range(20_000, 32_768)


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now, picked at random from :data:`SERVICE_PORTS`."""
    for port in random.sample(SERVICE_PORTS, 50):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ProcessFailed("no free port in 50 tries")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc); NaN if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class ServiceProcess:
    """One Sortline command (``python -m <module>``) with a /metrics port, its log kept in a file.

    ``metrics_port=False`` is for a tool without one (``trainer review``): no ``--metrics-port``.
    """

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        amqp_url: str,
        *,
        metrics_port: int | Literal[False] | None = None,
        log_level: str = "WARNING",
        tls: TlsFiles | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        self.module = module
        self.metrics_port = free_port() if metrics_port is None else metrics_port
        port = [] if metrics_port is False else ["--metrics-port", str(self.metrics_port)]
        self.command = [sys.executable, "-m", module, *args, *port, "--log-level", log_level]
        self.env = process_env(amqp_url, tls)
        self.cpus = cpus  # run on these cores only (a benchmark's "one core")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        if self.alive:
            raise ProcessFailed(f"{self.module} is already running (pid {self.process.pid})")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        pin = (lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=pin
        )
        return self

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if not self.alive:
            code = self.process.returncode if self.process else None
            raise ProcessFailed(f"{self.module} exited with {code}: {self.output()[-2000:]}")

    def output(self) -> str:
        """What the process wrote to stdout and stderr so far (all of it, once stopped)."""
        if self._log.closed:
            return self._final_output
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid) if self.process else float("nan")

    def metrics(self) -> Scrape:
        return scrape_port(self.metrics_port)

    def wait_ready(self, timeout: float = 120.0, *, ready_metric: str | None = None) -> ServiceProcess:
        """Wait for /metrics to answer: services serve it once they are set up (a worker's model warm).

        With ``ready_metric``, the answer counts only if it has that metric (so that another
        process on the same port is not taken for this one). A service that lost a race for its
        port is started again on another.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive and "Address already in use" in self.output():
                self._restart_on_another_port()
            self.check_alive()
            try:
                scraped = self.metrics()
            except OSError:
                time.sleep(0.1)
                continue
            if ready_metric is None or any(s.name.startswith(ready_metric) for s in scraped.samples):
                return self
            time.sleep(0.1)
        raise ProcessFailed(f"{self.module} did not serve /metrics within {timeout:.0f} s")

    def wait_serving(self, timeout: float = 120.0) -> ServiceProcess:
        """Wait for ``/readyz`` to answer 200: the service is connected and doing its job."""
        from sortline.health import probe

        self.wait_ready(timeout)
        deadline = time.monotonic() + timeout
        while not probe(f"http://127.0.0.1:{self.metrics_port}/readyz")[0]:
            self.check_alive()
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.module} did not become ready within {timeout:.0f} s")
            time.sleep(0.1)
        return self

    def _restart_on_another_port(self) -> None:
        self.stop()
        index = self.command.index("--metrics-port") + 1
        self.metrics_port = free_port()
        self.command[index] = str(self.metrics_port)
        self.start()

    def kill(self) -> int:
        """SIGKILL, as a crash or the OOM killer would end it."""
        self.process.kill()
        return self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code (negative: killed by a signal)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if not self._log.closed:
            self._final_output = self.output()
            self._log.close()
        return self.process.returncode


class WorkerProcess(ServiceProcess):
    """``classifier-worker`` for one line; ready once its model is loaded and it serves metrics."""

    def __init__(
        self, amqp_url: str, line_id: str, model_dir: Path | None = None, *args: str, **options: object
    ) -> None:
        flags = ["--line-id", line_id, *(["--model", str(model_dir)] if model_dir else []), *args]
        super().__init__("classifier_worker.cli", flags, amqp_url, **options)  # type: ignore[arg-type]
        self.line_id = line_id

    def wait_ready(self, timeout: float = 120.0, *, ready_metric: str | None = None) -> ServiceProcess:
        return super().wait_ready(timeout, ready_metric=ready_metric or "sortline_model_info")


class AgentProcess(ServiceProcess):
    """``camera-agent`` publishing ``source`` to one line."""

    def __init__(
        self, amqp_url: str, line_id: str, source: str | Path, *args: str, camera_id: str = "cam-1",
        **options: object,
    ) -> None:  # fmt: skip
        flags = ["--source", str(source), "--line-id", line_id, "--camera-id", camera_id, *args]
        super().__init__("camera_agent.cli", flags, amqp_url, **options)  # type: ignore[arg-type]
        self.line_id = line_id

    def wait(self, timeout: float) -> int:
        """Its exit code, once it has published everything (folder sources end by themselves)."""
        return self.process.wait(timeout)
