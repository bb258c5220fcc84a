"""Key and record encoding for online stores, in one place.

Entity key: the msgpack array ``[name1, value1, name2, value2, ...]`` of a view's join keys
in entity order (integer and string values only), so views keyed by the same entity share
keys and different entities never collide.

Record: a 20-byte header, then the msgpack array of the view's feature values in schema
order. The header is the view's definition *generation* (a 4-byte big-endian counter that
grows each time the view's features, keys or source change), then ``event_us`` and
``created_us`` as big-endian unsigned integers with the sign bit flipped (so byte order
equals time order, before 1970 included). A store keeps the record whose header sorts
higher (memcmp of all 20 bytes): a newer definition always wins, a writer still working
under an older one never overwrites the newer records, and within one definition the later
``(event time, created time)`` wins. A reader treats a record of another generation than
the view's current one as absent.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ORDER_BYTES = 20
HEADER_BYTES = ORDER_BYTES
_HEADER = struct.Struct(">IQQ")
_FLIP = 1 << 63


@dataclass(frozen=True)
class Record:
    """A decoded online record (``created_us`` is None when no created time was given)."""

    event_us: int
    created_us: int | None
    generation: int
    values: list[Any]


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


def encode_record(event_us: int, created_us: int | None, generation: int,
                  values: Sequence[Any]) -> bytes:
    """Header plus msgpack payload; ``values`` hold ints, floats, str, bool, None or lists.

    A missing created time sorts below every created time, as a null does offline."""
    import msgpack

    return encode_header(event_us, created_us, generation) + bytes(msgpack.packb(list(values)))


def encode_header(event_us: int, created_us: int | None, generation: int) -> bytes:
    """The 20-byte order header alone, for records with another payload (tile records of
    aggregated views, :mod:`headwater.aggregation.tiles`)."""
    created = 0 if created_us is None else created_us + _FLIP
    return _HEADER.pack(generation, event_us + _FLIP, created)


def decode_header(data: bytes) -> tuple[int, int, int | None]:
    """``(generation, event_us, created_us)`` of a stored record's header."""
    generation, event, created = _HEADER.unpack_from(data)
    return generation, event - _FLIP, None if created == 0 else created - _FLIP


def decode_record(data: bytes) -> Record:
    """Split a stored record back into generation, times and values."""
    import msgpack

    generation, event, created = _HEADER.unpack_from(data)
    values = msgpack.unpackb(data[HEADER_BYTES:])
    return Record(event - _FLIP, None if created == 0 else created - _FLIP, generation, values)


def decode_event(data: bytes) -> tuple[int, int]:
    """Only ``(event_us, generation)``, for a reader that checks them before
    :func:`decode_values`."""
    generation, event, _ = _HEADER.unpack_from(data)
    return event - _FLIP, generation


def decode_values(data: bytes) -> list[Any]:
    """Only the feature values of a stored record."""
    import msgpack

    values: list[Any] = msgpack.unpackb(data[HEADER_BYTES:])
    return values
