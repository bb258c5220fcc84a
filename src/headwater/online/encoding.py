"""Key and record encoding for online stores, in one place.

Entity key: the msgpack array ``[name1, value1, name2, value2, ...]`` of a view's join keys
in entity order (integer and string values only), so views keyed by the same entity share
keys and different entities never collide.

Record: a 20-byte header, then the msgpack array of the view's feature values in schema
order. The header is ``event_us`` and ``created_us`` as big-endian unsigned integers with the
sign bit flipped (so byte order equals time order, before 1970 included), then a 4-byte
fingerprint of the view's definition (features, keys, source). A store keeps the record
whose first 16 bytes sort higher, unless the fingerprints differ: then the new record
replaces the old, which was written under another definition of the view. A reader treats
a record whose fingerprint differs from the view's current one as absent.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ORDER_BYTES = 16
FINGERPRINT_BYTES = 4
HEADER_BYTES = ORDER_BYTES + FINGERPRINT_BYTES
_HEADER = struct.Struct(">QQI")
_FLIP = 1 << 63


@dataclass(frozen=True)
class Record:
    """A decoded online record (``created_us`` is None when no created time was given)."""

    event_us: int
    created_us: int | None
    fingerprint: int
    values: list[Any]


def fingerprint(parts: Sequence[str]) -> int:
    """A 32-bit fingerprint of the strings that determine a view's records."""
    return zlib.crc32("|".join(parts).encode())


def encode_key(names: Sequence[str], values: Sequence[Any]) -> bytes:
    """The canonical bytes of one entity's join key values."""
    import msgpack

    flat: list[Any] = []
    for name, value in zip(names, values, strict=True):
        flat.append(name)
        flat.append(value)
    return bytes(msgpack.packb(flat))


def encode_keys(names: Sequence[str], columns: Sequence[Sequence[Any]]) -> list[bytes]:
    """:func:`encode_key` of many entities: ``columns[i][j]`` is entity ``j``'s value of
    ``names[i]``. Same bytes; with one join key the array header and the name are packed
    once (a msgpack array is its header followed by its items' encodings)."""
    import msgpack

    if len(names) != 1:
        return [encode_key(names, values) for values in zip(*columns, strict=True)]
    packb = msgpack.packb
    head = packb([names[0], None])[:-1]  # header and name; the one-byte nil dropped
    return [head + packb(value) for value in columns[0]]


def encode_record(event_us: int, created_us: int | None, fingerprint: int,
                  values: Sequence[Any]) -> bytes:
    """Header plus msgpack payload; ``values`` hold ints, floats, str, bool, None or lists.

    A missing created time sorts below every created time, as a null does offline."""
    import msgpack

    created = 0 if created_us is None else created_us + _FLIP
    header = _HEADER.pack(event_us + _FLIP, created, fingerprint)
    return header + bytes(msgpack.packb(list(values)))


def decode_record(data: bytes) -> Record:
    """Split a stored record back into times, fingerprint and values."""
    import msgpack

    event, created, fingerprint = _HEADER.unpack_from(data)
    values = msgpack.unpackb(data[HEADER_BYTES:])
    return Record(event - _FLIP, None if created == 0 else created - _FLIP, fingerprint, values)


def decode_event(data: bytes) -> tuple[int, int]:
    """Only ``(event_us, fingerprint)``, for a reader that checks them before
    :func:`decode_values`."""
    event, _, fingerprint = _HEADER.unpack_from(data)
    return event - _FLIP, fingerprint


def decode_values(data: bytes) -> list[Any]:
    """Only the feature values of a stored record."""
    import msgpack

    values: list[Any] = msgpack.unpackb(data[HEADER_BYTES:])
    return values
