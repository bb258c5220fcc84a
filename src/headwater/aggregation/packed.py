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


class Items(list[bytes]):
    """Byte strings of one width cut from one buffer (:func:`items`) that remember both
    while the list is unchanged: ``width`` (0 once anything changed it through its methods;
    ``list.append(items, x)`` and C code such as ``heapq`` go around them) and ``buffer``,
    so a caller that wants their width, or the items back to back, need not look at
    each."""

    __slots__ = ("buffer", "width")

    def __init__(self, values: list[bytes], buffer: bytes, width: int) -> None:
        super().__init__(values)
        self.buffer = buffer
        self.width = width

    def __reduce__(self) -> tuple[type[list[bytes]], tuple[list[bytes]]]:
        """Pickled and copied as a plain list (every protocol)."""
        return list, (list(self),)


def _forgetting(name: str) -> Any:
    change = getattr(list, name)

    def changed(self: Items, *args: Any, **kwargs: Any) -> Any:
        self.width, self.buffer = 0, b""
        return change(self, *args, **kwargs)

    changed.__name__ = name
    return changed


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(Items, _name, _forgetting(_name))


def packed(states: Sequence[bytes]) -> tuple[int, bytes] | None:
    """The width of every one of ``states`` and the states back to back, when they came
    unchanged from :func:`items` (at no cost per state); None when that is not known."""
    width = getattr(states, "width", 0) if isinstance(states, Items) else 0
    return (width, states.buffer) if width else None  # type: ignore[attr-defined]


def items(buffer: bytes, width: int) -> list[bytes]:
    """``buffer`` cut into consecutive byte strings of ``width`` bytes (an :class:`Items`)."""
    if not buffer:
        return []
    return Items(np.frombuffer(buffer, dtype=f"V{width}").tolist(), buffer, width)


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
