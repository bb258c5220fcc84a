"""The ingestion order of a file source's files, and the names of pushed files.

Ingestion order is the last tie-break of the point-in-time rule (after event and created
time). Within a file it is the row order; between the files of a folder or glob source it
is:

* first the files not written by push, by path (a batch export lands before the
  corrections pushed on top of it, whatever its name);
* then the files written by push, by push time: a later push wins ties, as it does online,
  where the later write replaces the stored value.

A pushed file is named ``push-<ns>-<tag>.parquet``: ``<ns>`` is the push time in
nanoseconds since the epoch (zero-padded to 19 digits, but read as a number) and ``<tag>``
a random hex string telling apart pushes within one nanosecond. This module is the one
place that knows the pattern: :mod:`~headwater.streaming.parquet_append` names files with
:func:`push_file_name` and :mod:`~headwater.offline.source_reader` orders them with
:func:`ingestion_sorted`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_PUSHED = re.compile(r"push-(\d+)-([0-9a-f]+)\.parquet")


def push_file_name(ns: int, tag: str) -> str:
    """The name of a file pushed at ``ns`` nanoseconds since the epoch."""
    return f"push-{ns:019d}-{tag}.parquet"


def push_time(name: str) -> tuple[int, str] | None:
    """The push time and tag in a pushed file's ``name``, or None for any other file."""
    match = _PUSHED.fullmatch(name)
    return None if match is None else (int(match.group(1)), match.group(2))


def ingestion_sorted(files: Iterable[Path], by_path: Callable[[Path], Any]) -> list[Path]:
    """``files`` in ingestion order (module docstring); ``by_path`` is the sort key of a
    file among the files not written by push, and breaks exact ties between pushes."""

    def key(path: Path) -> tuple[Any, ...]:
        pushed = push_time(path.name)
        return (0, by_path(path)) if pushed is None else (1, *pushed, by_path(path))

    return sorted(files, key=key)
