"""Build a point-in-time correct training frame: `python training_frame.py` after apply.

Labelled entity rows at random drivers and times get, per row, the latest feature values
known at that row's time (within each view's ttl).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from generate_data import N_DRIVERS, N_HOURS

    import headwater as hw
    from headwater.testing.data import DEFAULT_START, driver_entity_rows

    end = DEFAULT_START + timedelta(hours=N_HOURS)
    entity_rows = driver_entity_rows(1_000, N_DRIVERS, DEFAULT_START, end, seed=7)
    with hw.FeatureStore(HERE) as store:
        service = store.get_feature_service("driver_model")
        frame = store.get_historical_features(entity_rows, features=service).to_pandas()
    print(frame.head())
    print(f"{len(frame)} rows, columns: {', '.join(frame.columns)}")


if __name__ == "__main__":
    main()
