"""AMQP 0-9-1 message properties built by hand, byte for byte, for envelopes pika would never write.

pika's encoder refuses what a Java, Go or JavaScript client writes without a second thought
(doubles, timestamps past the year 9999, 64-bit integers beyond pika's types), so the envelope
fuzz test writes the content header itself and hands pika only the bytes: :class:`RawProperties`
replaces ``BasicProperties.encode`` while pika still does the framing, the channel and confirms.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pika


@dataclass(frozen=True)
class Typed:
    """A header value with an explicit AMQP type tag (``d``, ``f``, ``T``, ``l``, ``b``, ...)."""

    kind: str
    value: Any


_FIXED = {
    "t": ">B", "b": ">b", "B": ">B", "U": ">h", "u": ">H", "s": ">h", "I": ">i", "i": ">I",
    "L": ">q", "l": ">q", "f": ">f", "d": ">d", "T": ">Q",
}  # fmt: skip


def encode_value(value: Any) -> bytes:
    """One field value: type tag then payload. Plain Python values get the tag pika would choose."""
    if isinstance(value, Typed):
        return _encode_typed(value.kind, value.value)
    if isinstance(value, bool):
        return _encode_typed("t", value)
    if isinstance(value, int):
        return _encode_typed("I" if -(2**31) <= value < 2**31 else "l", value)
    if isinstance(value, float):
        return _encode_typed("d", value)
    if isinstance(value, str):
        return _encode_typed("S", value.encode())
    if isinstance(value, bytes):
        return _encode_typed("x", value)
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        raw = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        return _encode_typed("D", (max(0, -int(exponent)), raw))
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, list):
        return _encode_typed("A", value)
    if value is None:
        return b"V"
    raise TypeError(f"no AMQP type for {type(value).__name__}")


def _encode_typed(kind: str, value: Any) -> bytes:
    tag = kind.encode()
    if kind in _FIXED:
        return tag + struct.pack(_FIXED[kind], value)
    if kind in ("S", "x"):
        return tag + struct.pack(">I", len(value)) + value
    if kind == "D":
        decimals, raw = value
        return tag + struct.pack(">Bi", decimals, raw)
    if kind == "A":
        items = b"".join(encode_value(item) for item in value)
        return tag + struct.pack(">I", len(items)) + items
    if kind == "F":
        return tag + encode_table(value)
    if kind == "V":
        return tag
    return tag + value  # an unknown tag followed by whatever bytes the caller gives


def encode_table(table: dict[str | bytes, Any]) -> bytes:
    body = b"".join(_short_string(key) + encode_value(value) for key, value in table.items())
    return struct.pack(">I", len(body)) + body


def _short_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack(">B", len(raw)) + raw


def encode_properties(
    *,
    content_type: str | bytes | None = None,
    headers: dict[str | bytes, Any] | None = None,
    expiration: str | None = None,
    message_id: str | bytes | None = None,
) -> bytes:
    """The property list of a content header, in the order and with the flags the spec defines."""
    flags, fields = 0, []
    spec = pika.spec.BasicProperties
    for flag, value, encode in (
        (spec.FLAG_CONTENT_TYPE, content_type, _short_string),
        (spec.FLAG_HEADERS, headers, encode_table),
        (spec.FLAG_EXPIRATION, expiration, _short_string),
        (spec.FLAG_MESSAGE_ID, message_id, _short_string),
    ):
        if value is not None:
            flags |= flag
            fields.append(encode(value))
    return struct.pack(">H", flags) + b"".join(fields)


class RawProperties(pika.spec.BasicProperties):
    """Properties whose wire bytes are given; pika frames and sends them as they are."""

    def __init__(self, encoded: bytes) -> None:
        super().__init__()
        self._encoded = encoded

    def encode(self) -> list[bytes]:
        return [self._encoded]
