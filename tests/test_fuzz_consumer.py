"""Hypothesis feeds the running worker mixed good and bad frames through the real broker.

Whatever arrives, every message ends exactly once: valid frames as decisions, the rest as dead
letters with a reason, and the worker keeps going.
"""

from __future__ import annotations

import itertools
import time
from decimal import Decimal
from typing import Any

import cv2
import numpy as np
import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sortline.messages import DEAD_LETTER_REASON_HEADER, DeadLetterReason
from sortline.topology import FRAMES_EXCHANGE, declare_line, frames_routing_key
from sortline_dev.taps import dead_letter_tap, decisions_tap
from tests.support.workers import running_worker

pytestmark = pytest.mark.broker

VALID_JPEG = cv2.imencode(".jpg", np.full((120, 160, 3), (30, 120, 200), dtype=np.uint8))[1].tobytes()
REASONS = {reason.value for reason in DeadLetterReason}
ids = itertools.count()


@st.composite
def messages(draw: st.DrawFn, line_id: str) -> tuple[bytes, dict[str, Any] | None, str | None, bool]:
    """(body, headers, content_type, valid?) where validity is known by construction."""
    body_kind = draw(st.sampled_from(["valid", "valid", "random", "truncated", "empty"]))
    body = {
        "valid": VALID_JPEG,
        "random": draw(st.binary(min_size=1, max_size=2048)),
        "truncated": VALID_JPEG[: draw(st.integers(min_value=2, max_value=120))],
        "empty": b"",
    }[body_kind]
    headers_kind = draw(st.sampled_from(["valid", "valid", "none", "missing", "mistyped"]))
    headers: dict[str, Any] | None = {
        "line_id": line_id,
        "camera_id": "fz",
        "seq": 1,
        "captured_at_ns": time.time_ns(),
    }
    if headers_kind == "none":
        headers = None
    elif headers_kind == "missing":
        headers.pop(draw(st.sampled_from(sorted(headers))))
    elif headers_kind == "mistyped":
        key = draw(st.sampled_from(["seq", "captured_at_ns", "line_id"]))
        headers[key] = draw(st.sampled_from(["12", "x.y", -5, Decimal("1.5"), True]))
    content_type = draw(st.sampled_from(["image/jpeg", "image/jpeg", "text/plain", None]))
    valid = body_kind == "valid" and headers_kind == "valid" and content_type == "image/jpeg"
    return body, headers, content_type, valid


def test_every_fuzzed_message_ends_exactly_once(amqp_url, line_id, tiny_model_dir):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    declare_line(channel, line_id)
    with (
        decisions_tap(amqp_url, line_id) as decided,
        dead_letter_tap(amqp_url, line_id) as dead,
        running_worker(amqp_url, line_id, tiny_model_dir, max_batch=4),
    ):

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(messages(line_id), min_size=1, max_size=6))
        def run(batch) -> None:
            expected: dict[str, bool] = {}
            for body, headers, content_type, valid in batch:
                message_id = f"fz-{next(ids)}"
                expected[message_id] = valid
                properties = pika.BasicProperties(
                    content_type=content_type, headers=headers, message_id=message_id
                )
                channel.basic_publish(FRAMES_EXCHANGE, frames_routing_key(line_id, "fz"), body, properties)
            outcomes: dict[str, list[str]] = {}
            deadline = time.monotonic() + 20
            while not set(expected) <= set(outcomes) and time.monotonic() < deadline:
                decided.collect(len(decided.received) + 1, timeout=0.05)
                dead.collect(len(dead.received) + 1, timeout=0.05)
                outcomes = {}
                for m in decided.received:
                    outcomes.setdefault(m.properties.message_id, []).append("decision")
                for m in dead.received:
                    outcomes.setdefault(m.properties.message_id, []).append(
                        m.properties.headers[DEAD_LETTER_REASON_HEADER]
                    )
            for message_id, valid in expected.items():
                assert len(outcomes.get(message_id, [])) == 1, (message_id, outcomes.get(message_id))
                (outcome,) = outcomes[message_id]
                assert (outcome == "decision") is valid, (message_id, outcome)
                assert outcome == "decision" or outcome in REASONS

        run()
    connection.close()
