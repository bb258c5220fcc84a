"""Write this example's data: `python generate_data.py` (run it once before `headwater apply`).

The rows are hourly, for N_DRIVERS drivers (ids 1001, 1002, ...) over N_HOURS hours from
2024-01-01 UTC, made by headwater.testing.data.driver_stats.
"""

from __future__ import annotations

from pathlib import Path

N_DRIVERS = 25
N_HOURS = 24 * 7
HERE = Path(__file__).resolve().parent


def main() -> None:
    import pyarrow.parquet as pq

    from headwater.testing.data import driver_stats

    table = driver_stats(N_DRIVERS, N_HOURS, n_features=4, seed=7)
    target = HERE / "data" / "driver_stats.parquet"
    target.parent.mkdir(exist_ok=True)
    pq.write_table(table, target)
    print(f"wrote {table.num_rows} rows to {target.relative_to(HERE)}")


if __name__ == "__main__":
    main()
