"""AMQP header tables from any client, decoded without letting one value take a connection down.

pika decodes a delivery's headers inside its I/O loop. A value it cannot represent raises there,
before the consumer sees the message: the connection drops, the message comes back, and the
consumer loops on it until the broker's delivery limit while the frames behind it wait. Values a
Java, Go or JavaScript client sends without a second thought do this:

- a double (``d``) or float (``f``): pika truncates it to an ``int`` (0.42 becomes 0, silently),
  1e19 becomes an int that no longer fits the signed 64-bit type pika encodes it back as, and NaN
  or infinity raise at once;
- a timestamp (``T``) after the year 9999, which ``datetime`` cannot hold;
- a type tag pika does not know.

:func:`install` teaches pika's table codec, for this process, to decode doubles and floats as
Python floats and encode floats back as doubles, to keep an out-of-range timestamp as a
:class:`RawTimestamp` (encoded back exactly), and to turn a value of an unknown type into
:class:`Undecodable` (the rest of that table is skipped: without its type, its length is unknown).
Everything pika decodes today decodes the same.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Type tags pika's own decoder handles (besides d, f and T, decoded here).
_PIKA_KINDS = frozenset(b"tbBUuIiLlDsSxAFV")

_lock = threading.Lock()
_installed = False


class RawTimestamp(int):
    """An AMQP timestamp outside ``datetime``'s range: seconds since the epoch, encoded back as ``T``."""


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands for a header value of a type nothing here can decode."""

    kind: bytes

    def __str__(self) -> str:
        return f"<undecodable AMQP field type {self.kind!r}>"


class _UnknownKind(Exception):
    pass


def install() -> None:
    """Patch pika's table codec (idempotent, process-wide); call before the first connection."""
    global _installed
    with _lock:
        if _installed:
            return
        import pika.data

        original_decode, original_encode = pika.data.decode_value, pika.data.encode_value

        def decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
            kind = encoded[offset : offset + 1]
            if kind == b"d":
                return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
            if kind == b"f":
                return struct.unpack_from(">f", encoded, offset + 1)[0], offset + 5
            if kind == b"T":
                return _timestamp(struct.unpack_from(">Q", encoded, offset + 1)[0]), offset + 9
            if not kind or kind[0] not in _PIKA_KINDS:
                raise _UnknownKind(kind)
            return original_decode(encoded, offset)

        def decode_table(encoded: bytes, offset: int) -> tuple[dict[Any, Any], int]:
            result: dict[Any, Any] = {}
            (size,) = struct.unpack_from(">I", encoded, offset)
            offset += 4
            limit = offset + size
            while offset < limit:
                key, offset = pika.data.decode_short_string(encoded, offset)
                try:
                    result[key], offset = pika.data.decode_value(encoded, offset)
                except (_UnknownKind, struct.error) as error:
                    result[key] = Undecodable(error.args[0] if isinstance(error, _UnknownKind) else b"?")
                    break
            return result, limit

        def encode_value(pieces: list[bytes], value: Any) -> int:
            if isinstance(value, RawTimestamp):
                pieces.append(struct.pack(">cQ", b"T", value))
                return 9
            if isinstance(value, float):
                pieces.append(struct.pack(">cd", b"d", value))
                return 9
            if isinstance(value, Undecodable):
                raise pika.exceptions.UnsupportedAMQPFieldException(pieces, value)
            return original_encode(pieces, value)

        # Nested tables and arrays call these through the module, so nesting is covered too.
        pika.data.decode_value = decode_value
        pika.data.decode_table = decode_table
        pika.data.encode_value = encode_value
        _installed = True


def _timestamp(seconds: int) -> datetime | RawTimestamp:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return RawTimestamp(seconds)


def encoded_size(table: dict[Any, Any]) -> int:
    """Bytes ``table`` takes as an AMQP field table; raises if any value cannot be encoded."""
    import pika.data

    return pika.data.encode_table([], table)
