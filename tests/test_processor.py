"""The batch processor without a broker: deadlines, poison frames, and order of outcomes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from classifier_worker.frames import Delivery
from classifier_worker.metrics import WorkerMetrics
from classifier_worker.processor import BatchProcessor, Decided, Prepared, Rejected, Retry
from classifier_worker.settings import WorkerSettings
from sortline.messages import DeadLetterReason
from sortline_runtime.model import CascadeModel


class FlakyModel:
    """Wraps a real model: fails any batch holding a pure white frame, optionally slows every pass."""

    def __init__(self, model: CascadeModel, delay_s: float = 0.0) -> None:
        self.model = model
        self.manifest = model.manifest
        self.version = model.version
        self.delay_s = delay_s
        self.on_gpu = False

    def predict(self, batch: np.ndarray):
        time.sleep(self.delay_s)
        if (batch.reshape(len(batch), -1).min(axis=1) > 2.0).any():  # white, after normalisation
            raise RuntimeError("simulated kernel crash on this frame")
        return self.model.predict(batch)

    def decide(self, prediction):
        return self.model.decide(prediction)


def delivery(
    tag: int,
    color: int,
    expiration: str | None = None,
    captured_ago_s: float = 0.0,
    count: int = 0,
    body: bytes | None = None,
):
    body = body or cv2.imencode(".jpg", np.full((80, 80, 3), color, dtype=np.uint8))[1].tobytes()
    headers = {"line_id": "l", "camera_id": "c", "seq": tag, "x-delivery-count": count,
               "captured_at_ns": time.time_ns() - int(captured_ago_s * 1e9)}  # fmt: skip
    content_type = "image/png" if body.startswith(b"\x89PNG") else "image/jpeg"
    return Delivery(tag, False, "frames.l.c", body, content_type, f"m{tag}", expiration, headers)


@pytest.fixture
def make_processor(tiny_model_dir: Path):
    executor = ThreadPoolExecutor(2)

    def make(delay_s: float = 0.0) -> BatchProcessor:
        model = FlakyModel(CascadeModel.load(tiny_model_dir), delay_s)
        settings = WorkerSettings(model=tiny_model_dir, line_id="l", metrics_port=0)
        return BatchProcessor(model, settings, WorkerMetrics(CollectorRegistry()), executor)  # type: ignore[arg-type]

    yield make
    executor.shutdown()


def test_outcomes_keep_the_order_of_deliveries(make_processor) -> None:
    outcomes = make_processor().process([delivery(1, 10), delivery(2, 10), delivery(3, 10)])
    assert [o.delivery.delivery_tag for o in outcomes] == [1, 2, 3]
    assert all(isinstance(o, Decided) for o in outcomes)


def test_a_frame_already_past_its_deadline_is_refused_before_decoding(make_processor) -> None:
    (outcome,) = make_processor().process([delivery(1, 10, expiration="100", captured_ago_s=1.0)])
    assert isinstance(outcome, Rejected) and outcome.reason is DeadLetterReason.EXPIRED


def test_a_frame_whose_deadline_passes_during_inference_is_not_decided(make_processor) -> None:
    outcomes = make_processor(delay_s=0.3).process([delivery(1, 10, expiration="150"), delivery(2, 10)])
    assert isinstance(outcomes[0], Rejected) and outcomes[0].reason is DeadLetterReason.EXPIRED
    assert isinstance(outcomes[1], Decided)


def test_a_frame_that_breaks_inference_is_retried_alone_and_its_neighbours_decided(make_processor) -> None:
    outcomes = make_processor().process([delivery(1, 10), delivery(2, 255), delivery(3, 10)])
    assert isinstance(outcomes[0], Decided) and isinstance(outcomes[2], Decided)
    assert isinstance(outcomes[1], Retry)


def test_a_frame_that_broke_inference_on_earlier_deliveries_is_poison(make_processor) -> None:
    (outcome,) = make_processor().process([delivery(1, 255, count=2)])
    assert isinstance(outcome, Rejected) and outcome.reason is DeadLetterReason.POISON


#: 1200 x 1200 8-bit RGB PNG: ~8 MiB to decode, over a 1 MiB large-frame threshold.
LARGE_PNG = cv2.imencode(".png", np.full((1200, 1200, 3), 90, dtype=np.uint8))[1].tobytes()


def test_large_frames_decode_in_a_lane_of_their_own(tiny_model_dir: Path) -> None:
    settings = WorkerSettings(model=tiny_model_dir, line_id="l", metrics_port=0,
                              large_frame_bytes=2**20, large_frame_backlog=1)  # fmt: skip
    release = threading.Event()
    with ThreadPoolExecutor(2) as decode, ThreadPoolExecutor(1) as large:
        processor = BatchProcessor(
            CascadeModel.load(tiny_model_dir), settings, WorkerMetrics(CollectorRegistry()), decode,
            large_lane=large,
        )  # fmt: skip
        large.submit(release.wait, 10)  # the lane is busy with another large frame
        waiting = processor.submit(delivery(1, 0, body=LARGE_PNG))
        refused = processor.submit(delivery(2, 0, body=LARGE_PNG)).result(timeout=1)
        small = processor.submit(delivery(3, 10)).result(timeout=5)  # not held up by the lane
        assert not waiting.done()
        release.set()
        decided = waiting.result(timeout=10)
    assert isinstance(refused, Rejected) and refused.reason is DeadLetterReason.IMAGE_TOO_LARGE
    assert "wait for their decode lane" in refused.detail
    assert isinstance(small, Prepared) and isinstance(decided, Prepared)
