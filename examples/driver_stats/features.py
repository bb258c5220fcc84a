"""Definitions of the example repo: one entity, two feature views over one file, two services.

`headwater apply` imports every Python file in this folder and registers the entities,
feature views and feature services it finds; objects removed from the files are removed
from the registry.
"""

from __future__ import annotations

from datetime import timedelta

import headwater as hw

driver = hw.Entity("driver", join_keys=["driver_id"], description="A driver of the fleet")

hourly = hw.FileSource(
    "data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_field="created",  # breaks ties between rows with the same event time
)

driver_stats = hw.FeatureView(
    name="driver_stats",
    entities=[driver],
    source=hourly,
    schema=[hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)],
    ttl=timedelta(days=1),
    description="Hourly conversion rate and trips; values older than a day are not used",
)

driver_scores = hw.FeatureView(
    name="driver_scores",
    entities=[driver],
    source=hourly,
    schema=[hw.Field("f2", hw.Float64), hw.Field("f3", hw.Float64)],
    ttl=timedelta(hours=2),
    description="Two model scores, only usable while fresh",
)

driver_model = hw.FeatureService(
    "driver_model",
    features=[driver_stats, driver_scores[["f2"]]],
    description="What the conversion model reads",
)

driver_dashboard = hw.FeatureService("driver_dashboard", features=["driver_stats:trips"])
