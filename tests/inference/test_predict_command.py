"""``headwater predict``: an entity file or query scored, to Parquet or a DuckDB table."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from headwater.cli.predict import predict
from tests.inference.conftest import Trained


def entity_file(trained: Trained, path: Path) -> Path:
    pq.write_table(pa.table({
        "customer_id": pa.array(range(1, 31), pa.int64()),
        "ts": pa.array([trained.start + timedelta(days=12, hours=3)] * 30,
                       pa.timestamp("us", tz="UTC"))}), path)
    return path


def test_scores_a_file_to_parquet_with_a_summary(trained: Trained, tmp_path: Path) -> None:
    entities = entity_file(trained, tmp_path / "entities.parquet")
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(predict, ["churn@production", "--entities", str(entities),
                                          "--output", str(out), "--repo", str(trained.repo),
                                          "--chunk-rows", "8"])
    assert result.exit_code == 0, result.output
    assert "churn:1: 30 rows in" in result.output and "rows/s" in result.output
    scores = pq.read_table(out)
    expected = trained.store.predict("churn", pq.read_table(entities)).to_arrow()
    assert scores.equals(expected)


def test_scores_a_query_into_a_duckdb_table(trained: Trained, tmp_path: Path) -> None:
    database = tmp_path / "scores.duckdb"
    query = "SELECT customer_id, ts + INTERVAL 2 HOUR AS ts FROM customer_stats"
    args = ["spend", "--entities", query, "--table", "scores", "--database", str(database),
            "--repo", str(trained.repo)]
    result = CliRunner().invoke(predict, args)
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(database)) as db:
        count, models = db.sql("SELECT count(*), string_agg(DISTINCT model) "
                               "FROM scores").fetchall()[0]
    assert (count, models) == (120 * 40, "spend")
    again = CliRunner().invoke(predict, args)  # mode create: the table exists
    assert again.exit_code != 0
    assert "already exists" in str(again.exception or again.output)


def test_without_output_the_first_rows_are_printed(trained: Trained, tmp_path: Path) -> None:
    entities = entity_file(trained, tmp_path / "entities.parquet")
    result = CliRunner().invoke(predict, ["churn", "-e", str(entities), "-r",
                                          str(trained.repo)])
    assert result.exit_code == 0, result.output
    assert "prediction" in result.output and "probability" in result.output


def test_bad_arguments(trained: Trained, tmp_path: Path) -> None:
    result = CliRunner().invoke(predict, ["churn", "-e", "missing.parquet", "-r",
                                          str(trained.repo)])
    assert result.exit_code != 0
    assert "neither a file nor a SQL query" in str(result.exception)
    result = CliRunner().invoke(predict, ["churn", "-e", "x", "--table", "t", "-r",
                                          str(trained.repo)])
    assert result.exit_code == 2
    assert "--database or --connection" in result.output


def test_as_of_scores_a_key_file_and_two_outputs_are_refused(trained: Trained,
                                                             tmp_path: Path) -> None:
    keys = tmp_path / "keys.parquet"
    pq.write_table(pa.table({"customer_id": pa.array(range(1, 11), pa.int64())}), keys)
    at = trained.start + timedelta(days=12, hours=3)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(predict, ["churn", "-e", str(keys), "--as-of", at.isoformat(),
                                          "-o", str(out), "-r", str(trained.repo)])
    assert result.exit_code == 0, result.output
    scores = pq.read_table(out)
    assert set(scores.column("event_timestamp").to_pylist()) == {at}
    assert scores.num_rows == 10 and scores.column("probability").null_count == 0
    both = CliRunner().invoke(predict, ["churn", "-e", str(keys), "-o", str(out), "--table",
                                        "t", "--database", str(tmp_path / "d.duckdb"),
                                        "-r", str(trained.repo)])
    assert both.exit_code == 2 and "not both" in both.output
