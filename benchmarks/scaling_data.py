"""The data of the scaling benchmark: feature rows written out-of-core, cached between runs.

``N`` feature rows are ``N / 100`` drivers x 100 hourly rows (``driver_stats`` from
:mod:`headwater.testing.data`: ``driver_id``, ``event_timestamp`` on the hour, ``created``
up to an hour later, 10 features), written as several Parquet files of at most
:data:`ROWS_PER_FILE` rows, one block of consecutive hours per file, like an append-only
log. Only one file's rows are in memory at a time. The entity frame is ``entity_rows`` rows
at random drivers and random microsecond times across the 100 hours.

A data set lives in ``<root>/n=<N>,e=<entity rows>,v<VERSION>/`` (``features/part-*.parquet``
and ``entity.parquet``), where the root is ``$HEADWATER_BENCH_DATA`` or ``.bench-data/``
in the project folder. A ``complete`` marker is written last: a folder without it (an
interrupted run) is written again.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from benchmarks.measure import ROOT

HOURS = 100
"""Hourly rows per driver: ``N`` feature rows are ``N / HOURS`` drivers."""
ROWS_PER_FILE = 5_000_000
N_FEATURES = 10
FEATURES = ["conv_rate", "trips", *(f"f{i}" for i in range(2, N_FEATURES))]
VERSION = 1
"""Bumped whenever the generated data changes, so stale caches are not reused."""


def data_root() -> Path:
    """Where generated data sets are cached: ``$HEADWATER_BENCH_DATA`` or ``.bench-data/``."""
    return Path(os.environ.get("HEADWATER_BENCH_DATA") or ROOT / ".bench-data")


@dataclass(frozen=True)
class DataSet:
    """One cached data set: its folder and shape."""

    folder: Path
    feature_rows: int
    entity_rows: int

    @property
    def drivers(self) -> int:
        return self.feature_rows // HOURS

    @property
    def features(self) -> Path:
        """The folder of feature Parquet files."""
        return self.folder / "features"

    @property
    def entity(self) -> Path:
        return self.folder / "entity.parquet"

    @property
    def files(self) -> list[Path]:
        return sorted(self.features.glob("part-*.parquet"))


def dataset(feature_rows: int, entity_rows: int, root: Path | None = None) -> DataSet:
    """The data set of ``feature_rows`` feature rows and ``entity_rows`` entity rows, written
    now unless a complete copy is cached."""
    if feature_rows % HOURS or feature_rows < HOURS:
        raise ValueError(f"feature rows must be a multiple of {HOURS}, got {feature_rows:,}")
    root = data_root() if root is None else root
    folder = root / f"n={feature_rows},e={entity_rows},v{VERSION}"
    data = DataSet(folder, feature_rows, entity_rows)
    if not (folder / "complete").exists():
        started = time.perf_counter()
        _write(data)
        print(f"  generated {feature_rows:,} feature rows in {len(data.files)} Parquet files "
              f"and {entity_rows:,} entity rows in {time.perf_counter() - started:.0f} s "
              f"({folder})", flush=True)
    return data


def _write(data: DataSet) -> None:
    import pyarrow.parquet as pq

    from headwater.testing.data import DEFAULT_START, driver_entity_rows, driver_stats

    shutil.rmtree(data.folder, ignore_errors=True)
    data.features.mkdir(parents=True)
    hours_per_file = max(1, min(HOURS // 4, ROWS_PER_FILE // data.drivers))
    for index, first in enumerate(range(0, HOURS, hours_per_file)):
        hours = min(hours_per_file, HOURS - first)
        chunk = driver_stats(data.drivers, hours, n_features=N_FEATURES,
                             start=DEFAULT_START + timedelta(hours=first), seed=index)
        pq.write_table(chunk, data.features / f"part-{index:04d}.parquet")
        del chunk
    end = DEFAULT_START + timedelta(hours=HOURS)
    pq.write_table(driver_entity_rows(data.entity_rows, data.drivers, DEFAULT_START, end),
                   data.entity)
    (data.folder / "complete").write_text(f"{data.feature_rows} {data.entity_rows}\n")
