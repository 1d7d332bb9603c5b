"""The benchmark's side of the broker: publishing its frames, clearing its lines, the broker's CPU.

Workers are started and tapped with the shared toolkit (``sortline_dev.processes``,
``sortline_dev.taps``), through their CLI exactly as an operator would, so the benchmark measures
whatever the worker's internals are today.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pika

from bench.frames import EncodedFrame
from sortline import topology
from sortline.topology import FRAMES_EXCHANGE, declare_line, frames_routing_key
from sortline_dev.broker import connect as broker_connect
from sortline_dev.metrics import Scrape
from sortline_dev.processes import ProcessFailed
from sortline_dev.publishing import frame_headers
from sortline_dev.publishing import frame_properties as frame_properties_of

CAMERA_ID = "bench-cam"


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
    """Something stopped the measurement (no broker, no decisions); the message says what.

    A worker process that dies raises :class:`ProcessFailed`: :data:`MEASUREMENT_FAILED` has both.
    """


MEASUREMENT_FAILED = (BenchError, ProcessFailed)


def connect(amqp_url: str) -> pika.BlockingConnection:
    try:
        return broker_connect(amqp_url, role="bench")
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
    """A camera's properties for frame ``seq``; the id names line, camera and seq, so it is unique."""
    return frame_properties_of(
        frame_headers(line_id, seq, source, camera_id), message_id=f"{line_id}-{camera_id}-{seq}"
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
        topology.delete_line(connection.channel(), line_id)
    finally:
        connection.close()


def stage_summary(scrapes: list[Scrape]) -> dict[str, Any]:
    """Stage seconds, the batch-size histogram and the shadow's counts, summed over workers."""
    totals: dict[str, dict[str, float]] = {}
    for kind in ("sum", "count"):
        for scrape in scrapes:
            for stage, value in scrape.values(f"sortline_worker_stage_seconds_{kind}", "stage").items():
                totals.setdefault(stage, {"sum": 0.0, "count": 0.0})[kind] += value
    batch = {
        kind: sum(scrape.total(f"sortline_inference_batch_size_{kind}") for scrape in scrapes)
        for kind in ("sum", "count")
    }
    stages = {
        stage: {
            "seconds_total": round(v["sum"], 4),
            "observations": int(v["count"]),
            "mean_ms": round(1000 * v["sum"] / v["count"], 3) if v["count"] else None,
        }
        for stage, v in sorted(totals.items())
    }
    shadow = {
        key: int(sum(scrape.total(f"sortline_shadow_{key}_total") for scrape in scrapes))
        for key in ("decisions", "skipped")
    }
    return {
        "stages": stages,
        "shadow": shadow,
        "batches": int(batch["count"]),
        "mean_batch_size": round(batch["sum"] / batch["count"], 2) if batch["count"] else None,
    }
