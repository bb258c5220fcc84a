"""Batch inference: the model's features as of each row's time, scored in chunks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.errors import DataError, NotFoundError
from headwater.testing.models import FEATURE_NAMES
from tests.inference.conftest import Trained


def entities(trained: Trained, rows: int = 50) -> pa.Table:
    """Customers 1..rows (and one unknown, 9999) at times spread over the period."""
    ids = [*range(1, rows + 1), 9999]
    times = [trained.start + timedelta(days=10 + i % 25, hours=i % 23) for i in range(len(ids))]
    return pa.table({"customer_id": pa.array(ids, pa.int64()),
                     "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                     "note": pa.array([f"n{i}" for i in ids])})


def test_predictions_are_the_models_on_the_point_in_time_features(trained: Trained) -> None:
    store = trained.store
    frame = entities(trained)
    job = store.predict("churn@production", frame)
    assert job.model_version.version == trained.run.version
    assert job.num_rows == frame.num_rows
    result = job.to_arrow()
    assert result.column_names == ["customer_id", "ts", "note", *FEATURE_NAMES, "prediction",
                                   "probability", "model", "model_version"]
    assert result.column("customer_id").to_pylist() == frame.column("customer_id").to_pylist()
    expected = store.get_historical_features(frame, store.get_feature_service(
        "churn_features")).to_arrow()
    assert result.select(expected.column_names).equals(expected)
    outputs = store.load_model("churn:1").predict(expected)
    assert result.column("prediction").to_pylist() == outputs["prediction"].tolist()
    np.testing.assert_array_equal(result.column("probability").to_numpy(),
                                  outputs["probability"])
    assert set(result.column("prediction").to_pylist()) <= {0, 1}
    assert set(result.column("model").to_pylist()) == {"churn"}
    assert set(result.column("model_version").to_pylist()) == {trained.run.version}
    assert result.column("spend_30d")[-1].as_py() is None  # the unknown customer: no features


def test_chunks_give_the_same_result_and_report_progress(trained: Trained) -> None:
    frame = entities(trained)
    calls: list[tuple[str, int]] = []
    chunked = trained.store.predict("churn", frame, chunk_rows=7,
                                    progress=lambda step, rows: calls.append((step, rows)))
    whole = trained.store.predict("churn", frame)
    assert chunked.to_arrow().equals(whole.to_arrow())
    assert calls == [("predict", 7)] * 7 + [("predict", 2)]


def test_regressors_give_values_without_probability(trained: Trained) -> None:
    result = trained.store.predict("spend", entities(trained, 10)).to_arrow()
    assert "probability" not in result.column_names
    assert result.schema.field("prediction").type == pa.float64()
    assert set(result.column("model").to_pylist()) == {"spend"}


def test_an_entity_query_is_scored(trained: Trained) -> None:
    query = ("SELECT customer_id, ts + INTERVAL 5 HOUR AS ts FROM customer_stats "
             "WHERE customer_id <= 5 ORDER BY ts, customer_id")
    job = trained.store.predict("churn@production", query)
    assert job.num_rows is None
    result = job.to_arrow()
    assert job.num_rows == result.num_rows > 0
    assert set(result.column("customer_id").to_pylist()) <= {1, 2, 3, 4, 5}
    assert result.column("prediction").null_count == 0


def test_parquet_and_duckdb_outputs(trained: Trained, tmp_path: Path) -> None:
    job = trained.store.predict("churn", entities(trained))
    expected = job.to_arrow()
    assert job.to_parquet(tmp_path / "out" / "scores.parquet") == expected.num_rows
    assert pq.read_table(tmp_path / "out" / "scores.parquet").equals(expected)
    assert job.to_table("scores", database=tmp_path / "scores.duckdb") == expected.num_rows
    with duckdb.connect(str(tmp_path / "scores.duckdb")) as db:
        rows = db.sql("SELECT customer_id, prediction, probability FROM scores").fetchall()
    assert rows == list(zip(*(expected.column(c).to_pylist()
                              for c in ("customer_id", "prediction", "probability")),
                            strict=True))


def test_no_rows_give_an_empty_typed_result(trained: Trained) -> None:
    result = trained.store.predict("churn", entities(trained).slice(0, 0)).to_arrow()
    assert result.num_rows == 0
    assert result.column_names[-4:] == ["prediction", "probability", "model", "model_version"]


def test_bad_references_and_frames_are_refused(trained: Trained) -> None:
    frame = entities(trained)
    with pytest.raises(NotFoundError):
        trained.store.predict("churn@staging", frame)
    with pytest.raises(NotFoundError):
        trained.store.predict("nope", frame)
    with pytest.raises(DataError, match="'prediction'"):
        trained.store.predict("churn", frame.append_column("prediction", frame["note"]))
    with pytest.raises(DataError, match="chunk_rows"):
        trained.store.predict("churn", frame, chunk_rows=0)


def test_as_of_scores_key_only_rows_at_one_time(trained: Trained) -> None:
    store = trained.store
    at = trained.start + timedelta(days=20, hours=5)
    keys = pa.table({"customer_id": pa.array([1, 2, 3, 9999], pa.int64())})
    result = store.predict("churn", keys, as_of=at).to_arrow()
    stamped = keys.append_column("event_timestamp",
                                 pa.array([at] * 4, pa.timestamp("us", tz="UTC")))
    expected = store.predict("churn", stamped).to_arrow()
    assert result.equals(expected)
    assert set(result.column("event_timestamp").to_pylist()) == {at}
    # a query of keys gets the same time
    query = "SELECT DISTINCT customer_id FROM customer_stats WHERE customer_id <= 3"
    by_query = store.predict("churn", query, as_of=at).to_arrow().sort_by("customer_id")
    assert by_query.column("probability").to_pylist() == (
        result.column("probability").to_pylist()[:3])
    with pytest.raises(DataError, match="already have a 'event_timestamp' column"):
        store.predict("churn", stamped, as_of=at)
