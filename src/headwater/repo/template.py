"""``headwater init``: write a runnable example repo with generated data.

The repo has a ``headwater.yaml`` naming the project, a ``features.py`` defining the
``driver`` entity, the ``driver_stats`` feature view over ``data/driver_stats.parquet``, the
``trips`` stream source with the windowed aggregates of ``driver_trips`` over it, and the
``driver_model`` and ``driver_live`` feature services; a ``models.py`` defining the
``driver_conversion`` model (a gradient-boosted classifier on ``driver_model`` predicting
``data/driver_labels.parquet``'s label) and a nightly ``materialize_incremental`` job. The
data are generated: ``data/driver_stats.parquet`` by
:func:`headwater.testing.data.driver_stats` (hourly rows from 2024-01-01 UTC for drivers
1001, 1002, ...), the labels by :func:`headwater.testing.data.driver_entity_rows` (drawn
from each driver's hidden rate, which ``conv_rate`` scatters around) and the trip history in
``data/trips/`` by :func:`headwater.testing.data.trip_events`, one Parquet file per day in
``date=YYYY-MM-DD`` folders, the layout pushed and streamed events are appended in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.config import CONFIG_FILE
from headwater.errors import ConfigError, HeadwaterError

if TYPE_CHECKING:
    import pyarrow as pa

DATA_FILE = "data/driver_stats.parquet"
LABELS_FILE = "data/driver_labels.parquet"
MODELS_FILE = "models.py"
MODEL_NAME = "driver_conversion"
TRIPS_FOLDER = "data/trips"
TRIPS_PER_DRIVER_HOUR = 2
DEFINITIONS_FILE = "features.py"
_PROJECT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

CONFIG_TEMPLATE = """\
# Headwater repo settings. Only 'project' is required; the defaults below are embedded:
# the registry is a SQLite file in .headwater/ and the offline engine is DuckDB.
project: {project}
# registry: .headwater/registry.db        # or postgresql://host/db
# offline:
#   engine: duckdb
#   memory_limit: 8GB
#   threads: 2
"""

DEFINITIONS_TEMPLATE = '''\
"""Feature definitions. `headwater apply` registers every object defined in this folder."""

from datetime import timedelta

import headwater as hw

driver = hw.Entity("driver", join_keys=["driver_id"], description="A driver of the fleet")

driver_stats = hw.FeatureView(
    name="driver_stats",
    entities=[driver],
    source=hw.FileSource(
        "{data_file}",
        timestamp_field="event_timestamp",
        created_timestamp_field="created",
    ),
    schema=[hw.Field("conv_rate", hw.Float64), hw.Field("trips", hw.Int64)],
    ttl=timedelta(days=1),
    description="Hourly conversion rate and trip count per driver",
)

# Trip events arrive on the "trips" stream (`headwater stream`, or store.push("trips", rows));
# each is also appended to data/trips/, which training and backfills read.
trips = hw.StreamSource(
    name="trips",
    timestamp_field="ts",
    batch_source=hw.FileSource("{trips_folder}/", timestamp_field="ts"),
)

driver_trips = hw.FeatureView(
    name="driver_trips",
    entities=[driver],
    source=trips,
    aggregations=[
        hw.Aggregation("fare", "count", timedelta(hours=1), name="trips_1h"),
        hw.Aggregation("fare", "mean", timedelta(hours=1), name="fare_mean_1h"),
        hw.Aggregation("fare", "last", timedelta(hours=1), name="last_fare"),
        hw.Aggregation("rating", "mean", timedelta(days=7), name="rating_mean_7d"),
    ],
    description="Windowed aggregates of each driver's completed trips",
)

driver_model = hw.FeatureService("driver_model", features=[driver_stats])
driver_live = hw.FeatureService("driver_live", features=[driver_trips])
'''

MODELS_TEMPLATE = '''\
"""Models and scheduled jobs. `headwater train {model}` trains the model below on the
driver_model features (needs scikit-learn: pip install 'headwater[ml]')."""

from datetime import timedelta

from features import driver_model
from sklearn.ensemble import HistGradientBoostingClassifier

import headwater as hw

{model} = hw.ModelSpec(
    name="{model}",
    features=driver_model,
    label=hw.LabelSource(
        source=hw.FileSource("{labels_file}", timestamp_field="event_timestamp"),
        column="label",
    ),
    estimator=HistGradientBoostingClassifier(max_iter=50, random_state=0),
    split=hw.TimeSplit(test_fraction=0.2),          # the latest 20% of label times to test
    metrics=["roc_auc", "log_loss", "accuracy"],
    promotion=[hw.PromotionRule("roc_auc")],        # production only moves to a model as good
    description="Will the driver convert the next offer?",
)

nightly_features = hw.Job(
    name="nightly_features",
    schedule="0 2 * * *",                           # cron, UTC
    action="materialize_incremental",
    retries=2,
    retry_backoff=timedelta(minutes=1),
)
'''

GITIGNORE_TEMPLATE = """\
.headwater/
"""


@dataclass(frozen=True)
class InitResult:
    """What ``init_repo`` wrote; ``files`` are relative to ``repo``."""

    repo: Path
    project: str
    files: tuple[Path, ...]
    data_rows: int
    trip_events: int = 0


def project_name(folder: str | os.PathLike[str]) -> str:
    """A project name derived from a folder name: ``my-repo`` -> ``my_repo``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", Path(folder).resolve().name) or "project"
    return name if _PROJECT.match(name) else f"_{name}"


def init_repo(
    folder: str | os.PathLike[str],
    project: str | None = None,
    *,
    n_drivers: int = 10,
    n_hours: int = 24 * 14,
    start: datetime | None = None,
    seed: int = 0,
    trips_end: datetime | None = None,
    n_labels: int = 2_000,
) -> InitResult:
    """Create a runnable repo in ``folder`` (created if missing).

    Never overwrites: raises HeadwaterError if one of the files exists already. The data
    file holds ``n_drivers * n_hours`` rows, the labels ``n_labels`` rows and the trip history
    ``2 * n_drivers * n_hours`` events over the same hours (ending at ``trips_end`` instead
    when it is earlier)."""
    import pyarrow.parquet as pq

    from headwater.testing.data import (
        DEFAULT_START,
        driver_entity_rows,
        driver_stats,
        trip_events,
    )

    repo = Path(folder)
    name = project if project is not None else project_name(repo)
    if not _PROJECT.match(name):
        raise ConfigError(f"project name '{name}' is not valid. Fix: use letters, digits and "
                          "underscores, starting with a letter (e.g. --project my_project)")
    if repo.exists() and not repo.is_dir():
        raise HeadwaterError(f"{repo} exists and is not a folder. Fix: name a new folder")
    targets = {
        repo / CONFIG_FILE: CONFIG_TEMPLATE.format(project=name),
        repo / DEFINITIONS_FILE: DEFINITIONS_TEMPLATE.format(data_file=DATA_FILE,
                                                             trips_folder=TRIPS_FOLDER),
        repo / MODELS_FILE: MODELS_TEMPLATE.format(model=MODEL_NAME, labels_file=LABELS_FILE),
    }
    gitignore = repo / ".gitignore"  # an existing one is the user's: left as it is
    data_path = repo / DATA_FILE
    labels_path = repo / LABELS_FILE
    trips_path = repo / TRIPS_FOLDER
    existing = [p for p in [*targets, data_path, labels_path, trips_path] if p.exists()]
    if existing:
        raise HeadwaterError(
            f"{repo} already holds {', '.join(p.relative_to(repo).as_posix() for p in existing)}"
            ". Fix: choose an empty or new folder"
        )
    data_path.parent.mkdir(parents=True, exist_ok=True)
    if not gitignore.exists():
        targets[gitignore] = GITIGNORE_TEMPLATE
    for path, text in targets.items():
        path.write_text(text)
    table = driver_stats(n_drivers=n_drivers, n_hours=n_hours,
                         start=start or DEFAULT_START, seed=seed)
    pq.write_table(table, data_path)
    start = start or DEFAULT_START
    trips_until = start + timedelta(hours=n_hours)
    labels = driver_entity_rows(n_labels, n_drivers, start, trips_until, seed=seed, label=True)
    pq.write_table(labels.sort_by("event_timestamp"), labels_path)
    if trips_end is not None and trips_end < trips_until:
        trips_until = trips_end
    trips = trip_events(n_drivers, n_drivers * n_hours * TRIPS_PER_DRIVER_HOUR, start,
                        trips_until, seed=seed)
    trip_files = write_by_date(trips, "ts", trips_path, "history.parquet")
    written = tuple(p.relative_to(repo)
                    for p in (*targets, data_path, labels_path, *trip_files))
    return InitResult(repo.resolve(), name, written, table.num_rows, trips.num_rows)


def write_by_date(table: pa.Table, time_column: str, folder: Path, file_name: str) -> list[Path]:
    """Write ``table`` as one Parquet file per UTC date of ``time_column``, in the partition
    folders pushed and streamed events use (``folder/date=YYYY-MM-DD/file_name``); returns
    the files written."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from headwater.streaming.parquet_append import partition_name

    micros = table.column(time_column).cast(pa.int64()).to_numpy()
    days = micros // 86_400_000_000
    written = []
    for day in np.unique(days).tolist():
        path = folder / partition_name(day) / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(days == day)), path)
        written.append(path)
    return written
