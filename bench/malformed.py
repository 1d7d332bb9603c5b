"""(f) valid throughput with malformed frames mixed in, against clean drains run alongside.

Issue 5's target: with as many malformed messages as valid ones in the queue, every bad one is
dead-lettered and valid decisions/s stays >= 90% of a clean run. Rejecting a bad frame costs a
header check or a failed decode plus a confirmed dead-letter publish; this measures that cost.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pika

from bench.broker import (
    BenchError,
    DecisionTap,
    WorkerProcess,
    connect,
    delete_line,
    frame_properties,
    new_line_id,
    publish,
    stop_all,
)
from bench.frames import EncodedFrame, cycle
from bench.pipeline import Progress, rate, wait_for
from sortline.topology import FRAMES_EXCHANGE, declare_line, frames_routing_key

CAMERA_ID = "bench-cam"


def malformed_messages(
    line_id: str, good: bytes, count: int, seed: int = 3
) -> list[tuple[bytes, pika.BasicProperties]]:
    """``count`` bad messages cycling through the kinds a camera or a bug can produce."""
    rng = random.Random(seed)
    messages = []
    for index in range(count):
        properties = frame_properties(line_id, 1_000_000 + index, "malformed", CAMERA_ID)
        kind = index % 5
        if kind == 0:
            body = good[: rng.randint(2, 150)]  # truncated
        elif kind == 1:
            body = rng.randbytes(rng.randint(100, 4000))  # random bytes
        elif kind == 2:
            body, properties.headers = good, None  # no headers
        elif kind == 3:
            body, properties.content_type = good, "application/octet-stream"
        else:
            body, properties.headers = good, {**properties.headers, "seq": "not-a-number"}
        messages.append((body, properties))
    return messages


def prefill_mixed(amqp_url: str, line_id: str, valid: list[EncodedFrame], bad: list) -> None:
    """Valid and bad messages alternating, so the worker meets bad ones in every batch."""
    connection = connect(amqp_url)
    try:
        channel = connection.channel()
        declare_line(channel, line_id)
        for seq, frame in enumerate(valid):
            publish(channel, line_id, seq, frame, camera_id=CAMERA_ID)
            if seq < len(bad):
                body, properties = bad[seq]
                channel.basic_publish(
                    FRAMES_EXCHANGE, frames_routing_key(line_id, CAMERA_ID), body, properties
                )
        declare_line(channel, line_id)  # a round trip: the broker has read everything before it
    finally:
        connection.close()


def dead_letters_counted(worker: WorkerProcess) -> int:
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in worker.scrape().splitlines()
            if line.startswith("sortline_dead_letters_total{")
        )
    )


def wait_for_dead_letters(worker: WorkerProcess, count: int, timeout: float = 30.0) -> int:
    """The last malformed frame may still be in flight when the last valid decision arrives."""
    deadline = time.monotonic() + timeout
    while (counted := dead_letters_counted(worker)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return counted


def drain(
    amqp_url: str,
    model_dir: Path | None,
    valid: list[EncodedFrame],
    malformed: int,
    progress: Progress,
    worker_args: tuple[str, ...],
) -> tuple[float, int]:
    """One worker drains a fresh line holding ``valid`` interleaved with ``malformed`` bad messages.

    Returns valid decisions/s at the tap and the dead letters the worker counted.
    """
    line_id = new_line_id("bench-bad" if malformed else "bench-clean")
    bad = malformed_messages(line_id, valid[0].jpeg, malformed)
    tap = DecisionTap(amqp_url, line_id)
    worker = None
    try:
        prefill_mixed(amqp_url, line_id, valid, bad)
        worker = WorkerProcess(amqp_url, line_id, model_dir, list(worker_args)).start()
        wait_for(tap, [worker], len(valid), progress)
        worker.wait_ready()
        dead_lettered = wait_for_dead_letters(worker, len(bad)) if bad else 0
    finally:
        stop_all([worker] if worker else [])
        tap.close()
        delete_line(amqp_url, line_id)
    if len(tap.arrivals) != len(valid):
        raise BenchError(f"{len(tap.arrivals)} decisions for {len(valid)} valid frames")
    return rate([a.received_ns for a in tap.arrivals])[0], dead_lettered


def measure_malformed(
    amqp_url: str,
    model_dir: Path | None,
    frames: list[EncodedFrame],
    count: int,
    progress: Progress = lambda _: None,
    worker_args: tuple[str, ...] = (),
    rounds: int = 2,
) -> dict[str, Any]:
    """``rounds`` pairs of drains: ``count`` valid frames alone, then the same interleaved with
    ``count`` malformed ones. Clean and mixed alternate, seconds apart, so a shared host that
    speeds up or slows down over the run (it does: 10-20 % within minutes) biases neither side, as
    it would if the mixed drain were compared with section (b) minutes earlier.
    """
    valid = cycle(frames, count)
    clean_rates, mixed_rates, dead_lettered = [], [], 0
    for _ in range(rounds):
        clean_rates.append(drain(amqp_url, model_dir, valid, 0, progress, worker_args)[0])
        mixed, dead = drain(amqp_url, model_dir, valid, count, progress, worker_args)
        mixed_rates.append(mixed)
        dead_lettered += dead
    return {
        "valid_frames": count,
        "malformed_frames": count,
        "rounds": rounds,
        "dead_lettered": dead_lettered,
        "dead_lettered_expected": count * rounds,
        "clean_decisions_per_s_each": clean_rates,
        "valid_decisions_per_s_each": mixed_rates,
        "clean_decisions_per_s": sum(clean_rates) / rounds,
        "valid_decisions_per_s": sum(mixed_rates) / rounds,
    }
