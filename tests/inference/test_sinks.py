"""Batch prediction sinks: Parquet, DuckDB and PostgreSQL tables, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.config import load_settings
from headwater.errors import DataError
from headwater.inference.sinks import table_name, write_duckdb, write_parquet, write_postgres

SCHEMA = pa.schema([("customer_id", pa.int64()), ("prediction", pa.int64()),
                    ("probability", pa.float64())])


def reader(rows: int, *, start: int = 0, fail_after: int | None = None
           ) -> pa.RecordBatchReader:
    """Batches of 3 rows; with ``fail_after``, an error after that many batches (a crash in
    the middle of scoring)."""

    def batches() -> Iterator[pa.RecordBatch]:
        for index, first in enumerate(range(start, start + rows, 3)):
            if fail_after is not None and index == fail_after:
                raise DataError("scoring failed")
            ids = list(range(first, min(first + 3, start + rows)))
            yield pa.record_batch([pa.array(ids), pa.array([i % 2 for i in ids]),
                                   pa.array([i / 10 for i in ids])], schema=SCHEMA)

    return pa.RecordBatchReader.from_batches(SCHEMA, batches())


def test_parquet_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "out" / "predictions.parquet"
    assert write_parquet(reader(10), target) == 10
    assert pq.read_table(target).column("customer_id").to_pylist() == list(range(10))
    with pytest.raises(DataError):
        write_parquet(reader(10, start=100, fail_after=2), target)
    assert pq.read_table(target).num_rows == 10  # the old file is untouched
    assert [p.name for p in target.parent.iterdir()] == ["predictions.parquet"]


def test_duckdb_table_modes(tmp_path: Path) -> None:
    database = tmp_path / "scores.duckdb"
    assert write_duckdb(reader(7), database, "scores") == 7
    with pytest.raises(DataError, match="already exists"):
        write_duckdb(reader(2), database, "scores")
    assert write_duckdb(reader(2, start=7), database, "scores", mode="append") == 2
    assert write_duckdb(reader(4), database, "batch.scores", mode="append") == 4
    with duckdb.connect(str(database)) as db:
        assert db.sql("SELECT count(*), sum(customer_id) FROM scores").fetchall()[0] == (9, 36)
        assert db.sql("SELECT count(*) FROM batch.scores").fetchall()[0] == (4,)
    assert write_duckdb(reader(1), database, "scores", mode="replace") == 1
    with duckdb.connect(str(database)) as db:
        assert db.sql("SELECT customer_id, probability FROM scores").fetchall() == [(0, 0.0)]


def test_a_failed_duckdb_write_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    database = tmp_path / "scores.duckdb"
    write_duckdb(reader(3), database, "scores")
    with pytest.raises(DataError, match="scoring failed"):
        write_duckdb(reader(9, start=3, fail_after=1), database, "scores", mode="append")
    with pytest.raises(DataError, match="scoring failed"):
        write_duckdb(reader(9, start=3, fail_after=1), database, "scores", mode="replace")
    with duckdb.connect(str(database)) as db:
        assert db.sql("SELECT count(*) FROM scores").fetchall()[0] == (3,)


@pytest.mark.parametrize("name", ["a-b", "a.b.c", "", "1x", "x; drop table y"])
def test_table_names_are_identifiers(name: str) -> None:
    with pytest.raises(DataError, match="not a table name"):
        table_name(name)


def test_postgres_table(tmp_path: Path, postgres_url: str, postgres_schema: str) -> None:
    (tmp_path / "headwater.yaml").write_text(
        f"project: sinks\noffline:\n  connections:\n    warehouse: {postgres_url}\n")
    settings = load_settings(tmp_path)
    table = f"{postgres_schema}.scores"
    assert write_postgres(reader(8), settings, "warehouse", table) == 8
    with pytest.raises(DataError, match="refused"):
        write_postgres(reader(1), settings, "warehouse", table)
    with pytest.raises(DataError, match="scoring failed"):
        write_postgres(reader(6, start=8, fail_after=1), settings, "warehouse", table,
                       mode="append")
    assert write_postgres(reader(2, start=8), settings, "warehouse", table,
                          mode="append") == 2
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(f'SELECT count(*), sum(customer_id), max(probability) FROM '
                            f'"{postgres_schema}".scores').fetchone()
    assert rows == (10, 45, 0.9)
    with pytest.raises(DataError, match="not a PostgreSQL database"):
        write_postgres(reader(1), settings, "nowhere", table)
