"""Talking to RabbitMQ and to worker processes: publishing frames, tapping decisions, scraping /metrics.

The worker is started through its CLI exactly as an operator would, so the benchmark measures
whatever the worker's internals are today.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from bench.frames import EncodedFrame
from sortline.messages import FrameHeaders
from sortline.topology import (
    DECISIONS_EXCHANGE,
    FRAMES_EXCHANGE,
    declare_exchanges,
    declare_line,
    frames_queue,
    frames_routing_key,
)

CAMERA_ID = "bench-cam"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc); NaN if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def local_broker_pid() -> int | None:
    """The pid of a RabbitMQ (Erlang ``beam.smp``) running on this machine, if there is one.

    On a 2-core machine the broker shares the cores with the worker, so its CPU time per frame
    is part of the pipeline's budget; with a remote broker this is None and nothing is charged.
    """
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "beam.smp":
                return int(stat.parent.name)
        except OSError:
            continue
    return None


class BenchError(RuntimeError):
    """Something stopped the measurement (no broker, a worker that died); the message says what."""


def connect(amqp_url: str) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(pika.URLParameters(amqp_url))
    except (pika.exceptions.AMQPError, OSError) as error:
        raise BenchError(f"cannot connect to RabbitMQ: {error!r}") from None


def confirmed_channel(connection: pika.BlockingConnection):
    """A channel whose publishes each wait for the broker's confirm.

    Without confirms, messages still inside the broker when the publisher closes its connection
    can be dropped: a 32-frame burst followed by close() lost 6-12 of them about once in 15 runs,
    which the latency section then reported as a stalled worker.
    """
    channel = connection.channel()
    channel.confirm_delivery()
    return channel


def new_line_id(prefix: str = "bench") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def frame_properties(line_id: str, seq: int, source: str, camera_id: str = CAMERA_ID) -> pika.BasicProperties:
    now_ns = time.time_ns()
    headers = FrameHeaders(
        line_id=line_id, camera_id=camera_id, seq=seq, captured_at_ns=now_ns, source=source
    ).to_amqp()
    return pika.BasicProperties(
        content_type="image/jpeg",
        message_id=f"{line_id}-{camera_id}-{seq}",
        timestamp=now_ns // 1_000_000_000,
        headers=headers,
        delivery_mode=2,
    )


def publish(channel, line_id: str, seq: int, frame: EncodedFrame, camera_id: str = CAMERA_ID) -> None:
    channel.basic_publish(
        FRAMES_EXCHANGE,
        frames_routing_key(line_id, camera_id),
        frame.jpeg,
        frame_properties(line_id, seq, frame.source, camera_id),
    )


def prefill(amqp_url: str, line_id: str, frames: list[EncodedFrame], timeout: float = 120.0) -> None:
    """Declare the line and put every frame in its queue; return once the queue holds them all."""
    connection = connect(amqp_url)
    try:
        channel = connection.channel()
        queue = declare_line(channel, line_id)
        for seq, frame in enumerate(frames):
            publish(channel, line_id, seq, frame)
        deadline = time.monotonic() + timeout
        while True:
            depth = channel.queue_declare(queue, passive=True).method.message_count
            if depth >= len(frames):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"queue {queue} holds {depth} of {len(frames)} frames after {timeout:.0f} s")
            connection.process_data_events(time_limit=0.1)
    finally:
        connection.close()


def delete_line(amqp_url: str, line_id: str) -> None:
    try:
        connection = connect(amqp_url)
    except BenchError:
        return
    try:
        connection.channel().queue_delete(frames_queue(line_id))
    finally:
        connection.close()


@dataclass
class Arrival:
    received_ns: int  # wall clock when the tap got it
    decision: dict


class DecisionTap:
    """An exclusive queue on ``sortline.decisions`` bound to ``decisions.<line>.#``."""

    def __init__(self, amqp_url: str, line_id: str) -> None:
        self.connection = connect(amqp_url)
        channel = self.connection.channel()
        declare_exchanges(channel)
        self.queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(self.queue, DECISIONS_EXCHANGE, f"decisions.{line_id}.#")
        channel.basic_consume(self.queue, self._on_message, auto_ack=True)
        self.arrivals: list[Arrival] = []

    def _on_message(self, _channel, _method, _properties, body: bytes) -> None:
        self.arrivals.append(Arrival(time.time_ns(), json.loads(body)))

    def poll(self, seconds: float = 0.05) -> int:
        self.connection.process_data_events(time_limit=seconds)
        return len(self.arrivals)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class WorkerProcess:
    """One ``classifier_worker.cli`` subprocess with its own /metrics port."""

    amqp_url: str
    line_id: str
    model_dir: Path | None
    extra_args: list[str] = field(default_factory=list)
    metrics_port: int = field(default_factory=free_port)

    def start(self) -> WorkerProcess:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        args = [sys.executable, "-m", "classifier_worker.cli", "--line-id", self.line_id,
                "--metrics-port", str(self.metrics_port), "--log-level", "WARNING"]  # fmt: skip
        if self.model_dir is not None:
            args += ["--model", str(self.model_dir)]
        self.process = subprocess.Popen(
            [*args, *self.extra_args],
            env={**os.environ, "AMQP_URL": self.amqp_url},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"worker exited with {self.process.returncode}: {self.output()[-2000:]}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker so far (from /proc)."""
        return process_cpu_seconds(self.process.pid)

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """The worker serves /metrics once its model is loaded and warmed up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                self.scrape()
                return
            except OSError:
                time.sleep(0.1)
        raise BenchError(f"worker did not serve /metrics within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def stop_all(workers: Iterable[WorkerProcess]) -> None:
    for worker in workers:
        if hasattr(worker, "process"):
            worker.stop()


_SAMPLE = re.compile(r"^(\w+)(?:\{(.*?)\})? (\S+)$", re.MULTILINE)


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (name, dict(re.findall(r'(\w+)="([^"]*)"', labels or "")), float(value))
        for name, labels, value in _SAMPLE.findall(text)
    ]


def stage_summary(texts: list[str]) -> dict[str, Any]:
    """``sortline_worker_stage_seconds`` and the batch-size histogram summed over workers."""
    totals: dict[str, dict[str, float]] = {}
    batch = {"sum": 0.0, "count": 0.0}
    for text in texts:
        for name, labels, value in metric_samples(text):
            if name.startswith("sortline_worker_stage_seconds_") and "stage" in labels:
                kind = name.rsplit("_", 1)[1]
                if kind in ("sum", "count"):
                    totals.setdefault(labels["stage"], {"sum": 0.0, "count": 0.0})[kind] += value
            elif name in ("sortline_inference_batch_size_sum", "sortline_inference_batch_size_count"):
                batch[name.rsplit("_", 1)[1]] += value
    stages = {
        stage: {
            "seconds_total": round(v["sum"], 4),
            "observations": int(v["count"]),
            "mean_ms": round(1000 * v["sum"] / v["count"], 3) if v["count"] else None,
        }
        for stage, v in sorted(totals.items())
    }
    return {
        "stages": stages,
        "batches": int(batch["count"]),
        "mean_batch_size": round(batch["sum"] / batch["count"], 2) if batch["count"] else None,
    }
