"""The demo: the whole first loop of Headwater on generated data, step by step.

:func:`run_demo` creates a repo from generated driver data (``headwater init``), registers
its definitions (``headwater apply``), draws labelled entity rows, builds a point-in-time
correct training frame with ``get_historical_features``, splits it by time, trains a
scikit-learn classifier and reports its ROC AUC on the later part. Then it materializes the
features into the online store, starts ``headwater serve``, reads the feature service over
HTTP and checks the served values against the training frame's at the same time. Last, it
streams live trip events into the running server while a reader keeps asking for features
(:mod:`~headwater.demo.live`): the windowed aggregates update within milliseconds and equal
the training frame's at the same instant. Each step is timed and reported to an optional
listener, which is how the CLI draws its progress bar; this module
knows nothing about terminals.

The labels are drawn from each driver's hidden rate, the same one the driver's
``conv_rate`` feature scatters around, so the model has something real to learn, but only
through features that were known at each row's time.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from headwater.demo.live import LiveStream, check_consistency, stream_live
from headwater.demo.model import LABEL, roc_auc, split_by_time
from headwater.demo.model import train as fit
from headwater.demo.server import ServedFeatures, feature_server
from headwater.errors import DataError, HeadwaterError

if TYPE_CHECKING:
    from headwater.store import FeatureStore

MARKER = ".headwater-demo"
"""A file that marks a folder as made by the demo, so a rerun may replace it."""

STEPS = (
    "generate data",
    "apply definitions",
    "draw labelled entity rows",
    "build training frame",
    "split by time",
    "train model",
    "evaluate",
    "materialize",
    "serve online features",
    "stream live events",
)
SERVED_DRIVERS = 5
SERVED_REQUESTS = 200
FEATURE_SERVICE = "driver_model"


@dataclass(frozen=True)
class DemoSize:
    """How much data the demo makes: drivers x hourly rows, and labelled entity rows."""

    n_drivers: int = 1_000
    n_hours: int = 24 * 30
    n_rows: int = 500_000

    def __post_init__(self) -> None:
        if self.n_drivers < 1 or self.n_hours < 2 or self.n_rows < 20:
            raise HeadwaterError("the demo needs at least 1 driver, 2 hours and 20 entity "
                                 f"rows, got {self}")


@dataclass(frozen=True)
class StepReport:
    """One finished step: its name, wall time, the rows it produced and a one-line detail."""

    name: str
    seconds: float
    rows: int | None
    detail: str


@dataclass(frozen=True)
class DemoResult:
    """Everything the demo measured."""

    repo: Path
    steps: tuple[StepReport, ...]
    metric_name: str
    metric: float
    train_rows: int
    test_rows: int
    features: tuple[str, ...]
    served: ServedFeatures
    live: LiveStream
    live_values: dict[str, list[object]]

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)


class DemoListener(Protocol):
    """Told when each step starts and ends (the CLI draws a progress bar from this)."""

    def step_started(self, index: int, name: str) -> None: ...

    def step_finished(self, index: int, report: StepReport) -> None: ...


@dataclass
class _Recorder:
    listener: DemoListener | None
    reports: list[StepReport] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[Callable[[int | None, str], None]]:
        """Time one step; the body calls ``done(rows, detail)`` to describe its output."""
        index = len(self.reports)
        if self.listener is not None:
            self.listener.step_started(index, name)
        outcome: list[tuple[int | None, str]] = []
        started = time.perf_counter()
        yield lambda rows, detail: outcome.append((rows, detail))
        rows, detail = outcome[-1] if outcome else (None, "")
        report = StepReport(name, time.perf_counter() - started, rows, detail)
        self.reports.append(report)
        if self.listener is not None:
            self.listener.step_finished(index, report)


def run_demo(
    directory: str | os.PathLike[str] = "demo_repo",
    size: DemoSize | None = None,
    *,
    seed: int = 0,
    listener: DemoListener | None = None,
) -> DemoResult:
    """Run every demo step in ``directory`` and return the measurements.

    ``directory`` is created; a folder made by an earlier demo run is replaced, any other
    non-empty folder is refused with a HeadwaterError."""
    import pyarrow.compute as pc

    from headwater.repo import init_repo, load_definitions
    from headwater.store import FeatureStore
    from headwater.testing.data import driver_entity_rows

    size = size or DemoSize()
    repo = _fresh_folder(Path(directory))
    steps = _Recorder(listener)
    # the data's last hourly row is the current hour's, so serving "now" sees fresh values
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = this_hour - timedelta(hours=size.n_hours - 1)
    end = start + timedelta(hours=size.n_hours)

    with steps.step(STEPS[0]) as done:
        now = datetime.now(UTC)
        created = init_repo(repo, "demo", n_drivers=size.n_drivers, n_hours=size.n_hours,
                            start=start, seed=seed, trips_end=now)
        (repo / MARKER).write_text("made by `headwater demo`; rerunning the demo replaces "
                                   "this folder\n")
        done(created.data_rows, f"{size.n_drivers:,} drivers x {size.n_hours:,} hourly rows "
                                f"-> data/driver_stats.parquet; {created.trip_events:,} trip "
                                "events -> data/trips/")

    with FeatureStore(repo) as store:
        with steps.step(STEPS[1]) as done:
            objects = load_definitions(repo)
            plan = store.apply(objects, prune=True)
            done(len(objects), f"{len(plan.changes)} object(s) created: "
                               + ", ".join(f"{c.kind} {c.name}" for c in plan.changes))

        with steps.step(STEPS[2]) as done:
            entity_rows = driver_entity_rows(size.n_rows, size.n_drivers, start, end,
                                             seed=seed, label=True)
            positives = int(pc.sum(entity_rows.column(LABEL)).as_py() or 0)
            done(entity_rows.num_rows, f"random drivers and times; {positives:,} positive "
                                       f"labels ({positives / entity_rows.num_rows:.0%})")

        with steps.step(STEPS[3]) as done:
            service = store.get_feature_service(FEATURE_SERVICE)
            frame = store.get_historical_features(entity_rows, features=service).to_arrow()
            features = tuple(n for n in frame.column_names if n not in entity_rows.column_names)
            nulls = sum(frame.column(n).null_count for n in features)
            done(frame.num_rows, f"{len(features)} features {list(features)} from feature "
                                 f"service '{FEATURE_SERVICE}'; {nulls:,} null values")

    with steps.step(STEPS[4]) as done:
        train, test, cutoff = split_by_time(frame, features)
        done(len(train[1]) + len(test[1]),
             f"{len(train[1]):,} rows before {cutoff} to train, {len(test[1]):,} from it on "
             "to test")

    with steps.step(STEPS[5]) as done:
        model = fit(*train)
        done(len(train[1]), f"{type(model).__name__} on {list(features)}")

    with steps.step(STEPS[6]) as done:
        auc = roc_auc(model, *test)
        done(len(test[1]), f"ROC AUC {auc:.3f} on the later {len(test[1]):,} rows")

    with FeatureStore(repo) as store:
        with steps.step(STEPS[7]) as done:
            results = store.materialize(start, end)
            written = sum(r.rows for r in results)
            rate = written / max(sum(r.seconds for r in results), 1e-9)
            done(written, f"latest row and trip tiles of {written:,} (view, driver) records "
                          f"into the online store ({rate:,.0f} records/s)")

        drivers = [1001 + i for i in range(min(SERVED_DRIVERS, size.n_drivers))]
        with feature_server(repo) as connection:
            with steps.step(STEPS[8]) as done:
                served = _serve_and_compare(store, connection, features, drivers)
                done(len(drivers), f"POST /features for {len(drivers)} drivers x "
                                   f"{served.requests} requests: p50 {served.p50_ms:.2f} ms, "
                                   f"p99 {served.p99_ms:.2f} ms; online values equal the "
                                   "training frame's at the same time")

            with steps.step(STEPS[9]) as done:
                live = stream_live(lambda: HTTPConnection(connection.host, connection.port,
                                                          timeout=10), drivers, seed=seed)
                live_values = check_consistency(store, drivers)
                done(live.events, f"{live.events:,} trip events pushed in {live.batches} "
                                  f"batches ({live.events / live.seconds:,.0f}/s) while serving "
                                  f"{live.reads:,} reads (p50 {live.read_p50_ms:.2f} ms, p99 "
                                  f"{live.read_p99_ms:.2f} ms); event to online p50 "
                                  f"{live.fresh_p50_ms:.1f} ms, p99 {live.fresh_p99_ms:.1f} ms; "
                                  "windowed aggregates online equal the training frame's")

    return DemoResult(repo.resolve(), tuple(steps.reports), "roc_auc", auc, len(train[1]),
                      len(test[1]), features, served, live, live_values)


def _serve_and_compare(store: FeatureStore, connection: HTTPConnection,
                       features: tuple[str, ...], drivers: list[int]) -> ServedFeatures:
    """Read the feature service for a few drivers over HTTP, and check the values against
    ``get_historical_features`` at the same time (the consistency law)."""
    import pyarrow as pa

    from headwater.demo.server import fetch

    served = fetch(connection, FEATURE_SERVICE, [{"driver_id": d} for d in drivers],
                   SERVED_REQUESTS)
    at = datetime.now(UTC)
    entity = pa.table({"driver_id": pa.array(drivers, pa.int64()),
                       "event_timestamp": pa.array([at] * len(drivers),
                                                   pa.timestamp("us", tz="UTC"))})
    offline = store.get_historical_features(
        entity, features=store.get_feature_service(FEATURE_SERVICE)).to_arrow().to_pydict()
    for name in features:
        if served.results[name] != offline[name]:
            raise DataError(f"online '{name}' {served.results[name]} differs from the training "
                            f"frame's {offline[name]} at {at}: the consistency law is broken")
    return served


def _fresh_folder(repo: Path) -> Path:
    if repo.exists():
        if not repo.is_dir():
            raise HeadwaterError(f"{repo} exists and is not a folder. Fix: pass --dir NEW_DIR")
        if (repo / MARKER).is_file():
            shutil.rmtree(repo)
        elif any(repo.iterdir()):
            raise HeadwaterError(f"{repo} is not empty and was not made by the demo. "
                                 "Fix: pass --dir NEW_DIR, or remove the folder")
    repo.mkdir(parents=True, exist_ok=True)
    return repo
