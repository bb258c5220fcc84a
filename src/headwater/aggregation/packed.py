"""Encoded states of many groups at once: the bytes ``encode`` gives each, built with numpy.

Grouped updates (``encode_grouped`` of the aggregators) compute every group's state as numpy
columns; these helpers turn such columns into the per-group byte strings of the algebra's
encodings (:mod:`headwater.aggregation.codec` and the fixed ``struct`` layouts) without a
Python call per group: the columns are packed into one buffer and cut into fixed-width items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def items(buffer: bytes, width: int) -> list[bytes]:
    """``buffer`` cut into consecutive byte strings of ``width`` bytes."""
    if not buffer:
        return []
    out: list[bytes] = np.frombuffer(buffer, dtype=f"V{width}").tolist()
    return out


def records(columns: Sequence[tuple[str, npt.NDArray[Any]]]) -> list[bytes]:
    """Per row, the little-endian fields of ``columns`` (numpy dtype strings such as
    ``"<q"`` and arrays of one length) packed back to back, as ``struct.pack`` would."""
    dtype = np.dtype([(f"f{i}", kind) for i, (kind, _) in enumerate(columns)])
    out = np.empty(columns[0][1].shape[0], dtype=dtype)
    for i, (_, values) in enumerate(columns):
        out[f"f{i}"] = values
    return items(out.tobytes(), dtype.itemsize)


def tagged(values: npt.NDArray[Any]) -> list[bytes]:
    """The tagged scalars (:func:`~headwater.aggregation.codec.encode_scalar`) of int64
    (``i``) or float64 (``f``) values."""
    if values.dtype.kind == "f":
        tag, kind = b"f", "<d"
    else:
        tag, kind = b"i", "<q"
    tags = np.full(values.shape[0], tag, dtype="S1")
    return records([("S1", tags), (kind, values)])
