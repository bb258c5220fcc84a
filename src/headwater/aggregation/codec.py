"""Deterministic byte encoding of the scalars that aggregation states hold.

A scalar is one tag byte and a fixed or length-prefixed payload, little endian: ``n`` None,
``b`` bool, ``i`` int64, ``I`` a wider int (length-prefixed), ``f`` float64, ``s`` UTF-8 string,
``y`` bytes. Only ``struct`` is used, never pickle, so a stored tile can be read by any version
that knows these tags.
"""

from __future__ import annotations

import struct

import numpy as np

from headwater.errors import DataError

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

Scalar = None | bool | int | float | str | bytes


def to_scalar(value: object) -> Scalar:
    """A numpy or Python scalar as a plain Python scalar."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.str_):
        return str(value)
    raise DataError(
        f"aggregation: cannot store a value of type {type(value).__name__}. "
        "Fix: aggregate a column of numbers, strings, bools or bytes"
    )


def encode_scalar(value: Scalar) -> bytes:
    """The tagged byte form of a scalar."""
    if value is None:
        return b"n"
    if isinstance(value, bool):
        return b"b" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return b"i" + struct.pack("<q", value)
        raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return b"I" + struct.pack("<I", len(raw)) + raw
    if isinstance(value, float):
        return b"f" + struct.pack("<d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return b"s" + struct.pack("<I", len(raw)) + raw
    return b"y" + struct.pack("<I", len(value)) + value


def decode_scalar(data: bytes, offset: int = 0) -> tuple[Scalar, int]:
    """The scalar at ``offset`` and the offset just past it."""
    tag = data[offset : offset + 1]
    pos = offset + 1
    if tag == b"n":
        return None, pos
    if tag == b"b":
        return data[pos] == 1, pos + 1
    if tag == b"i":
        return int(struct.unpack_from("<q", data, pos)[0]), pos + 8
    if tag == b"f":
        return float(struct.unpack_from("<d", data, pos)[0]), pos + 8
    if tag == b"I":
        (length,) = struct.unpack_from("<I", data, pos)
        raw = bytes(data[pos + 4 : pos + 4 + length])
        return int.from_bytes(raw, "little", signed=True), pos + 4 + length
    if tag in (b"s", b"y"):
        (length,) = struct.unpack_from("<I", data, pos)
        raw = bytes(data[pos + 4 : pos + 4 + length])
        return (raw.decode("utf-8") if tag == b"s" else raw), pos + 4 + length
    raise DataError(f"aggregation state: unknown scalar tag {tag!r}. Fix: the tile is corrupt")
