"""Faults on the real broker: connections cut by RabbitMQ mid-stream lose nothing.

Each test closes only its own process's connection (found by its ``connection_name``) with
``rabbitmqctl close_connection``, so other tests and processes using the broker are unaffected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import Counter

import pika
import pytest

from sortline.topology import frames_queue
from sortline_dev.processes import AgentProcess
from sortline_dev.publishing import frame_headers, publish_frames
from sortline_dev.taps import decisions_tap
from tests.support.workers import running_worker
from tests.test_worker_broker import jpeg

pytestmark = pytest.mark.broker

RABBITMQCTL = shutil.which("rabbitmqctl")


def close_connections_named(fragment: str) -> int:
    """Close every broker connection whose name contains ``fragment``; returns how many."""
    listing = subprocess.run(
        [RABBITMQCTL, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    closed = 0
    for line in listing.stdout.splitlines():
        if fragment in line:
            pid = line.split("\t", 1)[0]
            subprocess.run(
                [RABBITMQCTL, "close_connection", pid, "fault test"], capture_output=True, timeout=60
            )
            closed += 1
    return closed


needs_rabbitmqctl = pytest.mark.skipif(
    RABBITMQCTL is None and not os.environ.get("CI"), reason="needs rabbitmqctl on this machine"
)


def queued_seqs(amqp_url: str, line_id: str) -> list[int]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    seqs = []
    while (message := channel.basic_get(frames_queue(line_id), auto_ack=True))[0] is not None:
        seqs.append(message[1].headers["seq"])
    connection.close()
    return seqs


@needs_rabbitmqctl
def test_agent_resends_unconfirmed_frames_after_its_connection_is_cut(
    amqp_url, line_id, sample_images, tmp_path
):
    folder = tmp_path / "replay"
    folder.mkdir()
    frames = 300  # 10 s at 30 fps: time to find the agent's connection with rabbitmqctl (1-2 s a call)
    for index in range(frames):
        shutil.copy(sample_images[index % len(sample_images)], folder / f"{index:04d}.jpg")
    with AgentProcess(amqp_url, line_id, folder, "--fps", "30") as agent:
        agent.wait_ready(timeout=60)
        deadline = time.monotonic() + 8
        while not close_connections_named(f"sortline-camera-agent line={line_id}"):
            assert time.monotonic() < deadline, "the agent's connection was not found while it published"
            time.sleep(0.2)
        assert agent.wait(timeout=60) == 0
    assert "lost the broker" in agent.output()
    seqs = queued_seqs(amqp_url, line_id)
    assert sorted(set(seqs)) == list(range(frames))  # nothing lost
    assert len(seqs) - len(set(seqs)) <= 1  # at most the one frame in flight at the cut is sent twice


@needs_rabbitmqctl
def test_worker_reconnects_and_every_frame_is_decided(amqp_url, line_id, tiny_model_dir):
    total = 300
    publish_frames(
        amqp_url, line_id, [(jpeg((0, 90, 0)), frame_headers(line_id, i), "image/jpeg") for i in range(total)]
    )
    with (
        decisions_tap(amqp_url, line_id) as decisions,
        running_worker(amqp_url, line_id, tiny_model_dir, max_batch=8) as worker,
    ):
        decisions.collect(30, timeout=30)
        assert close_connections_named(f"sortline-worker line={line_id}") == 1
        deadline = time.monotonic() + 60
        while len({json.loads(m.body)["seq"] for m in decisions.received}) < total:
            assert time.monotonic() < deadline, "not every frame was decided after the reconnect"
            decisions.collect(len(decisions.received) + 1, timeout=1)
        decisions.settle()
        assert worker.consumer.ready.is_set()
    bodies = [json.loads(m.body) for m in decisions.received]
    counts = Counter(b["seq"] for b in bodies)
    duplicated = {seq for seq, n in counts.items() if n > 1}
    assert set(counts) == set(range(total))
    # A frame decided twice must be one the broker redelivered, and its second decision says so.
    for seq in duplicated:
        assert any(b["redelivered"] for b in bodies if b["seq"] == seq)


def broker_dead_lettered(rabbitmq_metrics, reason: str) -> float:
    """RabbitMQ's own count of messages its quorum queues dead-lettered for ``reason``."""
    name = f"rabbitmq_global_messages_dead_lettered_{reason}_total"
    return rabbitmq_metrics().total(name, queue_type="rabbit_quorum_queue")


def test_a_full_line_queue_drops_its_oldest_frames_to_the_dead_letters(amqp_url, line_id, rabbitmq_metrics):
    from sortline.topology import FRAME_QUEUE_MAX_LENGTH
    from sortline_dev.taps import dead_letter_tap

    extra = 7
    body = jpeg((5, 5, 5))
    counted_before = broker_dead_lettered(rabbitmq_metrics, "maxlen")
    with dead_letter_tap(amqp_url, line_id) as dead:
        publish_frames(
            amqp_url,
            line_id,
            [(body, frame_headers(line_id, i), "image/jpeg") for i in range(FRAME_QUEUE_MAX_LENGTH + extra)],
            confirm=False,  # thousands of confirms would dominate the test; the queue depth is checked
        )
        dropped = dead.collect(extra, timeout=20)
        dead.settle()
    assert [m.properties.headers["seq"] for m in dropped] == list(range(extra))  # the oldest went first
    assert all(m.properties.headers["x-death"][0]["reason"] == "maxlen" for m in dropped)
    # No worker saw these: the broker's own metric counts them (other tests may add to it).
    assert broker_dead_lettered(rabbitmq_metrics, "maxlen") - counted_before >= extra
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    depth = channel.queue_declare(frames_queue(line_id), passive=True).method.message_count
    _method, properties, _body = channel.basic_get(frames_queue(line_id), auto_ack=True)
    connection.close()
    assert depth == FRAME_QUEUE_MAX_LENGTH and properties.headers["seq"] == extra


def test_frames_expiring_in_the_queue_are_counted_by_the_broker(amqp_url, line_id, rabbitmq_metrics):
    """No worker for the line: frames with a 1 ms expiration die in the queue, where RabbitMQ counts them."""
    from sortline_dev.taps import dead_letter_tap

    count = 20
    counted_before = broker_dead_lettered(rabbitmq_metrics, "expired")
    with dead_letter_tap(amqp_url, line_id) as dead:
        frames = [(jpeg((1, 2, 3)), frame_headers(line_id, i), "image/jpeg") for i in range(count)]
        publish_frames(amqp_url, line_id, frames, expiration="1")
        expired = dead.collect(count, timeout=30)
    assert len(expired) == count
    assert all(m.properties.headers["x-death"][0]["reason"] == "expired" for m in expired)
    assert broker_dead_lettered(rabbitmq_metrics, "expired") - counted_before >= count


def test_no_frame_is_decided_after_its_deadline(amqp_url, line_id, tiny_model_dir):
    """A slow worker facing frames with a 150 ms deadline: late ones are dead-lettered, never decided."""
    from sortline_dev.taps import dead_letter_tap
    from sortline_runtime.model import CascadeModel
    from tests.test_processor import FlakyModel

    total, deadline_ms = 40, 150
    slow = FlakyModel(CascadeModel.load(tiny_model_dir), delay_s=0.08)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    with (
        decisions_tap(amqp_url, line_id) as decided,
        dead_letter_tap(amqp_url, line_id) as dead,
        running_worker(amqp_url, line_id, tiny_model_dir, model=slow, max_batch=2, prefetch=4),
    ):
        for seq in range(total):
            headers = frame_headers(line_id, seq)
            properties = pika.BasicProperties(
                content_type="image/jpeg",
                headers=headers,
                message_id=f"d{seq}",
                expiration=str(deadline_ms),
            )
            channel.basic_publish("sortline.frames", f"frames.{line_id}.cam-1", jpeg((0, 50, 0)), properties)
        deadline = time.monotonic() + 30
        while len(decided.received) + len(dead.received) < total and time.monotonic() < deadline:
            decided.collect(len(decided.received) + 1, timeout=0.1)
            dead.collect(len(dead.received) + 1, timeout=0.1)
    connection.close()
    latencies = [json.loads(m.body)["latency_ms"] for m in decided.received]
    reasons = [
        m.properties.headers.get("x-sortline-reason") or m.properties.headers["x-death"][0]["reason"]
        for m in dead.received
    ]
    assert len(latencies) + len(reasons) == total
    assert latencies and reasons  # the slow worker decided some frames in time and not others
    assert max(latencies) <= deadline_ms
    assert set(reasons) == {"expired"}
