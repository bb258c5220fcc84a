"""The training frame: label rows joined point-in-time, canonical order, fingerprint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.models.frame import build_training_frame, fingerprint
from headwater.testing.models import FEATURES_FILE, LABELS_FILE, applied_store, feature_names
from tests.models.conftest import offer_labels, offer_model


def _rewrite(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def test_frame_has_each_label_with_the_features_of_its_day(store: hw.FeatureStore,
                                                           churn_path: Path) -> None:
    frame = build_training_frame(store, store.get_model("churn"))
    labels = pq.read_table(churn_path / LABELS_FILE)
    stats = pq.read_table(churn_path / FEATURES_FILE).to_pandas()
    assert frame.features == feature_names(10)
    assert frame.table.column_names == ["customer_id", "ts", "churned", *feature_names(10)]
    assert frame.num_rows == labels.num_rows
    assert (frame.join_keys, frame.timestamp, frame.label) == (("customer_id",), "ts",
                                                               "churned")
    got = frame.table.to_pandas()
    got["day"] = got["ts"].dt.floor("D")
    expected = got[["customer_id", "day"]].merge(
        stats.rename(columns={"ts": "day"}), on=["customer_id", "day"], how="left")
    for name in feature_names(10):
        np.testing.assert_array_equal(got[name].to_numpy(), expected[name].to_numpy())
    # canonical order: by time, then key
    order = got.sort_values(["ts", "customer_id"], kind="stable").index
    assert list(order) == list(range(len(got)))


def test_features_written_after_a_label_never_reach_it(store: hw.FeatureStore,
                                                       churn_path: Path) -> None:
    """A row stamped one microsecond after a label's time must not be used for it; a row
    stamped exactly at the label's time must (r.ts <= t)."""
    labels = pq.read_table(churn_path / LABELS_FILE)
    stats = pq.read_table(churn_path / FEATURES_FILE)
    names = feature_names(10)
    ts = labels.column("ts")
    even = pa.array(np.arange(labels.num_rows) % 2 == 0)
    at, keys_at = ts.filter(even), labels.column("customer_id").filter(even)
    after = pc.add(ts, pa.scalar(timedelta(microseconds=1)))

    def rows(keys: pa.ChunkedArray, times: pa.ChunkedArray, value: float) -> pa.Table:
        return pa.table({"customer_id": keys, "ts": times,
                         **{n: pa.array(np.full(len(keys), value)) for n in names}})

    extra = [rows(keys_at, at, 777.0), rows(labels.column("customer_id"), after, -999.0)]
    _rewrite(churn_path / FEATURES_FILE,
             pa.concat_tables([stats, *(t.cast(stats.schema) for t in extra)]))
    frame = build_training_frame(store, store.get_model("churn")).table
    values = frame.column(names[0]).to_numpy()
    assert not (values == -999.0).any()
    assert int((values == 777.0).sum()) == keys_at.length()


def test_null_labels_are_refused_with_the_count(store: hw.FeatureStore,
                                                churn_path: Path) -> None:
    labels = pq.read_table(churn_path / LABELS_FILE)
    churned = labels.column("churned").to_pylist()
    churned[0] = churned[5] = churned[9] = None
    labels = labels.set_column(2, "churned", pa.array(churned, pa.int64()))
    _rewrite(churn_path / LABELS_FILE, labels)
    with pytest.raises(hw.DataError, match=rf"ModelSpec 'churn': 3 of {labels.num_rows} "
                       r"rows .* null label \('churned'\).*Fix: drop or fill"):
        build_training_frame(store, store.get_model("churn"))


def test_fingerprint_is_stable_and_follows_the_data(store: hw.FeatureStore,
                                                    churn_path: Path) -> None:
    spec = store.get_model("churn")
    first = build_training_frame(store, spec).fingerprint
    assert build_training_frame(store, spec).fingerprint == first
    labels = pq.read_table(churn_path / LABELS_FILE)
    shuffled = labels.take(np.random.default_rng(1).permutation(labels.num_rows))
    _rewrite(churn_path / LABELS_FILE, shuffled)  # same rows, another file order
    assert build_training_frame(store, spec).fingerprint == first

    churned = labels.column("churned").to_numpy().copy()
    churned[17] = 1 - churned[17]
    _rewrite(churn_path / LABELS_FILE, labels.set_column(2, "churned", pa.array(churned)))
    changed_label = build_training_frame(store, spec).fingerprint
    assert changed_label != first

    _rewrite(churn_path / LABELS_FILE, labels)
    stats = pq.read_table(churn_path / FEATURES_FILE)
    values = stats.column("spend_30d").to_numpy().copy()
    values[: stats.num_rows // 2] += 1e-9  # one feature, slightly, in the labels' rows
    _rewrite(churn_path / FEATURES_FILE, stats.set_column(
        stats.schema.get_field_index("spend_30d"), "spend_30d", pa.array(values)))
    changed_feature = build_training_frame(store, spec).fingerprint
    assert changed_feature not in (first, changed_label)


def test_fingerprint_ignores_layout_but_not_nulls() -> None:
    table = pa.table({"k": [1, 2, 3], "x": pa.array([1.5, None, 2.5])})
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert fingerprint(chunked) == fingerprint(table)
    garbage_under_null = pa.table({"k": [1, 2, 3], "x": pa.array(
        [1.5, 9.0, 2.5], mask=np.array([False, True, False]))})
    assert fingerprint(garbage_under_null) == fingerprint(table)
    filled = pa.table({"k": [1, 2, 3], "x": pa.array([1.5, 0.0, 2.5])})
    assert fingerprint(filled) != fingerprint(table)
    renamed = pa.table({"k": [1, 2, 3], "y": pa.array([1.5, None, 2.5])})
    assert fingerprint(renamed) != fingerprint(table)
    retyped = table.cast(pa.schema([("k", pa.int32()), ("x", pa.float64())]))
    assert fingerprint(retyped) != fingerprint(table)


def test_label_source_may_be_csv_with_string_times(store: hw.FeatureStore,
                                                   churn_path: Path) -> None:
    """The same labels as CSV with ISO strings give the same frame and fingerprint."""
    from pyarrow import csv

    spec = store.get_model("churn")
    parquet = build_training_frame(store, spec)
    labels = pq.read_table(churn_path / LABELS_FILE)
    text = labels.set_column(1, "ts", pa.array(
        [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in labels.column("ts").to_pylist()]))
    csv.write_csv(text, churn_path / "data" / "labels.csv")
    source = hw.FileSource("data/labels.csv", timestamp_field="ts", name="csv_labels")
    csv_spec = hw.ModelSpec(name="churn_csv", features=spec.features,
                            label=hw.LabelSource(source, "churned"),
                            estimator_class=spec.estimator_class,
                            estimator_params=spec.estimator_params, task=spec.task)
    from_csv = build_training_frame(store, csv_spec)
    assert from_csv.table.equals(parquet.table)
    assert from_csv.fingerprint == parquet.fingerprint


@pytest.fixture
def pg_labels(postgres_url: str, churn_path: Path) -> Iterator[str]:
    """The churn labels copied to a uniquely named PostgreSQL table."""
    import psycopg

    name = f"hw_labels_{uuid.uuid4().hex[:12]}"
    labels = pq.read_table(churn_path / LABELS_FILE).to_pylist()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (customer_id bigint, ts timestamptz, '
                     "churned bigint, spend_next_30d double precision)")
        with conn.cursor() as cursor:
            cursor.executemany(
                f'INSERT INTO "{name}" VALUES (%s, %s, %s, %s)',
                [(r["customer_id"], r["ts"], r["churned"], r["spend_next_30d"])
                 for r in labels])
    try:
        yield name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def test_label_source_may_be_sql(churn_path: Path, postgres_url: str, pg_labels: str) -> None:
    """Labels read from PostgreSQL through a SQLSource give the frame the Parquet labels
    give, value for value."""
    (churn_path / "headwater.yaml").write_text(
        f"project: churn_demo\noffline:\n  connections:\n    warehouse: {postgres_url}\n")
    store = applied_store(churn_path)
    try:
        spec = store.get_model("churn")
        source = hw.SQLSource(f'SELECT * FROM "{pg_labels}"', timestamp_field="ts",
                              connection="warehouse", name="pg_labels")
        sql_spec = hw.ModelSpec(name="churn_pg", features=spec.features,
                                label=hw.LabelSource(source, "churned"),
                                estimator_class=spec.estimator_class,
                                estimator_params=spec.estimator_params, task=spec.task)
        store.apply([sql_spec])
        from_sql = build_training_frame(store, store.get_model("churn_pg"))
        from_files = build_training_frame(store, spec)
        assert from_sql.num_rows == from_files.num_rows
        assert from_sql.fingerprint == from_files.fingerprint
    finally:
        store.close()


def test_request_fields_of_on_demand_views_are_model_inputs(store: hw.FeatureStore,
                                                            churn_path: Path) -> None:
    store.apply(offer_model(store, offer_labels(churn_path)))
    frame = build_training_frame(store, store.get_model("offer_churn"))
    assert frame.features == (*feature_names(10), "spend_after_discount", "discount")
    assert frame.request_fields == ("discount",)
    assert frame.table.column_names[:4] == ["customer_id", "ts", "discount", "churned"]
    table = frame.table
    np.testing.assert_allclose(
        table.column("spend_after_discount").to_numpy(),
        table.column("spend_30d").to_numpy() * (1 - table.column("discount").to_numpy()))


def test_rows_tied_on_keys_are_ordered_by_list_and_dictionary_fields_too() -> None:
    import pyarrow.compute as pc

    from headwater.models.frame import _sort_columns, fingerprint

    table = pa.table({
        "ts": pa.array([1, 1, 1, 1], pa.int64()),
        "basket": pa.array([[3, 1], [1, 2], None, [1]], pa.list_(pa.int64())),
        "plan": pa.array(["b", "a", "a", "c"]).dictionary_encode(),
        "label": pa.array([0, 1, 0, 1], pa.int64()),
    })

    def canonical(frame: pa.Table) -> pa.Table:
        keys = _sort_columns(frame, ("ts", "basket", "plan", "label"))
        return frame.take(pc.sort_indices(
            keys, sort_keys=[(c, "ascending") for c in keys.column_names]))

    forward = canonical(table)
    backward = canonical(table.take(pa.array([3, 2, 1, 0])))
    assert forward.equals(backward)
    assert fingerprint(forward) == fingerprint(backward)
