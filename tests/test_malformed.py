"""Malformed messages among valid ones: all dead-lettered with reasons, every valid frame decided.

Size: SORTLINE_MALFORMED_FRAMES malformed among as many valid (default 200, CI-friendly; the
issue's figure is 1,000). The throughput cost is measured by the benchmark, not here.
"""

from __future__ import annotations

import json
import os
import random
import time

import cv2
import numpy as np
import pytest

from sortline.messages import DEAD_LETTER_REASON_HEADER
from sortline_dev.publishing import frame_headers, publish_frames
from sortline_dev.taps import dead_letter_tap, decisions_tap
from tests.support.workers import running_worker
from tests.test_imaging import claim_size

pytestmark = pytest.mark.broker

COUNT = int(os.environ.get("SORTLINE_MALFORMED_FRAMES", "200"))

GOOD = cv2.imencode(".jpg", np.full((384, 512, 3), (40, 90, 160), dtype=np.uint8))[1].tobytes()


def malformed(line_id: str, index: int, rng: random.Random) -> tuple[bytes, dict | None, str | None, str]:
    """One bad message of a kind chosen by ``index``, with the reason it must get."""
    headers = frame_headers(line_id, 100_000 + index)
    kinds = [
        (GOOD[: rng.randint(2, 150)], headers, "image/jpeg", "undecodable-image"),
        (rng.randbytes(rng.randint(1, 3000)), headers, "image/jpeg", "undecodable-image"),
        (b"", headers, "image/jpeg", "empty-body"),
        (GOOD, None, "image/jpeg", "missing-headers"),
        (GOOD, {**headers, "seq": "seven"}, "image/jpeg", "invalid-headers"),
        (GOOD, headers, "text/plain", "unsupported-content-type"),
        (claim_size(GOOD, 60000, 60000), headers, "image/jpeg", "image-too-large"),
    ]
    return kinds[index % len(kinds)]


def test_malformed_frames_are_all_dead_lettered_and_valid_ones_all_decided(amqp_url, line_id, tiny_model_dir):
    rng = random.Random(7)
    bad = [malformed(line_id, i, rng) for i in range(COUNT)]
    good = [(GOOD, frame_headers(line_id, i), "image/jpeg") for i in range(COUNT)]
    mixed = [message for pair in zip(good, bad, strict=True) for message in (pair[0], pair[1][:3])]
    oversized = (b"\xff\xd8" + bytes(9 * 1024 * 1024), frame_headers(line_id, 999_999), "image/jpeg")
    with decisions_tap(amqp_url, line_id) as decided, dead_letter_tap(amqp_url, line_id) as dead:
        publish_frames(amqp_url, line_id, [*mixed, oversized], confirm=False)
        with running_worker(amqp_url, line_id, tiny_model_dir, max_batch=16):
            deadline = time.monotonic() + 120
            while len(decided.received) < COUNT or len(dead.received) < COUNT + 1:
                assert time.monotonic() < deadline, (len(decided.received), len(dead.received))
                decided.collect(COUNT, timeout=0.2)
                dead.collect(COUNT + 1, timeout=0.2)
            decided.settle()
            dead.settle()
    assert sorted(json.loads(m.body)["seq"] for m in decided.received) == list(range(COUNT))
    reasons = [m.properties.headers[DEAD_LETTER_REASON_HEADER] for m in dead.received]
    expected = [reason for *_, reason in bad] + ["oversized-body"]
    assert sorted(reasons) == sorted(expected)
