"""The prediction log: exactly the logged rows, in Parquet files that are never half written."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet
import pytest

import headwater as hw
from headwater.inference.log import PredictionLog, PredictionRecord

DAY_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def record(i: int, *, rows: int = 1, model: str = "churn", version: int = 1,
           at_us: int = DAY_US, request: dict[str, list[object]] | None = None
           ) -> PredictionRecord:
    ids = list(range(i * rows, (i + 1) * rows))
    inputs = pa.table({"spend": pa.array([float(x) / 2 for x in ids]),
                       "plan": pa.array([f"p{x % 3}" for x in ids])})
    return PredictionRecord(f"req{i}", at_us + i, model, version, {"customer_id": ids},
                            inputs.to_pydict(), request or {}, np.array([x % 2 for x in ids]),
                            np.array([x / 100 for x in ids]), inputs.schema)


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_every_logged_row_is_written_once_with_its_values(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_rows=7)
    log.start()
    for i in range(25):
        assert log.log(record(i))
    log.close()
    files = parquet_files(tmp_path)
    assert files
    assert not list(tmp_path.rglob("*.tmp"))
    assert {f.parent.name for f in files} == {"date=2024-01-01"}
    assert {f.parent.parent.name for f in files} == {"churn"}
    glob = (tmp_path / "churn" / "*" / "*.parquet").as_posix()
    table = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true) "
                       "ORDER BY customer_id").arrow().read_all()
    assert table.num_rows == 25
    assert table.column("customer_id").to_pylist() == list(range(25))
    assert table.column("request_id").to_pylist() == [f"req{i}" for i in range(25)]
    assert table.column("model_version").to_pylist() == [1] * 25
    assert table.column("spend").to_pylist() == [i / 2 for i in range(25)]
    assert table.column("plan").to_pylist() == [f"p{i % 3}" for i in range(25)]
    assert table.column("prediction").to_pylist() == [i % 2 for i in range(25)]
    assert table.column("probability").to_pylist() == [i / 100 for i in range(25)]
    logged_at = pa.parquet.read_table(files[0]).schema.field("logged_at").type
    assert logged_at == pa.timestamp("us", tz="UTC")
    assert log.written_rows == 25 and log.dropped_rows == 0 and log.failed_rows == 0


def test_flush_writes_pending_rows_and_days_and_models_get_their_folders(
        tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_rows=1_000, flush_seconds=3_600)
    log.start()
    log.log(record(0, rows=3))
    log.log(record(1, rows=2, at_us=DAY_US + 86_400_000_000))
    log.log(record(2, rows=4, model="spend", version=2))
    assert log.flush()
    assert log.written_rows == 9
    counts = {f.relative_to(tmp_path).parent.as_posix(): pa.parquet.read_table(f).num_rows
              for f in parquet_files(tmp_path)}
    assert counts == {"churn/date=2024-01-01": 3, "churn/date=2024-01-02": 2,
                      "spend/date=2024-01-01": 4}
    log.close()
    assert len(parquet_files(tmp_path)) == 3  # nothing left to write at close


def test_request_fields_and_clashing_names_are_kept(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.log(record(0, rows=2, request={"channel": ["web", "app"], "model": ["x", "y"]}))
    log.close()
    table = pa.parquet.read_table(parquet_files(tmp_path)[0])
    assert table.column("channel").to_pylist() == ["web", "app"]
    assert table.column("input__model").to_pylist() == ["x", "y"]  # 'model' is the model
    assert table.column("model").to_pylist() == ["churn", "churn"]


def test_versions_with_other_inputs_share_a_file_with_nulls(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.log(record(0))
    other = record(1, version=2)
    inputs = pa.table(other.inputs, schema=other.input_schema).append_column(
        "tenure", pa.array([3.0]))
    log.log(PredictionRecord(other.request_id, other.logged_at_us, "churn", 2,
                             other.entities, inputs.to_pydict(), {}, other.predictions,
                             other.probabilities, inputs.schema))
    log.close()
    table = pa.concat_tables(pa.parquet.read_table(f) for f in parquet_files(tmp_path))
    assert sorted(table.column("model_version").to_pylist()) == [1, 2]
    assert sorted(table.column("tenure").to_pylist(), key=str) == [3.0, None]


def test_a_full_queue_drops_rows_without_blocking_and_counts_them(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, max_queue=2)  # the writer has not started: nothing drains
    assert log.log(record(0, rows=5))
    assert log.log(record(1, rows=5))
    assert not log.log(record(2, rows=5))
    assert not log.log(record(3, rows=2))
    assert log.dropped_rows == 7
    log.close()
    assert log.written_rows == 10
    assert sum(pa.parquet.read_table(f).num_rows for f in parquet_files(tmp_path)) == 10
    assert not log.log(record(4))  # closed: refused and counted
    assert log.dropped_rows == 8


def test_a_failed_write_is_kept_and_written_once_the_disk_recovers(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the model folder should be")
    log = PredictionLog(tmp_path)
    log.start()
    log.log(record(0, model="blocked"))
    assert log.flush()
    assert (log.written_rows, log.failed_rows) == (0, 0)  # kept for the next flush
    log.log(record(1))
    assert log.flush()
    assert log.written_rows == 1  # the writer kept going
    blocked.unlink()  # the disk "recovers"
    assert log.flush()
    log.close()
    assert (log.written_rows, log.failed_rows) == (2, 0)
    assert sorted(f.parent.parent.name for f in parquet_files(tmp_path)) == [
        "blocked", "churn"]


def test_rows_still_unwritable_at_shutdown_are_counted_as_failed(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the model folder should be")
    log = PredictionLog(tmp_path)
    log.log(record(0, rows=3, model="blocked"))
    log.close()
    assert (log.written_rows, log.failed_rows) == (0, 3)
    assert not log.log(record(1))  # closed: refused and counted, never silently lost
    assert log.dropped_rows == 1


def test_regressors_have_no_probability_column(tmp_path: Path) -> None:
    base = record(0)
    log = PredictionLog(tmp_path)
    log.log(PredictionRecord(base.request_id, base.logged_at_us, "spend", 1, base.entities,
                             base.inputs, {}, np.array([12.5]), None, base.input_schema))
    log.close()
    table = pa.parquet.read_table(parquet_files(tmp_path)[0])
    assert "probability" not in table.column_names
    assert table.column("prediction").to_pylist() == [12.5]


def test_records_of_one_shape_are_written_as_the_records_would_be_one_by_one() -> None:
    import pyarrow as pa

    from headwater.inference.log import _tables

    records = [record(i, rows=1 + i % 3) for i in range(50)]
    (bulk,) = _tables(records)
    one_by_one = pa.concat_tables([r.to_arrow() for r in records])
    assert bulk.equals(one_by_one)
    assert bulk.num_rows == sum(1 + i % 3 for i in range(50))
    mixed = [*records[:3], record(99, version=2)]
    assert pa.concat_tables(_tables(mixed)).num_rows == sum(r.rows for r in mixed)


def test_read_log_gives_a_models_rows_in_a_time_range(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from headwater.inference.log import read_log

    log = PredictionLog(tmp_path)
    day = 86_400_000_000
    for i in range(4):  # two days, and a version with an extra input
        log.log(record(i, rows=2, at_us=DAY_US + (i // 2) * day))
    log.log(record(9, model="spend"))
    log.close()
    everything = read_log(tmp_path, "churn")
    assert everything.num_rows == 8
    assert "date" not in everything.column_names
    assert everything.column("request_id").to_pylist() == [
        f"req{i}" for i in range(4) for _ in range(2)]
    second_day = datetime(2024, 1, 2, tzinfo=UTC)
    later = read_log(tmp_path, "churn", start=second_day)
    assert later.column("request_id").to_pylist() == ["req2", "req2", "req3", "req3"]
    earlier = read_log(tmp_path, "churn", end=second_day.replace(tzinfo=None))  # naive: UTC
    assert earlier.num_rows == 4
    assert read_log(tmp_path, "churn", start=second_day + timedelta(days=5)).num_rows == 0
    assert read_log(tmp_path, "nobody").num_rows == 0
    with pytest.raises(hw.DefinitionError):
        read_log(tmp_path, "../etc")
