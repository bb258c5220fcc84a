"""last: the value of the latest event, latest meaning the greatest ``(ts, created, seq)``.

The state carries that order key next to the value, so merging two tiles keeps the value with
the greater key whatever order the tiles are merged in. Ingestion order ``seq`` is unique per
event; should two states still carry equal keys, the smaller encoded value wins, so ``merge`` is
commutative in every case. Null values are ignored, as DuckDB's ``arg_max`` ignores them: the
result is the latest non-null value, or ``None`` for a window without one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from headwater.aggregation.batch import Order, Starts, Values, group_of_rows, valid_mask
from headwater.aggregation.codec import Scalar, decode_scalar, encode_scalar, to_scalar
from headwater.aggregation.packed import records
from headwater.errors import DataError


class Latest(NamedTuple):
    """The order key of the latest event seen and its value."""

    ts: int
    created: int
    seq: int
    value: Scalar


def _later(a: Latest | None, b: Latest | None) -> Latest | None:
    if a is None:
        return b
    if b is None:
        return a
    ka, kb = (a.ts, a.created, a.seq), (b.ts, b.created, b.seq)
    if ka != kb:
        return b if kb > ka else a
    return b if encode_scalar(b.value) < encode_scalar(a.value) else a


def _checked(order: Order | None, n: int) -> Order:
    if order is None:
        raise DataError(
            "aggregation 'last': the order key is missing. "
            "Fix: pass order=Order.of(ts, created, seq) with one entry per event"
        )
    if order.ts.shape[0] != n:
        raise DataError(
            f"aggregation 'last': {n} values but {order.ts.shape[0]} order keys. "
            "Fix: pass one order key per event"
        )
    return order


@dataclass(frozen=True)
class Last:
    """The latest non-null value by ``(ts, created, seq)``."""

    name: str = "last"

    def init(self) -> Latest | None:
        return None

    def update(
        self, state: Latest | None, values: Values, order: Order | None = None
    ) -> Latest | None:
        arr, mask = valid_mask(values)
        order = _checked(order, arr.shape[0])
        idx = np.flatnonzero(mask)
        if idx.shape[0] == 0:
            return state
        # lexsort sorts by the last key first: ts, then created, then seq.
        best = idx[np.lexsort((order.seq[idx], order.created[idx], order.ts[idx]))[-1]]
        found = Latest(
            int(order.ts[best]),
            int(order.created[best]),
            int(order.seq[best]),
            to_scalar(arr[best]),
        )
        return _later(state, found)

    def _grouped(self, values: Values, order: Order | None, starts: Starts) -> tuple[
            npt.NDArray[Any], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """The values, each group that has a non-null value and the row of its latest."""
        arr, mask = valid_mask(values)
        order = _checked(order, arr.shape[0])
        idx = np.flatnonzero(mask)
        if idx.shape[0] == 0:
            return arr, np.zeros(0, np.intp), np.zeros(0, np.intp)
        group = group_of_rows(starts, arr.shape[0])[idx]
        ranked = idx[np.lexsort((order.seq[idx], order.created[idx], order.ts[idx], group))]
        ranked_group = group[np.searchsorted(idx, ranked)]
        is_last = np.append(ranked_group[1:] != ranked_group[:-1], True)
        return arr, ranked_group[is_last], ranked[is_last]

    def update_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[Latest | None]:
        arr, groups, best = self._grouped(values, order, starts)
        out: list[Latest | None] = [None] * starts.shape[0]
        if best.shape[0] == 0:
            return out
        key = _checked(order, arr.shape[0])
        for g, ts, created, seq, value in zip(
                groups.tolist(), key.ts[best].tolist(), key.created[best].tolist(),
                key.seq[best].tolist(), arr[best], strict=True):
            out[g] = Latest(ts, created, seq, to_scalar(value))
        return out

    def encode_grouped(self, values: Values, order: Order | None,
                       starts: Starts) -> list[bytes]:
        arr, groups, best = self._grouped(values, order, starts)
        if arr.dtype.kind not in "if" or arr.dtype.itemsize != 8:
            return [self.encode(state) for state in self.update_grouped(values, order, starts)]
        out = [b""] * starts.shape[0]  # a group without a value: the empty state
        if best.shape[0] == 0:
            return out
        key = _checked(order, arr.shape[0])
        tag = b"f" if arr.dtype.kind == "f" else b"i"
        packed = records([("<q", key.ts[best]), ("<q", key.created[best]),
                          ("<q", key.seq[best]), ("S1", np.full(best.shape[0], tag, "S1")),
                          ("<d" if tag == b"f" else "<q", arr[best])])
        for g, data in zip(groups.tolist(), packed, strict=True):
            out[g] = data
        return out

    def merge(self, a: Latest | None, b: Latest | None) -> Latest | None:
        return _later(a, b)

    def finalize(self, state: Latest | None) -> Scalar:
        return None if state is None else state.value

    def encode(self, state: Latest | None) -> bytes:
        if state is None:
            return b""
        return struct.pack("<qqq", state.ts, state.created, state.seq) + encode_scalar(state.value)

    def decode(self, data: bytes) -> Latest | None:
        if not data:
            return None
        ts, created, seq = struct.unpack_from("<qqq", data)
        value, _ = decode_scalar(data, 24)
        return Latest(int(ts), int(created), int(seq), value)


LAST = Last()
