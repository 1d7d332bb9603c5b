"""A dead letter carries its frame's headers as far as the broker's frame allows, contract first."""

from __future__ import annotations

from classifier_worker.publishing import MAX_DETAIL_BYTES, dead_letter_headers
from sortline import amqp_tables
from sortline.amqp_tables import RawTimestamp, Undecodable, encoded_size
from sortline.messages import (
    DEAD_LETTER_DETAIL_HEADER,
    DEAD_LETTER_DROPPED_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DeadLetterReason,
)

amqp_tables.install()
CONTRACT = {"line_id": "l", "camera_id": "c", "seq": 1, "captured_at_ns": 1_800_000_000 * 10**9}


def test_headers_that_fit_are_kept_with_reason_and_detail() -> None:
    original = {**CONTRACT, "x-trace": "abc", "x-when": RawTimestamp(2**40), "x-ratio": 0.5}
    headers = dead_letter_headers(original, DeadLetterReason.EXPIRED, "late", budget=10_000)
    assert headers == {DEAD_LETTER_REASON_HEADER: "expired", DEAD_LETTER_DETAIL_HEADER: "late", **original}


def test_the_contract_is_kept_first_when_the_budget_is_short() -> None:
    original = {"pad": "p" * 5_000, **CONTRACT, "x-small": 1}
    headers = dead_letter_headers(original, DeadLetterReason.UNDECODABLE_IMAGE, "bad", budget=200)
    assert {k: headers[k] for k in CONTRACT} == CONTRACT and headers["x-small"] == 1
    assert headers[DEAD_LETTER_DROPPED_HEADER] == "pad"
    assert encoded_size(headers) < 200 + 2 * MAX_DETAIL_BYTES + 200  # our own headers on top


def test_what_cannot_be_encoded_is_named_not_copied() -> None:
    original = {**CONTRACT, "x-unknown": Undecodable(b"Z"), "x-huge": 2**70}
    headers = dead_letter_headers(original, DeadLetterReason.INVALID_HEADERS, "bad", budget=10_000)
    assert "x-unknown" not in headers and "x-huge" not in headers
    assert headers[DEAD_LETTER_DROPPED_HEADER] == "x-unknown, x-huge"
    encoded_size(headers)  # and the rest encodes


def test_a_senders_own_reason_header_is_replaced() -> None:
    original = {**CONTRACT, DEAD_LETTER_REASON_HEADER: "forged", DEAD_LETTER_DETAIL_HEADER: "forged"}
    headers = dead_letter_headers(original, DeadLetterReason.POISON, "real", budget=10_000)
    assert headers[DEAD_LETTER_REASON_HEADER] == "poison" and headers[DEAD_LETTER_DETAIL_HEADER] == "real"


def test_detail_is_bounded_in_bytes() -> None:
    headers = dead_letter_headers(CONTRACT, DeadLetterReason.INVALID_HEADERS, "é" * 2000, budget=10_000)
    assert len(headers[DEAD_LETTER_DETAIL_HEADER].encode()) <= MAX_DETAIL_BYTES
