"""Synthetic data generators for tests, the demo and the benchmarks.

Everything is vectorized with numpy (no Python loop over rows), so millions of rows take
seconds. Both generators derive a hidden per-driver rate from ``seed``: ``driver_stats``
scatters ``conv_rate`` around it and ``driver_entity_rows`` draws ``label`` with it as the
probability, so a model trained on the joined frame has something to learn.

>>> table = driver_stats(n_drivers=3, n_hours=2)
>>> table.num_rows, table.column_names[:3]
(6, ['driver_id', 'event_timestamp', 'created'])
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
FIRST_DRIVER_ID = 1001
_US_PER_HOUR = 3_600_000_000


def driver_ids(n_drivers: int) -> np.ndarray:
    """The ids of ``n_drivers`` drivers: ``1001, 1002, ...`` (int64)."""
    return np.arange(FIRST_DRIVER_ID, FIRST_DRIVER_ID + n_drivers, dtype=np.int64)


def hidden_rates(n_drivers: int, seed: int = 0) -> np.ndarray:
    """Each driver's hidden conversion rate in ``[0.05, 0.95]``, fixed by ``seed``."""
    rng = np.random.default_rng([seed, 1])
    return rng.uniform(0.05, 0.95, size=n_drivers)


def driver_stats(
    n_drivers: int,
    n_hours: int,
    n_features: int = 2,
    start: datetime = DEFAULT_START,
    seed: int = 0,
) -> pa.Table:
    """Hourly feature rows for ``n_drivers`` drivers over ``n_hours`` hours.

    Columns: ``driver_id`` (int64, from 1001), ``event_timestamp`` (timestamp[us, UTC], on
    the hour from ``start``), ``created`` (timestamp[us, UTC], when the row was written: a
    whole second up to an hour after the event time), ``conv_rate`` (float64 in [0, 1]),
    ``trips`` (int64), and for ``n_features > 2`` float64 features ``f2 .. f{n_features-1}``.
    Rows are ordered by hour, then driver, like an append-only log. A naive ``start`` is
    read as UTC.
    """
    import pyarrow as pa

    if n_drivers < 1 or n_hours < 1 or n_features < 2:
        raise ValueError("driver_stats needs n_drivers >= 1, n_hours >= 1, n_features >= 2")
    rng = np.random.default_rng([seed, 2])
    n = n_drivers * n_hours
    ids = np.tile(driver_ids(n_drivers), n_hours)
    hours = np.repeat(np.arange(n_hours, dtype=np.int64), n_drivers)
    event_us = _epoch_us(start) + hours * _US_PER_HOUR
    created_us = event_us + rng.integers(0, 3600, size=n, dtype=np.int64) * 1_000_000
    rate = np.tile(hidden_rates(n_drivers, seed), n_hours)
    conv_rate = np.clip(rate + rng.normal(0.0, 0.1, size=n), 0.0, 1.0)
    trips = rng.poisson(20.0 * rate + 1.0, size=n).astype(np.int64)
    utc = pa.timestamp("us", tz="UTC")
    columns: dict[str, pa.Array] = {
        "driver_id": pa.array(ids, pa.int64()),
        "event_timestamp": pa.array(event_us, pa.int64()).cast(utc),
        "created": pa.array(created_us, pa.int64()).cast(utc),
        "conv_rate": pa.array(conv_rate, pa.float64()),
        "trips": pa.array(trips, pa.int64()),
    }
    for index in range(2, n_features):
        columns[f"f{index}"] = pa.array(rng.standard_normal(n), pa.float64())
    return pa.table(columns)


def driver_entity_rows(
    n_rows: int,
    n_drivers: int,
    start: datetime = DEFAULT_START,
    end: datetime | None = None,
    seed: int = 0,
    *,
    label: bool = True,
) -> pa.Table:
    """``n_rows`` entity rows (``driver_id``, ``event_timestamp``[, ``label``]) at random
    drivers and random times in ``[start, end)``, in random order.

    ``end`` defaults to 30 days after ``start``; naive datetimes are read as UTC. Times
    have microsecond resolution. ``label`` (int64 0/1) is drawn with the driver's hidden
    rate, the same one ``driver_stats(..., seed=seed)`` scatters ``conv_rate`` around.
    """
    import pyarrow as pa

    if n_rows < 0 or n_drivers < 1:
        raise ValueError("driver_entity_rows needs n_rows >= 0 and n_drivers >= 1")
    end = start + timedelta(days=30) if end is None else end
    lo, hi = _epoch_us(start), _epoch_us(end)
    if hi <= lo:
        raise ValueError("driver_entity_rows needs end after start")
    rng = np.random.default_rng([seed, 3])
    index = rng.integers(0, n_drivers, size=n_rows)
    times = rng.integers(lo, hi, size=n_rows, dtype=np.int64)
    columns: dict[str, pa.Array] = {
        "driver_id": pa.array(driver_ids(n_drivers)[index], pa.int64()),
        "event_timestamp": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    }
    if label:
        chance = hidden_rates(n_drivers, seed)[index]
        columns["label"] = pa.array((rng.random(n_rows) < chance).astype(np.int64), pa.int64())
    return pa.table(columns)


def _epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch; a naive datetime is read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def trip_events(
    n_drivers: int,
    n_events: int,
    start: datetime,
    end: datetime,
    seed: int = 0,
) -> pa.Table:
    """``n_events`` completed-trip events of ``n_drivers`` drivers at random microsecond
    times in ``[start, end)``, ordered by time, as a stream would deliver them.

    Columns: ``driver_id`` (int64, from 1001; busier drivers, those with a higher hidden
    rate, drive more), ``ts`` (timestamp[us, UTC]), ``fare`` (float64, > 0) and ``rating``
    (int64, 1..5, null for about one trip in ten). Naive times are read as UTC."""
    import pyarrow as pa

    if n_drivers < 1 or n_events < 0:
        raise ValueError("trip_events needs n_drivers >= 1 and n_events >= 0")
    start_us, end_us = _epoch_us(start), _epoch_us(end)
    if end_us <= start_us:
        raise ValueError("trip_events needs start < end")
    rng = np.random.default_rng([seed, 4])
    weights = hidden_rates(n_drivers, seed)
    drivers = rng.choice(driver_ids(n_drivers), size=n_events, p=weights / weights.sum())
    ts = np.sort(rng.integers(start_us, end_us, size=n_events, dtype=np.int64))
    fare = np.round(rng.gamma(2.0, 9.0, size=n_events) + 2.5, 2)
    rating = rng.integers(1, 6, size=n_events, dtype=np.int64)
    rated = rng.random(n_events) >= 0.1
    return pa.table({
        "driver_id": pa.array(drivers, pa.int64()),
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "fare": pa.array(fare, pa.float64()),
        "rating": pa.array(rating, pa.int64(), mask=~rated),
    })
