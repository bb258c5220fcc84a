"""The demo: the whole loop of Headwater on generated data, step by step.

:func:`run_demo` creates a repo from generated driver data and labels (``headwater init``),
registers its definitions (``headwater apply``), trains the ``driver_conversion`` model
(``store.train``: a point-in-time correct training frame from the label source and the
``driver_model`` feature service, a time split, a scikit-learn classifier, its metrics, a
registered version with its artifact and lineage) and promotes it to ``production``
through its promotion rule. Then it materializes the features into the online store,
starts ``headwater serve``, reads the feature service over HTTP and checks the served
values against the training frame's at the same time; asks ``POST /predict`` for the
production model and checks the answers against batch inference (``store.predict``) at the
same time; scores every driver in a batch job to Parquet; and last, streams live trip events
into the running server while a reader keeps asking for features
(:mod:`~headwater.demo.live`): the windowed aggregates update within milliseconds and equal
the training frame's at the same instant; then pushes drifted features, serves predictions
on them and lets a model monitor detect the drift, alert a webhook, retrain and write its
report (:mod:`~headwater.demo.monitor`). Each step is timed and reported to an optional
listener, which is how the CLI draws its progress bar; this module knows nothing about
terminals.

The labels are drawn from each driver's hidden rate, the same one the driver's
``conv_rate`` feature scatters around, so the model has something real to learn, but only
through features that were known at each row's time.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from headwater.demo.live import LiveStream, check_consistency, stream_live
from headwater.demo.monitor import DRIFTED_RATE, MONITOR, MonitorDemo, watch_drift
from headwater.demo.server import (
    ServedFeatures,
    ServedPredictions,
    feature_server,
    predict_over_http,
)
from headwater.errors import DataError, HeadwaterError

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.store import FeatureStore

MARKER = ".headwater-demo"
"""A file that marks a folder as made by the demo, so a rerun may replace it."""

STEPS = (
    "generate data",
    "apply definitions",
    "train model",
    "promote to production",
    "materialize",
    "serve online features",
    "serve predictions",
    "batch scoring",
    "stream live events",
    "monitor drift",
)
SERVED_DRIVERS = 5
SERVED_REQUESTS = 200
FEATURE_SERVICE = "driver_model"
MODEL = "driver_conversion"
PRODUCTION = f"{MODEL}@production"
SCORES_FILE = "data/scores/driver_conversion.parquet"


@dataclass(frozen=True)
class DemoSize:
    """How much data the demo makes: drivers x hourly rows, and labelled entity rows."""

    n_drivers: int = 1_000
    n_hours: int = 24 * 30
    n_rows: int = 500_000
    """Labelled rows (``data/driver_labels.parquet``) to train and test on."""

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
    model_version: int
    served: ServedFeatures
    predicted: ServedPredictions
    scored_rows: int
    live: LiveStream
    live_values: dict[str, list[object]]
    monitored: MonitorDemo

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
    from headwater.repo import init_repo, load_definitions
    from headwater.store import FeatureStore

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
                            start=start, seed=seed, trips_end=now, n_labels=size.n_rows)
        (repo / MARKER).write_text("made by `headwater demo`; rerunning the demo replaces "
                                   "this folder\n")
        done(created.data_rows, f"{size.n_drivers:,} drivers x {size.n_hours:,} hourly rows "
                                f"-> data/driver_stats.parquet; {size.n_rows:,} labelled rows "
                                f"-> data/driver_labels.parquet; {created.trip_events:,} trip "
                                "events -> data/trips/")

    with FeatureStore(repo) as store:
        with steps.step(STEPS[1]) as done:
            objects = load_definitions(repo)
            plan = store.apply(objects, prune=True)
            done(len(objects), f"{len(plan.changes)} object(s) created: "
                               + ", ".join(f"{c.kind} {c.name}" for c in plan.changes))

        with steps.step(STEPS[2]) as done:
            run = store.train(MODEL)
            auc = run.metrics["roc_auc"]
            version = run.model_version
            done(run.rows_train + run.rows_test,
                 f"{version.estimator_class.rsplit('.', 1)[-1]} on {list(version.features)} "
                 f"from feature service '{FEATURE_SERVICE}': {run.rows_train:,} rows to "
                 f"train, the later {run.rows_test:,} to test; ROC AUC {auc:.3f}, log loss "
                 f"{run.metrics['log_loss']:.3f}; fit {run.fit_seconds:.2f} s of "
                 f"{run.total_seconds:.2f} s; registered as version {run.version} (training "
                 f"frame {run.fingerprint[:12]})")

        with steps.step(STEPS[3]) as done:
            event = store.promote(MODEL, run.version, "production")
            checks = "; ".join(f"{c['metric']} {c['candidate']:.3f} passed"
                               for c in event.checks if c.get("passed"))
            done(1, f"{PRODUCTION} -> version {event.to_version} "
                    f"({checks or 'no production version yet to beat'})")

        with steps.step(STEPS[4]) as done:
            results = store.materialize(start, end)
            written = sum(r.rows for r in results)
            rate = written / max(sum(r.seconds for r in results), 1e-9)
            done(written, f"latest row and trip tiles of {written:,} (view, driver) records "
                          f"into the online store ({rate:,.0f} records/s)")

        drivers = [1001 + i for i in range(min(SERVED_DRIVERS, size.n_drivers))]
        features = version.features
        with feature_server(repo) as connection:
            with steps.step(STEPS[5]) as done:
                served = _serve_and_compare(store, connection, features, drivers)
                done(len(drivers), f"POST /features for {len(drivers)} drivers x "
                                   f"{served.requests} requests: p50 {served.p50_ms:.2f} ms, "
                                   f"p99 {served.p99_ms:.2f} ms; online values equal the "
                                   "training frame's at the same time")

            with steps.step(STEPS[6]) as done:
                predicted = _predict_and_compare(store, connection, drivers)
                done(len(drivers), f"POST /predict {PRODUCTION} for 1 driver x "
                                   f"{predicted.requests} requests: p50 "
                                   f"{predicted.p50_ms:.2f} ms, p99 {predicted.p99_ms:.2f} ms; "
                                   f"{len(drivers)} drivers' probabilities equal batch "
                                   "inference's at the same time")

            with steps.step(STEPS[7]) as done:
                scored, seconds = _score_all(store, repo, size.n_drivers)
                done(scored, f"{scored:,} drivers scored by {PRODUCTION} as of now -> "
                             f"{SCORES_FILE} ({scored / max(seconds, 1e-9):,.0f} rows/s)")

            with steps.step(STEPS[8]) as done:
                live = stream_live(lambda: HTTPConnection(connection.host, connection.port,
                                                          timeout=10), drivers, seed=seed)
                live_values = check_consistency(store, drivers)
                done(live.events, f"{live.events:,} trip events pushed in {live.batches} "
                                  f"batches ({live.events / live.seconds:,.0f}/s) while serving "
                                  f"{live.reads:,} reads (p50 {live.read_p50_ms:.2f} ms, p99 "
                                  f"{live.read_p99_ms:.2f} ms); event to online p50 "
                                  f"{live.fresh_p50_ms:.1f} ms, p99 {live.fresh_p99_ms:.1f} ms; "
                                  "windowed aggregates online equal the training frame's")

            with steps.step(STEPS[9]) as done:
                everyone = [1001 + i for i in range(size.n_drivers)]
                monitored = watch_drift(store, connection, everyone, PRODUCTION,
                                        requests=max(2 * SERVED_REQUESTS, len(everyone)))
                done(monitored.predictions,
                     f"conv_rate of {monitored.pushed:,} drivers pushed near "
                     f"{DRIFTED_RATE}; {monitored.predictions:,} predictions served and "
                     f"logged; monitor '{MONITOR}' flagged {list(monitored.drifted)}, sent "
                     f"{monitored.alerts} alert(s) to its webhook; {monitored.retrain}; "
                     f"report: {monitored.report}")

    return DemoResult(repo.resolve(), tuple(steps.reports), "roc_auc", auc, run.rows_train,
                      run.rows_test, features, run.version, served, predicted, scored,
                      live, live_values, monitored)


def drivers_at(drivers: Sequence[int], at: datetime) -> pa.Table:
    """Entity rows: each driver at ``at``."""
    import pyarrow as pa

    return pa.table({"driver_id": pa.array(drivers, pa.int64()),
                     "event_timestamp": pa.array([at] * len(drivers),
                                                 pa.timestamp("us", tz="UTC"))})


def _predict_and_compare(store: FeatureStore, connection: HTTPConnection,
                         drivers: list[int]) -> ServedPredictions:
    """``POST /predict`` for each driver, then batch inference for the same drivers at the
    same time: the same model on the same features gives the same probabilities."""

    predicted = predict_over_http(connection, PRODUCTION, [{"driver_id": d} for d in drivers],
                                  SERVED_REQUESTS)
    at = datetime.now(UTC)
    entity = drivers_at(drivers, at)
    offline = store.predict(PRODUCTION, entity).to_arrow()
    batch = offline.column("probability").to_pylist()
    for driver, online, expected in zip(drivers, predicted.probabilities, batch, strict=True):
        if online is None or expected is None or abs(online - expected) > 1e-9:
            raise DataError(f"driver {driver}: /predict gave probability {online}, batch "
                            f"inference {expected} at {at}: online and offline disagree")
    return predicted


def _score_all(store: FeatureStore, repo: Path, n_drivers: int) -> tuple[int, float]:
    """Score every driver as of now with the production model, to Parquet."""

    from headwater.testing.data import driver_ids

    started = time.perf_counter()
    now = datetime.now(UTC)
    entity = drivers_at(driver_ids(n_drivers).tolist(), now)
    rows = store.predict(PRODUCTION, entity).to_parquet(repo / SCORES_FILE)
    return rows, time.perf_counter() - started


def _serve_and_compare(store: FeatureStore, connection: HTTPConnection,
                       features: Sequence[str], drivers: list[int]) -> ServedFeatures:
    """Read the feature service for a few drivers over HTTP, and check the values against
    ``get_historical_features`` at the same time (the consistency law)."""

    from headwater.demo.server import fetch

    served = fetch(connection, FEATURE_SERVICE, [{"driver_id": d} for d in drivers],
                   SERVED_REQUESTS)
    at = datetime.now(UTC)
    entity = drivers_at(drivers, at)
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
