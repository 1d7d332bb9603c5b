"""(b) and (e): decisions per second of 1..N worker processes draining a pre-filled queue.
(c): capture-to-decision latency of one warm worker fed by a paced publisher.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.broker import (
    BenchError,
    confirmed_channel,
    connect,
    delete_line,
    local_broker_pid,
    new_line_id,
    prefill,
    publish,
    stage_summary,
)
from bench.frames import EncodedFrame, cycle
from sortline.messages import DecisionMessage
from sortline.topology import declare_line
from sortline_dev.processes import WorkerProcess, process_cpu_seconds
from sortline_dev.taps import Tap

Progress = Callable[[int], None]
FIRST_DECISION_TIMEOUT = 180.0  # model load + warm-up of a cold worker on a busy machine
STALL_TIMEOUT = 60.0


def decided_ns(decision: DecisionMessage) -> int:
    """When the worker decided (its own clock): capture time plus the latency it reported."""
    return int(decision.captured_at_ns + decision.latency_ms * 1e6)


def wait_for(tap: Tap, workers: list[WorkerProcess], count: int, progress: Progress) -> None:
    """Poll the tap until ``count`` decisions arrived; fail on a dead worker or a stall."""
    last_change, seen = time.monotonic(), 0
    while seen < count:
        received = tap.poll(0.05)
        now = time.monotonic()
        if received != seen:
            seen, last_change = received, now
            progress(seen)
        limit = FIRST_DECISION_TIMEOUT if seen == 0 else STALL_TIMEOUT
        if now - last_change > limit:
            raise BenchError(f"only {seen} of {count} decisions after waiting {limit:.0f} s")
        for worker in workers:
            worker.check_alive()


def stop_all(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.stop()


def rate(times_ns: list[int]) -> tuple[float, float]:
    """(events per second from the first to the last event, seconds spanned).

    Events sharing the first timestamp (the first batch) happened before the clock started, so
    only the later ones count: a batch-sized head start would otherwise inflate the rate.
    """
    ordered = sorted(times_ns)
    span = (ordered[-1] - ordered[0]) / 1e9
    after_first = sum(1 for t in ordered if t > ordered[0])
    return (after_first / span if span > 0 else float("nan")), span


def measure_throughput(
    amqp_url: str,
    model_dir: Path | None,
    frames: list[EncodedFrame],
    count: int,
    workers: int = 1,
    progress: Progress = lambda _: None,
    worker_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Pre-fill a fresh line with ``count`` frames, start ``workers`` workers, time the decisions."""
    line_id = new_line_id()
    tap = Tap.for_decisions(amqp_url, line_id)
    processes: list[WorkerProcess] = []
    batch = cycle(frames, count)
    try:
        prefill(amqp_url, line_id, batch)
        processes = [
            WorkerProcess(amqp_url, line_id, model_dir, *worker_args).start() for _ in range(workers)
        ]
        broker_pid = local_broker_pid()
        wait_for(tap, processes, 1, progress)
        cpu_first = sum(p.cpu_seconds() for p in processes)
        broker_first = process_cpu_seconds(broker_pid) if broker_pid else None
        wait_for(tap, processes, count, progress)
        cpu_last = sum(p.cpu_seconds() for p in processes)
        broker_last = process_cpu_seconds(broker_pid) if broker_pid else None
        for process in processes:  # a worker still warming up when the queue ran dry has no /metrics yet
            process.wait_ready()
        metrics = stage_summary([p.metrics() for p in processes])
    finally:
        stop_all(processes)
        tap.close()
        delete_line(amqp_url, line_id)
    arrivals = tap.received
    decisions = [a.decision() for a in arrivals]
    decisions_per_s, seconds = rate([decided_ns(d) for d in decisions])
    tap_rate, _ = rate([a.received_ns for a in arrivals])
    bins = Counter(d.bin for d in decisions)
    return {
        "workers": workers,
        "line_id": line_id,
        "frames": count,
        "decisions": len(arrivals),
        "unique_frames_decided": len({d.frame_id for d in decisions}),
        "decisions_per_s": decisions_per_s,
        "seconds_first_to_last": seconds,
        "decisions_per_s_at_tap": tap_rate,
        "frame_bytes_mean": round(float(np.mean([len(f.jpeg) for f in batch]))),
        "worker_cpu_seconds_per_decision": (cpu_last - cpu_first) / max(1, len(arrivals) - 1),
        "broker_cpu_seconds_per_decision": (  # None when the broker runs on another machine
            (broker_last - broker_first) / max(1, len(arrivals) - 1) if broker_pid else None
        ),
        "bins": dict(sorted(bins.items())),
        **metrics,
    }


def _paced_publisher(
    amqp_url: str, line_id: str, frames: list[EncodedFrame], fps: float, seconds: float, out: dict
) -> None:
    try:
        connection = connect(amqp_url)
        channel = confirmed_channel(connection)
        total = max(1, int(fps * seconds))
        started = time.perf_counter()
        for seq in range(total):
            delay = started + seq / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            publish(channel, line_id, seq, frames[seq % len(frames)])  # captured_at_ns = now
            out["published"] = seq + 1
        out["seconds"] = time.perf_counter() - started
        connection.close()
    except Exception as error:
        out["error"] = error


def _warm_up(amqp_url: str, line_id: str, frames: list[EncodedFrame], tap, worker, count: int = 32) -> None:
    connection = connect(amqp_url)
    try:
        channel = confirmed_channel(connection)
        for seq in range(count):
            publish(channel, line_id, seq, frames[seq % len(frames)], camera_id="bench-warmup")
    finally:
        connection.close()
    wait_for(tap, [worker], count, lambda _: None)


def percentiles(values: list[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(data.max()),
        "mean_ms": float(data.mean()),
    }


def measure_latency(
    amqp_url: str,
    model_dir: Path | None,
    frames: list[EncodedFrame],
    fps: float,
    seconds: float,
    progress: Progress = lambda _: None,
    worker_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A warm worker, frames published at ``fps`` for ``seconds``; capture-to-decision percentiles."""
    line_id = new_line_id()
    tap = Tap.for_decisions(amqp_url, line_id)
    worker = WorkerProcess(amqp_url, line_id, model_dir, *worker_args)
    published: dict[str, Any] = {"published": 0}
    try:
        connection = connect(amqp_url)
        declare_line(connection.channel(), line_id)
        connection.close()
        worker.start().wait_ready()
        _warm_up(amqp_url, line_id, frames, tap, worker)
        warm = len(tap.received)
        publisher = threading.Thread(
            target=_paced_publisher, args=(amqp_url, line_id, frames, fps, seconds, published), daemon=True
        )
        publisher.start()
        while publisher.is_alive():
            progress(tap.poll(0.05) - warm)
            worker.check_alive()
        if "error" in published:
            raise BenchError(f"paced publisher failed: {published['error']!r}")
        wait_for(tap, [worker], warm + published["published"], lambda n: progress(n - warm))
        metrics = stage_summary([worker.metrics()])
    finally:
        stop_all([worker])
        tap.close()
        delete_line(amqp_url, line_id)
    measured = [(a, a.decision()) for a in tap.received]
    measured = [(a, d) for a, d in measured if d.camera_id != "bench-warmup"]
    worker_ms = [d.latency_ms for _, d in measured]
    tap_ms = [(a.received_ns - d.captured_at_ns) / 1e6 for a, d in measured]
    return {
        "line_id": line_id,
        "target_fps": fps,
        "achieved_publish_fps": published["published"] / published["seconds"],
        "seconds": published["seconds"],
        "published": published["published"],
        "decided": len(measured),
        **percentiles(worker_ms),
        "at_tap": percentiles(tap_ms),
        **metrics,
    }
