"""Message schema v1: frame headers through pika's real AMQP table codec, decision JSON round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pika import data as amqp_data

from sortline.messages import DeadLetterReason, DecisionMessage, FrameHeaders, InvalidFrame

identifiers = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=64
)


def amqp_round_trip(table: dict) -> dict:
    """Encode and decode a headers table exactly as pika does on the wire."""
    pieces: list[bytes] = []
    amqp_data.encode_table(pieces, table)
    decoded, _ = amqp_data.decode_table(b"".join(pieces), 0)
    return decoded


@given(
    line=identifiers,
    camera=identifiers,
    seq=st.integers(min_value=0, max_value=2**62),
    captured=st.integers(min_value=1, max_value=2**63 - 1),
    source=st.none() | st.text(max_size=200),
    item=st.none() | identifiers,
    bbox=st.none() | st.tuples(*[st.integers(min_value=0, max_value=10_000)] * 4),
    belt_x=st.none() | st.floats(min_value=0.0, max_value=1.0),
    deadline=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
    views=st.none() | st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=8),
)
def test_frame_headers_survive_the_wire(
    line, camera, seq, captured, source, item, bbox, belt_x, deadline, views
) -> None:
    headers = FrameHeaders(
        line_id=line, camera_id=camera, seq=seq, captured_at_ns=captured, source=source, item_id=item,
        bbox=bbox, belt_x=belt_x, deadline_ns=deadline, eject_at_ns=deadline, view_bytes=views,
    )  # fmt: skip
    decoded = FrameHeaders.from_amqp(amqp_round_trip(headers.to_amqp()))
    assert decoded.model_dump(exclude={"belt_x"}) == headers.model_dump(exclude={"belt_x"})
    if belt_x is None:
        assert decoded.belt_x is None
    else:
        assert decoded.belt_x == pytest.approx(belt_x, abs=1e-6)


def valid() -> dict:
    return {"line_id": "l1", "camera_id": "c1", "seq": 3, "captured_at_ns": 1_700_000_000_000_000_000}


@pytest.mark.parametrize(
    ("headers", "reason", "detail"),
    [
        (None, DeadLetterReason.MISSING_HEADERS, "no headers"),
        ({}, DeadLetterReason.MISSING_HEADERS, "no headers"),
        ({"line_id": "l1"}, DeadLetterReason.MISSING_HEADERS, "camera_id, seq, captured_at_ns"),
        ({**valid(), "seq": "3"}, DeadLetterReason.INVALID_HEADERS, "seq"),
        ({**valid(), "captured_at_ns": 1.5}, DeadLetterReason.INVALID_HEADERS, "captured_at_ns"),
        ({**valid(), "line_id": "a.b"}, DeadLetterReason.INVALID_HEADERS, "line_id"),
        ({**valid(), "seq": -1}, DeadLetterReason.INVALID_HEADERS, "seq"),
        ({**valid(), "seq": True}, DeadLetterReason.INVALID_HEADERS, "seq"),
        ({**valid(), "deadline_ns": 1.5e18}, DeadLetterReason.INVALID_HEADERS, "deadline_ns"),
        ({**valid(), "belt_span": [0.6, 0.2]}, DeadLetterReason.INVALID_HEADERS, "belt_span"),
        ({**valid(), "view_bytes": [0]}, DeadLetterReason.INVALID_HEADERS, "view_bytes"),
        ({**valid(), "view_bytes": [1] * 9}, DeadLetterReason.INVALID_HEADERS, "view_bytes"),
    ],
)
def test_bad_headers_name_their_reason(headers, reason, detail) -> None:
    with pytest.raises(InvalidFrame) as caught:
        FrameHeaders.from_amqp(headers)
    assert caught.value.reason is reason
    assert detail in caught.value.detail


@given(st.dictionaries(st.text(max_size=20), st.integers() | st.text(max_size=20) | st.none(), max_size=8))
def test_arbitrary_headers_either_parse_or_raise_invalid_frame(headers) -> None:
    try:
        FrameHeaders.from_amqp(headers)
    except InvalidFrame as error:
        assert error.reason in (DeadLetterReason.MISSING_HEADERS, DeadLetterReason.INVALID_HEADERS)


def decision(**overrides) -> DecisionMessage:
    fields = {
        "frame_id": "f1", "line_id": "l1", "camera_id": "c1", "seq": 0, "source": "glass/g1.jpg",
        "bin": "glass", "confidence": 0.9, "p_organic": 0.01, "material": "glass",
        "material_probs": {"cardboard": 0.02, "glass": 0.9, "metal": 0.02, "paper": 0.02,
                           "plastic": 0.02, "trash": 0.02},
        "model_version": "v1", "captured_at": "2026-11-24T00:00:00+00:00", "captured_at_ns": 1,
        "decided_at": "2026-11-24T00:00:00.010000+00:00", "latency_ms": 10.0,
    }  # fmt: skip
    return DecisionMessage(**(fields | overrides))


def test_decision_json_round_trip_keeps_every_field() -> None:
    message = decision()
    assert DecisionMessage.from_json(message.to_json()) == message


def test_decision_names_only_known_bins_and_all_materials() -> None:
    with pytest.raises(ValueError, match="unknown bin"):
        decision(bin="compost")
    with pytest.raises(ValueError, match="material_probs"):
        decision(material_probs={"glass": 1.0})


def test_a_decision_without_p_hazard_leaves_it_out_of_the_json() -> None:
    assert b"p_hazard" not in decision().to_json()  # what older consumers already accept


def test_a_hazard_decision_carries_its_probability() -> None:
    message = decision(bin="hazard", material=None, p_hazard=0.97)
    assert DecisionMessage.from_json(message.to_json()) == message
    with pytest.raises(ValueError):
        decision(p_hazard=1.2)
