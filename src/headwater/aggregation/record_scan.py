"""The stored tile records of a batch's entities, parsed all at once with numpy.

:func:`scan_records` reads the header of every record (definition generation, latest event,
created time) and, for the records in the fixed-width layout of
:mod:`~headwater.aggregation.tiles` whose lanes hold states of the widths the batch expects,
each lane's tile count and rows, without a Python step per record: the records are joined
into one buffer and every field is gathered at an array of offsets, one lane after the other
(a lane's offset depends on the tile count of the lane before it).

A record that does not have that shape (the earlier msgpack layout, other widths, an empty
lane, a length that does not add up, a record shorter than its header) is reported as
*irregular*, for the caller to decode one by one, which also names the corruption of a
damaged record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from headwater.aggregation.tiles import FORMAT, NO_CREATED, widths_of
from headwater.online.encoding import HEADER_BYTES

_FLIP = np.uint64(1 << 63)
_HEADER = np.dtype([("generation", ">u4"), ("event", ">u8"), ("created", ">u8")])


@dataclass(frozen=True)
class Scan:
    """What :func:`scan_records` found in the records of ``positions`` (indexes into the
    keys it was given, ascending): their header fields, which of them are ``regular``, and
    per lane, for the regular ones in order, their tile counts and all their rows joined."""

    positions: npt.NDArray[np.intp]
    generation: npt.NDArray[np.int64]
    latest_us: npt.NDArray[np.int64]
    created_us: npt.NDArray[np.int64]
    regular: npt.NDArray[np.bool_]
    counts: tuple[npt.NDArray[np.intp], ...]
    rows: tuple[bytes, ...]


def scan_records(records: Sequence[bytes | None], generation: int,
                 widths: Sequence[tuple[int, ...]] | None) -> Scan:
    """Scan the present ``records`` (None: no record). Only records of definition
    ``generation`` can be regular. ``widths``: per lane the width of each aggregation's
    state the batch holds, or None when the batch's states are not all fixed-width (then no
    record is regular). A created time that was not given reads
    :data:`~headwater.aggregation.tiles.NO_CREATED`."""
    present = [i for i, data in enumerate(records) if data is not None]
    positions = np.array(present, dtype=np.intp)
    datas = [records[i] for i in present]
    lengths = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))  # type: ignore[arg-type]
    joined = b"".join(datas)  # type: ignore[arg-type]
    buffer = np.frombuffer(joined, dtype=np.uint8)
    starts = np.zeros(len(datas), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    ends = starts + lengths
    lanes = 0 if widths is None else len(widths)
    # every record has its header (the online store checks it); the layout bytes may be short
    regular = lengths >= HEADER_BYTES + len(FORMAT) + 1 if widths is not None else (
        np.zeros(len(datas), dtype=np.bool_))
    header = _gather(buffer, starts, HEADER_BYTES).view(_HEADER)[:, 0]
    generations = header["generation"].astype(np.int64)
    # a record shorter than its header is damaged: irregular, and counted as this
    # generation's, so that decoding it one by one names the damage
    short = lengths < HEADER_BYTES
    generations[short] = generation
    regular &= (generations == generation) & ~short
    latest = (header["event"] ^ _FLIP).astype(np.int64)
    created = np.where(header["created"] == 0, np.int64(NO_CREATED),
                       (header["created"] ^ _FLIP).astype(np.int64))
    counts: list[npt.NDArray[np.intp]] = []
    spans: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
    if widths is not None:
        layout = np.frombuffer(FORMAT + bytes((lanes,)), dtype=np.uint8)
        safe = np.where(regular, starts + HEADER_BYTES, 0)
        regular &= (_gather(buffer, safe, layout.shape[0]) == layout).all(axis=1)
        position = starts + HEADER_BYTES + layout.shape[0]
        for lane_widths in widths:
            expected = np.frombuffer(bytes((len(lane_widths),)) + b"\0\0\0\0"
                                     + widths_of(lane_widths), dtype=np.uint8)
            fixed = np.ones(expected.shape[0], dtype=np.bool_)
            fixed[1:5] = False  # the tile count, read below
            size = expected.shape[0]
            regular &= position + size <= ends
            at = np.where(regular, position, 0)
            found = _gather(buffer, at, size)
            regular &= (found[:, fixed] == expected[fixed]).all(axis=1)
            n = np.ascontiguousarray(found[:, 1:5]).view("<u4")[:, 0].astype(np.int64)
            begin = at + size
            end = begin + n * (8 + sum(lane_widths))
            regular &= (n > 0) & (end <= ends)
            counts.append(n)
            spans.append((begin, end))
            position = np.where(regular, end, 0)
        regular &= position == ends
    view = memoryview(joined)  # slices of it are not copies
    rows = tuple(b"".join([view[a:b] for a, b in zip(begin[regular].tolist(),
                                                       end[regular].tolist(), strict=True)])
                 for begin, end in spans)
    return Scan(positions, generations, latest, created, regular,
                tuple(c[regular].astype(np.intp) for c in counts), rows)


def _gather(buffer: npt.NDArray[np.uint8], at: npt.NDArray[np.int64],
            size: int) -> npt.NDArray[np.uint8]:
    """``size`` bytes from each offset of ``at``, one row per offset (an offset past the
    buffer's end reads zeros: its record is irregular already)."""
    if buffer.shape[0] == 0:
        return np.zeros((at.shape[0], size), dtype=np.uint8)
    index = at[:, None] + np.arange(size)
    return np.ascontiguousarray(buffer[np.minimum(index, buffer.shape[0] - 1)])
