"""Header tables any client may write decode without raising, and encode back to the same bytes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pika
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pika import data as amqp_data

from sortline import amqp_tables
from sortline.amqp_tables import RawTimestamp, Undecodable, encoded_size
from tests.support.amqp_wire import Typed, encode_table

amqp_tables.install()


def decode(table: dict) -> dict:
    decoded, offset = amqp_data.decode_table(encode_table(table), 0)
    assert offset == len(encode_table(table))
    return decoded


def reencoded(table: dict) -> bytes:
    pieces: list[bytes] = []
    amqp_data.encode_table(pieces, table)
    return b"".join(pieces)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Typed("d", 0.42), 0.42),  # pika alone decodes 0
        (Typed("d", 1e19), 1e19),  # pika alone: an int it cannot encode back
        (Typed("f", 0.5), 0.5),
        (Typed("d", float("inf")), float("inf")),
    ],
)
def test_doubles_and_floats_decode_as_floats(value, expected) -> None:
    got = decode({"v": value})["v"]
    assert isinstance(got, float) and got == expected


def test_nan_decodes_instead_of_raising() -> None:
    assert math.isnan(decode({"v": Typed("d", float("nan"))})["v"])


def test_timestamps_beyond_datetime_stay_exact() -> None:
    table = {"far": Typed("T", 2**40), "max": Typed("T", 2**64 - 1), "now": Typed("T", 1_700_000_000)}
    decoded = decode(table)
    assert decoded["far"] == RawTimestamp(2**40) and isinstance(decoded["far"], RawTimestamp)
    assert decoded["max"] == 2**64 - 1
    assert decoded["now"] == datetime.fromtimestamp(1_700_000_000, UTC)
    assert reencoded(decoded) == encode_table(table)


def test_an_unknown_type_becomes_undecodable_and_ends_its_table() -> None:
    raw = encode_table({"a": 1, "b": Typed("Z", b"\x00\x01"), "c": 2})
    decoded, offset = amqp_data.decode_table(raw + b"after", 0)
    assert decoded == {"a": 1, "b": Undecodable(b"Z")}
    assert offset == len(raw)  # the next field of the frame is read from the right place
    with pytest.raises(pika.exceptions.UnsupportedAMQPFieldException):
        encoded_size({"b": decoded["b"]})


def test_nested_tables_and_arrays_decode_the_same_way() -> None:
    decoded = decode({"t": {"x": [Typed("d", 0.25), {"y": Typed("T", 2**50)}]}})
    assert decoded == {"t": {"x": [0.25, {"y": RawTimestamp(2**50)}]}}


def test_an_unknown_type_inside_an_array_makes_only_its_field_undecodable() -> None:
    decoded = decode({"a": "kept", "x": [1, Typed("Q", b"?")]})
    assert decoded == {"a": "kept", "x": Undecodable(b"Q")}


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(max_size=20)
    | st.binary(max_size=20) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)  # fmt: skip


@given(st.dictionaries(st.text(max_size=12), plain_values, max_size=6))
def test_what_pika_writes_round_trips_unchanged(table) -> None:
    raw = reencoded(table)
    decoded, _ = amqp_data.decode_table(raw, 0)
    assert reencoded(decoded) == raw


def test_decimals_keep_their_value() -> None:
    assert decode({"v": Decimal("0.42")})["v"] == Decimal("0.42")
