"""``python -m benchmarks.ten_million``: 10M entity rows through
``get_historical_features(...).to_parquet`` with bounded memory (issue 2: "10M entity rows
must run on this 24 GiB machine"). Prints rows, seconds and peak resident memory (VmHWM).
Not part of ``make bench``: it needs about 3 GB and a minute."""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.measure import peak_mb

ENTITIES, HOURS, ENTITY_ROWS = 10_000, 720, 10_000_000


def main() -> None:
    import pyarrow.parquet as pq

    import headwater as hw
    from headwater.testing.data import DEFAULT_START, driver_entity_rows, driver_stats

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        (repo / "data").mkdir()
        (repo / "headwater.yaml").write_text("project: ten\n")
        pq.write_table(driver_stats(ENTITIES, HOURS, n_features=10), repo / "data/s.parquet")
        end = DEFAULT_START + timedelta(hours=HOURS)
        rows_in = driver_entity_rows(ENTITY_ROWS, ENTITIES, DEFAULT_START, end)
        pq.write_table(rows_in, repo / "e.parquet")
        del rows_in
        driver = hw.Entity("driver", join_keys=["driver_id"])
        source = hw.FileSource("data/s.parquet", "event_timestamp", "created")
        view = hw.FeatureView("s", entities=[driver], source=source)
        with hw.FeatureStore(repo) as store:
            store.apply([driver, view])
            entity = pq.read_table(repo / "e.parquet")
            before = peak_mb()
            started = time.perf_counter()
            job = store.get_historical_features(entity, ["s:*"])
            rows = job.to_parquet(repo / "out.parquet")
            seconds = time.perf_counter() - started
            print(f"{ENTITY_ROWS:,} entity rows -> to_parquet: {rows:,} rows in {seconds:.1f} s; "
                  f"peak RSS {peak_mb():,.0f} MB (before the call {before:,.0f} MB)")


if __name__ == "__main__":
    main()
