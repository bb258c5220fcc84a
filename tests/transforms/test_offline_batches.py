"""Training frames run the function once per streamed batch, never over the whole frame."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import headwater as hw
from headwater.definitions.selection import OnDemandRequest, Selection, ViewRequest
from headwater.offline.retrieval import RetrievalJob
from headwater.transforms.offline import with_on_demand

DRIVER = hw.Entity("driver", join_keys=["driver_id"])
STATS = hw.FeatureView(name="stats", entities=[DRIVER],
                       source=hw.FileSource("x.parquet", timestamp_field="ts"),
                       schema=[hw.Field("rate", hw.Float64), hw.Field("trips", hw.Int64)])
SCALED = hw.OnDemandFeatureView(
    name="scaled", sources=[STATS[["rate"]], hw.RequestSource("r", [hw.Field("k", hw.Int64)])],
    schema=[hw.Field("scaled", hw.Float64)], mode="arrow", function_source="def f(b): ...\n")


def test_each_batch_gets_its_own_call_and_hidden_inputs_are_dropped() -> None:
    sizes: list[int] = []

    def function(batch: pa.Table) -> pa.Table:
        sizes.append(batch.num_rows)
        assert batch.column_names == ["rate", "k"]
        return pa.table({"scaled": pc.multiply(batch["rate"], batch["k"])})

    schema = pa.schema([("driver_id", pa.int64()), ("k", pa.int64()),
                        ("trips", pa.int64()), ("__hw_in__stats__rate", pa.float64())])
    batches = [pa.record_batch([pa.array([i, i + 1]), pa.array([2, 3]), pa.array([7, 8]),
                                pa.array([0.5, float(i)])], schema=schema)
               for i in range(0, 10, 2)]
    job = RetrievalJob(lambda: pa.RecordBatchReader.from_batches(schema, iter(batches)))
    selection = Selection(
        requests=(ViewRequest(STATS, STATS.features, ("trips", "__hw_in__stats__rate")),),
        order=("scaled", "trips"),
        on_demand=(OnDemandRequest(SCALED, SCALED.features, ("scaled",),
                                   (("rate", "__hw_in__stats__rate"),),
                                   (hw.Field("k", hw.Int64),)),),
        fetched=("trips", "__hw_in__stats__rate"))
    functions: dict[str, Any] = {"scaled": function}
    out = list(with_on_demand(job, selection, functions).to_batches())
    assert sizes == [2] * 5  # once per batch of the join's stream
    assert [b.num_rows for b in out] == [2] * 5
    table = pa.Table.from_batches(out)
    assert table.column_names == ["driver_id", "k", "scaled", "trips"]
    assert table.column("scaled").to_pylist() == [1.0, 0.0, 1.0, 6.0, 1.0, 12.0, 1.0, 18.0,
                                                  1.0, 24.0]
