"""The aggregators agree with the SQL DuckDB runs for offline backfills.

count(v), sum(v), avg(v), min(v), max(v), var_samp(v), stddev_samp(v) and arg_max over
(ts, created, seq) with NULL values skipped, on random data with nulls.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.aggregation.base import FUNCTIONS
from headwater.aggregation.batch import Order

SQL = {
    "count": "count(v)",
    "sum": "coalesce(sum(v), 0)",
    "mean": "avg(v)",
    "min": "min(v)",
    "max": "max(v)",
    "variance": "var_samp(v)",
    "stddev": "stddev_samp(v)",
    "last": "arg_max(v, (ts, created, seq)) FILTER (WHERE v IS NOT NULL)",
}


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False)),
            st.integers(0, 3),
            st.integers(0, 2),
        ),
        max_size=50,
    )
)
def test_matches_duckdb(rows: list[tuple[Any, int, int]]) -> None:
    table = pa.table(
        {
            "v": pa.array([r[0] for r in rows], type=pa.float64()),
            "ts": pa.array([r[1] for r in rows], type=pa.int64()),
            "created": pa.array([r[2] for r in rows], type=pa.int64()),
            "seq": pa.array(list(range(len(rows))), type=pa.int64()),
        }
    )
    con = duckdb.connect()
    con.register("events", table)
    order = Order.of(table["ts"].to_numpy(), table["created"].to_numpy(), table["seq"].to_numpy())
    for name, expr in SQL.items():
        (want,) = con.execute(f"SELECT {expr} FROM events").fetchone() or (None,)
        agg = FUNCTIONS[name]
        got = agg.finalize(agg.update(agg.init(), table["v"], order))
        if want is None or got is None:
            assert got is None and want is None, (name, got, want)
        else:
            tolerance = 1e-9 * max(1.0, abs(float(want)))
            assert abs(float(got) - float(want)) <= tolerance, (name, got, want)
    con.close()
