"""The envelope checks a frame passes before any decoding: origin, capture time, frame id, source."""

from __future__ import annotations

import time

import pytest

from classifier_worker.frames import Delivery, FramePolicy, check_frame
from sortline.messages import DeadLetterReason, FrameHeaders, InvalidFrame, normalise_relative_path

NOW = 1_800_000_000 * 10**9
POLICY = FramePolicy(line_id="line-a", max_body_bytes=1024, cameras=frozenset({"cam-1", "cam-2"}))


def delivery(routing_key: str = "frames.line-a.cam-1", message_id: object = "f-1", **headers) -> Delivery:
    fields = {"line_id": "line-a", "camera_id": "cam-1", "seq": 1, "captured_at_ns": NOW} | headers
    return Delivery(1, False, routing_key, b"\xff\xd8", "image/jpeg", message_id, None, fields)  # type: ignore[arg-type]


def refusal(d: Delivery) -> InvalidFrame:
    with pytest.raises(InvalidFrame) as caught:
        check_frame(d, POLICY, now_ns=NOW)
    return caught.value


def test_a_frame_of_this_line_from_an_allowed_camera_passes() -> None:
    assert check_frame(delivery(), POLICY, now_ns=NOW).frame_id == "f-1"


@pytest.mark.parametrize(
    ("d", "reason", "detail"),
    [
        (delivery(line_id="line-b"), DeadLetterReason.LINE_MISMATCH, "line_id header 'line-b'"),
        (delivery("frames.line-b.cam-1"), DeadLetterReason.LINE_MISMATCH, "routing key line 'line-b'"),
        (delivery("frames.line-b.cam-1", line_id="line-b"), DeadLetterReason.LINE_MISMATCH, "worker line"),
        (delivery(camera_id="cam-2"), DeadLetterReason.LINE_MISMATCH, "routing key camera 'cam-1'"),
        (delivery("sortline.frames.line-a"), DeadLetterReason.LINE_MISMATCH, "not frames.<line>.<camera>"),
        (delivery("frames.line-a.cam-9", camera_id="cam-9"), DeadLetterReason.CAMERA_NOT_ALLOWED, "cam-9"),
    ],
)
def test_a_frame_names_one_line_and_one_camera_everywhere(d, reason, detail) -> None:
    error = refusal(d)
    assert error.reason is reason and detail in error.detail


def test_any_camera_may_publish_when_none_are_pinned() -> None:
    open_policy = FramePolicy(line_id="line-a", max_body_bytes=1024)
    assert check_frame(delivery("frames.line-a.cam-9", camera_id="cam-9"), open_policy, now_ns=NOW)


@pytest.mark.parametrize(
    ("captured_at_ns", "detail"),
    [
        (NOW + 6 * 10**9, "in the future"),
        (2**63 - 1, "in the future"),
        (NOW - 86_401 * 10**9, "ago"),
        (1, "ago"),
    ],
)
def test_capture_times_outside_the_window_are_refused(captured_at_ns, detail) -> None:
    error = refusal(delivery(captured_at_ns=captured_at_ns))
    assert error.reason is DeadLetterReason.BAD_CAPTURE_TIME and detail in error.detail


def test_a_camera_clock_slightly_ahead_is_accepted() -> None:
    assert check_frame(delivery(captured_at_ns=NOW + 4 * 10**9), POLICY, now_ns=NOW)


@pytest.mark.parametrize("message_id", ["x" * 129, "", "with space", b"\xff\xfe", "tab\there", "é"])
def test_frame_ids_are_bounded_printable_ascii(message_id) -> None:
    error = refusal(delivery(message_id=message_id))
    assert error.reason is DeadLetterReason.INVALID_HEADERS and "message_id" in error.detail


def test_a_frame_without_message_id_gets_one_from_its_headers() -> None:
    assert check_frame(delivery(message_id=None), POLICY, now_ns=NOW).frame_id == f"line-a.cam-1.{NOW}"


def test_details_quote_sender_values_cut_short() -> None:
    error = refusal(delivery("frames." + "x" * 300 + ".cam-1"))
    assert len(error.detail) < 200


@pytest.mark.parametrize(
    ("source", "normalised"),
    [
        ("../../etc/passwd", "etc/passwd"),
        ("/abs/path.jpg", "abs/path.jpg"),
        ("a\\..\\..\\b.jpg", "a/b.jpg"),
        ("glass/./g1.jpg", "glass/g1.jpg"),
        ("bad\x00name\x1b[31m.jpg", "badname[31m.jpg"),
        ("plastic/p1.jpg", "plastic/p1.jpg"),
    ],
)
def test_sources_become_relative_paths_that_stay_in_their_folder(source, normalised) -> None:
    assert normalise_relative_path(source) == normalised
    headers = FrameHeaders(line_id="l", camera_id="c", seq=0, captured_at_ns=time.time_ns(), source=source)
    assert headers.source == normalised
