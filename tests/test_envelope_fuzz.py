"""Raw AMQP envelopes, as any client may write them, through the real broker into a running worker.

pika's encoder is bypassed (``tests.support.amqp_wire`` writes the content header byte by byte):
doubles, floats, timestamps past the year 9999, nested tables and arrays, 64-bit extremes, headers
that nearly fill an AMQP frame, forged line and camera ids, repeated frame ids, capture times from
another era, 16-bit PNGs, padded JPEGs. They are interleaved with valid frames. The worker (a real
``classifier-worker`` process) must never exit or reconnect; every valid frame is decided exactly
once and only into its own line's stream; every other envelope is dead-lettered with its reason,
dropped as a repeat (counted), or refused by the broker before any worker sees it.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import cv2
import numpy as np
import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sortline.messages import (
    DEAD_LETTER_DROPPED_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DeadLetterReason,
    DecisionMessage,
)
from sortline.topology import FRAMES_EXCHANGE, declare_line, frames_routing_key
from sortline_dev.processes import WorkerProcess
from sortline_dev.taps import dead_letter_tap, decisions_tap
from tests.support.amqp_wire import RawProperties, Typed, encode_properties

pytestmark = pytest.mark.broker

ALLOWED_CAMERAS = ("cam-1", "cam-2")
#: The worker's decode budget in this test: small, so that a modest 16-bit PNG exceeds it.
DECODE_BUDGET = 2 * 1024 * 1024
#: The largest content header payload RabbitMQ's default frame (131,072 bytes) carries: the frame
#: adds 8 bytes (type, channel, size, end marker).
CONTENT_HEADER_MAX = 131_072 - 8

JPEG = cv2.imencode(".jpg", np.full((96, 128, 3), (40, 90, 160), dtype=np.uint8))[1].tobytes()
_DQT = JPEG.index(b"\xff\xdb")
PADDED_JPEG = JPEG[:_DQT] + b"\x00\x00\x00" + JPEG[_DQT:]  # bytes between two segments: libjpeg skips them
SMALL_PNG16 = cv2.imencode(".png", np.full((64, 64, 3), 30_000, dtype=np.uint16))[1].tobytes()
#: 600 x 600 x 3 samples x 2 bytes + the 8-bit result: ~3.1 MiB to decode, over DECODE_BUDGET.
LARGE_PNG16 = cv2.imencode(".png", np.tile(np.arange(600, dtype=np.uint16) * 100, (600, 1))[..., None]
                           .repeat(3, axis=2))[1].tobytes()  # fmt: skip


@dataclass
class Envelope:
    """One message to publish and what must become of it."""

    expect: str  # "decision", a dead-letter reason, "repeat" or "refused" (by the broker)
    headers: dict[Any, Any] | None
    body: bytes = field(default=JPEG, repr=False)
    camera: str = "cam-1"
    content_type: str = "image/jpeg"
    message_id: Any = field(default_factory=lambda: f"fz-{uuid.uuid4().hex[:12]}")
    expiration: str | None = None
    #: An extra check on the decision or dead letter.
    check: Callable[[Any], None] | None = field(default=None, repr=False)


def base_headers(line: str, camera: str = "cam-1") -> dict[str, Any]:
    return {"line_id": line, "camera_id": camera, "seq": 7, "captured_at_ns": time.time_ns()}


# Header values other clients send; none of them is a contract header, so they change nothing.
exotic_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: Typed("d", v)),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(lambda v: Typed("f", v)),
    st.integers(min_value=0, max_value=2**64 - 1).map(lambda v: Typed("T", v)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda v: Typed("l", v)),
    st.integers(min_value=-128, max_value=127).map(lambda v: Typed("b", v)),
    st.integers(min_value=0, max_value=255).map(lambda v: Typed("D", (v, 12345))),
    st.binary(max_size=64),
    st.text(max_size=64),
    st.none(),
    st.booleans(),
)
nested_values = st.recursive(
    exotic_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def valid_with_exotic_extras(line: str, draw: st.DrawFn) -> Envelope:
    extras = draw(st.dictionaries(st.text(min_size=1, max_size=16).map(lambda k: f"x-{k}"), nested_values,
                                  max_size=5))  # fmt: skip
    return Envelope("decision", {**base_headers(line), **extras})


def near_frame_max(line: str, draw: st.DrawFn) -> Envelope:
    """A content header within 100 bytes of the broker's frame size; with a bad body its dead letter
    would outgrow the frame if the worker copied every header and added its reason and detail."""
    headers = {**base_headers(line), "pad": ""}
    envelope = Envelope("decision", headers)
    slack = draw(st.integers(min_value=0, max_value=100))
    headers["pad"] = "p" * (CONTENT_HEADER_MAX - content_header_size(envelope) - slack)
    if draw(st.booleans()):
        return envelope

    def check(dead: pika.BasicProperties) -> None:
        assert "pad" in dead.headers[DEAD_LETTER_DROPPED_HEADER]
        assert dead.headers["line_id"] == line and dead.headers["seq"] == 7  # the contract's kept

    return Envelope(DeadLetterReason.UNDECODABLE_IMAGE, headers, body=JPEG[:300], check=check)


def mistyped_contract_header(line: str, draw: st.DrawFn) -> Envelope:
    name, value = draw(st.sampled_from([
        ("seq", Typed("d", 3.0)), ("seq", Typed("T", 1_700_000_000)), ("seq", Typed("T", 2**40)),
        ("seq", "7"), ("seq", {"a": 1}), ("seq", [7]), ("seq", True), ("seq", Decimal("7")),
        ("seq", Typed("l", -1)), ("captured_at_ns", Typed("d", float(time.time_ns()))),
        ("captured_at_ns", Typed("d", 1e21)), ("captured_at_ns", Typed("T", 2**62)),
        ("captured_at_ns", Typed("T", 32_503_680_000)), ("captured_at_ns", Typed("d", 3.25e19)),  # year 3000
        ("belt_x", Typed("d", 1.5)), ("belt_x", Typed("d", -0.1)), ("bbox", [1, 2, 3]),
        ("bbox", [1, 2, 3, 2**40]), ("line_id", "a.b"), ("item_id", Typed("d", 1.0)), ("source", "s" * 1025),
    ]))  # fmt: skip
    return Envelope(DeadLetterReason.INVALID_HEADERS, {**base_headers(line), name: value})


def well_typed_by_other_clients(line: str, draw: st.DrawFn) -> Envelope:
    """Contract values in AMQP types pika would not pick, all still meaning what the contract says."""
    name, value, field_name, expected = draw(st.sampled_from([
        ("belt_x", Typed("d", 0.42), "belt_x", 0.42),  # pika alone truncates this to 0
        ("belt_x", Typed("f", 0.5), "belt_x", 0.5),
        ("seq", Typed("l", 2**63 - 1), "seq", 2**63 - 1),
        ("seq", Typed("u", 65535), "seq", 65535),
        ("line_id", line.encode(), "line_id", line),  # a byte array holding the id
        ("source", "../../etc/passwd", "source", "etc/passwd"),
        ("source", "C:\\frames\\..\\a.jpg", "source", "C:/frames/a.jpg"),
    ]))  # fmt: skip

    def check(decision: DecisionMessage) -> None:
        got = getattr(decision, field_name, None)
        if field_name == "belt_x":
            return  # not echoed in decisions (yet); accepted is what is checked
        assert got == expected, (field_name, got)

    return Envelope("decision", {**base_headers(line), name: value}, check=check)


def bad_capture_time(line: str, draw: st.DrawFn) -> Envelope:
    value = draw(st.sampled_from([
        2**63 - 1, 1, time.time_ns() + 60 * 10**9, time.time_ns() - 8 * 86_400 * 10**9,
    ]))  # fmt: skip
    return Envelope(DeadLetterReason.BAD_CAPTURE_TIME, {**base_headers(line), "captured_at_ns": value})


def forged_origin(line: str, other_line: str, draw: st.DrawFn) -> Envelope:
    kind = draw(st.sampled_from(["other-line", "other-camera", "camera-not-allowed"]))
    if kind == "other-line":
        return Envelope(DeadLetterReason.LINE_MISMATCH, base_headers(other_line))
    if kind == "other-camera":
        return Envelope(DeadLetterReason.LINE_MISMATCH, base_headers(line, "cam-2"), camera="cam-1")
    return Envelope(DeadLetterReason.CAMERA_NOT_ALLOWED, base_headers(line, "cam-x"), camera="cam-x")


def odd_image(line: str, draw: st.DrawFn) -> Envelope:
    body, content_type, expect = draw(st.sampled_from([
        (PADDED_JPEG, "image/jpeg", "decision"),
        (SMALL_PNG16, "image/png", "decision"),
        (LARGE_PNG16, "image/png", DeadLetterReason.IMAGE_TOO_LARGE),
    ]))  # fmt: skip
    return Envelope(expect, base_headers(line), body=body, content_type=content_type)


def odd_message_id(line: str, draw: st.DrawFn) -> Envelope:
    unique = uuid.uuid4().hex  # a repeated id would be dropped as a repeat, not judged
    message_id = draw(st.sampled_from([unique + "m" * 160, b"\xff\xfe" + unique.encode(),
                                       f"has space {unique}", f"tab\t{unique}"]))  # fmt: skip
    return Envelope(DeadLetterReason.INVALID_HEADERS, base_headers(line), message_id=message_id)


def refused_by_broker(line: str, draw: st.DrawFn) -> Envelope:
    """RabbitMQ itself closes the publisher's connection or channel on these: no worker sees them."""
    headers, expiration = draw(st.sampled_from([
        ({**base_headers(line), "x": Typed("d", float("nan"))}, None),
        ({**base_headers(line), "x": Typed("d", float("-inf"))}, None),
        ({**base_headers(line), "x": Typed("Z", b"\x01\x02\x03")}, None),  # a type tag nobody knows
        (base_headers(line), "soon"),
    ]))  # fmt: skip
    return Envelope("refused", headers, expiration=expiration)


@st.composite
def envelopes(draw: st.DrawFn, line: str, other_line: str) -> list[Envelope]:
    """A batch: valid frames interleaved with hostile ones, and repeats of some of them."""
    builders = [valid_with_exotic_extras, near_frame_max, mistyped_contract_header,
                well_typed_by_other_clients, bad_capture_time, odd_image, odd_message_id, refused_by_broker,
                lambda ln, d: forged_origin(ln, other_line, d)]  # fmt: skip
    batch: list[Envelope] = []
    for _ in range(draw(st.integers(min_value=4, max_value=10))):
        batch.append(Envelope("decision", base_headers(line)))
        batch.append(draw(st.sampled_from(builders))(line, draw))
    repeats = draw(st.lists(st.sampled_from([e for e in batch if e.expect == "decision"]), max_size=3))
    batch += [Envelope("repeat", e.headers, message_id=e.message_id) for e in repeats]
    return batch


def content_header_size(envelope: Envelope) -> int:
    """Bytes of the envelope's content header payload: class, weight, body size, then properties."""
    return 12 + len(properties_of(envelope))


def properties_of(envelope: Envelope) -> bytes:
    return encode_properties(content_type=envelope.content_type, headers=envelope.headers,
                             expiration=envelope.expiration, message_id=envelope.message_id)  # fmt: skip


class RawPublisher:
    """Publishes hand-built envelopes with confirms; survives the broker refusing one."""

    def __init__(self, amqp_url: str, line: str) -> None:
        self.amqp_url, self.line = amqp_url, line
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._open_channel()

    def _open_channel(self) -> None:
        if not self.connection.is_open:
            self.connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, envelope: Envelope) -> bool:
        """True if the broker took it."""
        try:
            self.channel.basic_publish(FRAMES_EXCHANGE, frames_routing_key(self.line, envelope.camera),
                                       envelope.body, RawProperties(properties_of(envelope)))  # fmt: skip
            return True
        except pika.exceptions.AMQPError:  # the broker closed the channel or the connection
            self._open_channel()
            return False

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


def outcomes_by_id(decided, dead) -> dict[Any, list[tuple[str, Any]]]:
    outcomes: dict[Any, list[tuple[str, Any]]] = {}
    for message in decided.received:
        outcomes.setdefault(message.properties.message_id, []).append(
            ("decision", DecisionMessage.from_json(message.body))
        )
    for message in dead.received:
        reason = (message.properties.headers or {}).get(DEAD_LETTER_REASON_HEADER, "no-reason")
        outcomes.setdefault(message.properties.message_id, []).append((reason, message.properties))
    return outcomes


def wait_for_outcomes(decided, dead, ids: set, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    outcomes = outcomes_by_id(decided, dead)
    while not ids <= set(outcomes) and time.monotonic() < deadline:
        decided.collect(len(decided.received) + 1, timeout=0.05)
        dead.collect(len(dead.received) + 1, timeout=0.05)
        outcomes = outcomes_by_id(decided, dead)
    decided.settle(quiet=0.3)
    dead.settle(quiet=0.3)
    return outcomes_by_id(decided, dead)


def check_batch(batch: list[Envelope], published: list[bool], outcomes: dict, tally: Counter) -> None:
    for envelope, taken in zip(batch, published, strict=True):
        key = envelope.message_id
        if envelope.expect == "refused":
            assert not taken, "the broker took an envelope it should have refused"
            assert key not in outcomes
            tally["refused"] += 1
            continue
        assert taken, f"the broker refused an envelope expected to reach the worker: {envelope.expect}"
        if envelope.expect == "repeat":
            tally["repeat"] += 1
            continue  # its original's outcome is checked, and counts once
        got = outcomes.get(key, [])
        assert len(got) == 1, (envelope.expect, key, [kind for kind, _ in got])
        kind, detail = got[0]
        assert kind == envelope.expect, (key, kind, envelope.expect)
        if envelope.check is not None:
            envelope.check(detail)
        tally[kind] += 1


def test_no_envelope_stops_or_misleads_the_worker(amqp_url, line_id, tiny_model_dir):
    other_line = f"{line_id}-b"
    ids = itertools.count()
    tally: Counter[str] = Counter()
    publisher = RawPublisher(amqp_url, line_id)
    declare_line(publisher.channel, line_id)
    worker = WorkerProcess(amqp_url, line_id, tiny_model_dir, "--cameras", ",".join(ALLOWED_CAMERAS),
                            "--max-decoded-bytes", str(DECODE_BUDGET), "--max-batch", "8")  # fmt: skip
    with (
        decisions_tap(amqp_url, line_id) as decided,
        decisions_tap(amqp_url, other_line) as other_stream,
        dead_letter_tap(amqp_url, line_id) as dead,
        worker,
    ):
        worker.wait_ready(timeout=60)

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(envelopes(line_id, other_line))
        def run(batch: list[Envelope]) -> None:
            next(ids)
            decided.received.clear()  # each batch is judged on its own outcomes only
            dead.received.clear()
            published = [publisher.publish(envelope) for envelope in batch]
            expected = {e.message_id for e, ok in zip(batch, published, strict=True) if ok}
            outcomes = wait_for_outcomes(decided, dead, expected)
            check_batch(batch, published, outcomes, tally)
            worker.check_alive()

        run()
        metrics = worker.metrics()
        other_stream.settle(quiet=0.5)
    publisher.close()
    assert worker.process.returncode == 0, worker.output()[-3000:]  # exited only when told to, cleanly
    assert metrics.total("sortline_worker_reconnects_total") == 0
    assert metrics.total("sortline_worker_duplicate_frames_total") == tally["repeat"]
    assert metrics.total("sortline_worker_dead_letter_fallbacks_total") == 0
    assert other_stream.received == []  # nothing decided into another line's stream
    for reason, count in tally.items():
        if reason not in ("decision", "repeat", "refused"):
            assert metrics.total("sortline_dead_letters_total", reason=reason) == count, reason
    print(f"envelope fuzz: {next(ids)} batches, {sum(tally.values())} envelopes: {dict(tally)}")
    assert tally["decision"] > 0 and tally["refused"] > 0 and tally["repeat"] > 0
