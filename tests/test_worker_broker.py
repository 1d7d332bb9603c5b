"""The worker on the real RabbitMQ: bad frames become dead letters with reasons, the rest are decided."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pika
import pytest

from sortline.messages import DEAD_LETTER_REASON_HEADER, DecisionMessage
from sortline.topology import FRAMES_EXCHANGE, decisions_queue, frames_routing_key
from sortline_dev.processes import WorkerProcess
from sortline_dev.publishing import frame_headers, frame_properties, publish_frames
from sortline_dev.taps import dead_letter_tap, decisions_tap
from tests.support.workers import running_worker

pytestmark = pytest.mark.broker


def jpeg(color: tuple[int, int, int]) -> bytes:
    image = np.full((96, 128, 3), color, dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.mark.parametrize("decode", ["cpu", "device"])  # device: torchvision's decoder, here on the CPU
def test_bad_frames_are_dead_lettered_with_reasons_and_valid_neighbours_decided(
    amqp_url, line_id, tiny_model_dir, decode
):
    valid = [
        (jpeg((0, 200, 0)), frame_headers(line_id, i, source=f"ok/{i}.jpg"), "image/jpeg") for i in range(6)
    ]
    corrupt = (jpeg((0, 0, 0))[:150], frame_headers(line_id, 100, source="bad/corrupt.jpg"), "image/jpeg")
    headerless = (jpeg((0, 0, 0)), None, "image/jpeg")
    wrong_type = (b"{}", frame_headers(line_id, 101), "application/json")
    messages = [*valid[:3], corrupt, headerless, wrong_type, *valid[3:]]
    with decisions_tap(amqp_url, line_id) as decisions, dead_letter_tap(amqp_url, line_id) as dead:
        publish_frames(amqp_url, line_id, messages)
        with running_worker(amqp_url, line_id, tiny_model_dir, max_batch=4, decode=decode) as worker:
            decided = decisions.collect(6, timeout=20)
            dead_letters = dead.collect(3, timeout=10)
            decisions.settle()
        reasons = sorted(m.properties.headers[DEAD_LETTER_REASON_HEADER] for m in dead_letters)
        assert reasons == ["missing-headers", "undecodable-image", "unsupported-content-type"]
        assert sorted(DecisionMessage.from_json(m.body).source for m in decided) == sorted(
            f"ok/{i}.jpg" for i in range(6)
        )
        assert all(m.routing_key == f"decisions.{line_id}.organic" for m in decided)  # green -> organic
        samples = [s for metric in worker.registry.collect() for s in metric.samples]
        assert sum(s.value for s in samples if s.name == "sortline_decisions_total") == 6


def test_dead_letter_keeps_the_frame_so_it_can_be_replayed(amqp_url, line_id, tiny_model_dir):
    body = jpeg((1, 2, 3))[:100]
    with dead_letter_tap(amqp_url, line_id) as dead:
        publish_frames(amqp_url, line_id, [(body, frame_headers(line_id, 7, source="x.jpg"), "image/jpeg")])
        with running_worker(amqp_url, line_id, tiny_model_dir):
            (letter,) = dead.collect(1, timeout=10)
    assert letter.body == body
    assert letter.properties.headers["source"] == "x.jpg" and letter.properties.headers["seq"] == 7
    assert "x-sortline-detail" in letter.properties.headers


def test_sigterm_finishes_in_flight_frames_and_exits_zero(amqp_url, line_id, tiny_model_dir):
    messages = [(jpeg((0, 0, 200)), frame_headers(line_id, i), "image/jpeg") for i in range(40)]
    worker = WorkerProcess(amqp_url, line_id, tiny_model_dir, "--max-batch", "8")
    with decisions_tap(amqp_url, line_id) as decisions, worker:
        worker.wait_ready(timeout=60)
        publish_frames(amqp_url, line_id, messages)
        decisions.collect(1, timeout=20)
        assert worker.stop() == 0, worker.output()
        time.sleep(0.5)
        decided_now = len(decisions.settle())
    # Whatever the worker had taken it finished; the rest waits in the queue, none is lost.
    with decisions_tap(amqp_url, line_id) as rest, running_worker(amqp_url, line_id, tiny_model_dir):
        rest.collect(40 - decided_now, timeout=20)
        rest.settle()
    seqs = [json.loads(m.body)["seq"] for m in decisions.received + rest.received]
    assert sorted(seqs) == list(range(40))


def test_a_poison_frame_is_dead_lettered_after_bounded_deliveries(amqp_url, line_id, tiny_model_dir):
    from sortline_runtime.model import CascadeModel
    from tests.test_processor import FlakyModel

    model = FlakyModel(CascadeModel.load(tiny_model_dir))
    messages = [(jpeg((10, 10, 10)), frame_headers(line_id, 0), "image/jpeg"),
                (jpeg((255, 255, 255)), frame_headers(line_id, 1), "image/jpeg"),
                (jpeg((10, 10, 10)), frame_headers(line_id, 2), "image/jpeg")]  # fmt: skip
    with decisions_tap(amqp_url, line_id) as decisions, dead_letter_tap(amqp_url, line_id) as dead:
        publish_frames(amqp_url, line_id, messages)
        with running_worker(amqp_url, line_id, tiny_model_dir, model=model):
            (letter,) = dead.collect(1, timeout=20)
            decided = decisions.collect(2, timeout=10)
            decisions.settle()
    assert letter.properties.headers[DEAD_LETTER_REASON_HEADER] == "poison"
    assert letter.properties.headers["seq"] == 1
    assert sorted(DecisionMessage.from_json(m.body).seq for m in decided) == [0, 2]


def test_a_dead_letter_that_cannot_be_published_goes_to_the_queues_own_dlx(
    amqp_url, line_id, tiny_model_dir, monkeypatch
):
    """Whatever makes our dead letter unpublishable, the frame is settled: rejected without requeue,
    so RabbitMQ dead-letters it as it came (``x-death`` reason ``rejected``); nothing reconnects."""
    import classifier_worker.consumer as consumer_module

    publish_dead_letter = consumer_module.publish_dead_letter

    def unpublishable(channel, delivery, *args):
        if delivery.headers and delivery.headers.get("seq") == 13:
            raise ValueError("a value the encoder cannot write")
        return publish_dead_letter(channel, delivery, *args)

    monkeypatch.setattr(consumer_module, "publish_dead_letter", unpublishable)
    bad = jpeg((1, 2, 3))[:100]
    messages = [(bad, frame_headers(line_id, seq), "image/jpeg") for seq in (13, 14)]
    messages.append((jpeg((0, 200, 0)), frame_headers(line_id, 15), "image/jpeg"))
    with (
        decisions_tap(amqp_url, line_id) as decisions,
        dead_letter_tap(amqp_url, line_id) as dead,
        running_worker(amqp_url, line_id, tiny_model_dir) as worker,
    ):
        publish_frames(amqp_url, line_id, messages)
        letters = dead.collect(2, timeout=10)
        decided = decisions.collect(1, timeout=10)
        fallbacks = worker.registry.get_sample_value("sortline_worker_dead_letter_fallbacks_total")
        reconnects = worker.registry.get_sample_value("sortline_worker_reconnects_total")
    by_seq = {m.properties.headers["seq"]: m.properties.headers for m in letters}
    assert by_seq[13]["x-death"][0]["reason"] == "rejected" and DEAD_LETTER_REASON_HEADER not in by_seq[13]
    assert by_seq[14][DEAD_LETTER_REASON_HEADER] == "undecodable-image"
    assert len(decided) == 1 and fallbacks == 1 and reconnects == 0


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_decisions_wait_in_the_lines_queue_for_a_bridge(amqp_url, line_id, tiny_model_dir):
    frames = [(jpeg((0, 200, 0)), frame_headers(line_id, seq), "image/jpeg") for seq in range(12)]
    with running_worker(amqp_url, line_id, tiny_model_dir):
        publish_frames(amqp_url, line_id, frames)
        deadline = time.monotonic() + 20
        while queue_depth(amqp_url, decisions_queue(line_id)) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert queue_depth(amqp_url, decisions_queue(line_id)) == 12


def test_a_decision_no_queue_takes_is_counted_not_lost_silently(amqp_url, line_id, tiny_model_dir):
    with running_worker(amqp_url, line_id, tiny_model_dir) as worker:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        channel.queue_delete(decisions_queue(line_id))  # e.g. deleted by hand
        # Published by hand: publish_frames declares the line again, decisions queue included.
        properties = frame_properties(frame_headers(line_id, 0))
        channel.basic_publish(
            FRAMES_EXCHANGE, frames_routing_key(line_id, "cam-1"), jpeg((0, 200, 0)), properties
        )
        connection.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not worker.registry.get_sample_value(
            "sortline_decisions_unroutable_total", {"line": line_id}
        ):
            time.sleep(0.1)
        unroutable = worker.registry.get_sample_value(
            "sortline_decisions_unroutable_total", {"line": line_id}
        )
        in_flight = worker.registry.get_sample_value("sortline_worker_in_flight_frames")
    assert unroutable == 1
    assert in_flight == 0  # the frame was settled all the same
