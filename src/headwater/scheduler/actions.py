"""What each job action does for one scheduled time, and how much it did.

* ``materialize_incremental``: ``store.materialize_incremental(end=scheduled time)`` over
  the views ``target`` names (comma-separated; empty: every online view). ``rows`` is the
  records written online.
* ``train``: ``store.train(target)``; with ``options["promote"]`` (an alias, or ``True``
  for ``production``) the new version is then promoted through the model's promotion rules.
  A promotion the rules refuse is a result, not a failure: the run succeeds (the version
  was trained and registered, and retrying would only train another one) and its
  ``detail`` says "not promoted" with the rule's message. ``rows`` is the training frame's
  rows (train + test).
* ``predict``: ``store.predict(target, entities)`` written to Parquet. ``options``:
  ``entities`` is a Parquet path (relative to the repo; a missing event-time column is
  filled with the scheduled time) or a SQL query over the offline data, in which
  ``{date}`` and ``{time}`` are replaced by the scheduled date and ISO time;
  ``timestamp_field`` names the event-time column (default ``event_timestamp``);
  ``output`` (default ``<predictions>/<job>/{time}.parquet``) may hold ``{date}`` (the
  scheduled date, ``2024-01-31``) and ``{time}`` (``2024-01-31T0200``). ``rows`` is the
  rows written.
* ``monitor``: :meth:`~headwater.store.FeatureStore.run_monitor` of ``target`` with the
  window ending at the scheduled time; ``rows`` is the findings stored. A run that found
  problems (status ``alert``) succeeded: the alerts are its result.

Errors propagate: the runner records them as the attempt's error and retries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.errors import DefinitionError
from headwater.models.registry import PromotionRefused

if TYPE_CHECKING:
    from headwater.definitions.job import Job
    from headwater.store import FeatureStore

DEFAULT_TIMESTAMP_FIELD = "event_timestamp"


@dataclass(frozen=True)
class ActionResult:
    """How much a run did (``rows``) and a one-line account of it (``detail``)."""

    rows: int
    detail: str


def run_action(store: FeatureStore, job: Job, scheduled_for: datetime) -> ActionResult:
    """Run ``job``'s action for the slot ``scheduled_for`` (UTC) on ``store``."""
    return _ACTIONS[job.action](store, job, scheduled_for)


def _materialize(store: FeatureStore, job: Job, scheduled_for: datetime) -> ActionResult:
    views = [name.strip() for name in job.target.split(",") if name.strip()] or None
    results = store.materialize_incremental(scheduled_for, views)
    written = ", ".join(f"{r.view} {r.rows:,}" for r in results) or "nothing to do"
    return ActionResult(sum(r.rows for r in results),
                        f"materialized up to {scheduled_for.isoformat()}: {written}")


def _train(store: FeatureStore, job: Job, scheduled_for: datetime) -> ActionResult:
    run = store.train(job.target)
    metrics = ", ".join(f"{name}={value:.4g}" for name, value in sorted(run.metrics.items()))
    detail = f"trained {run.model} version {run.version} ({metrics})"
    alias = _promote_alias(job)
    if alias is not None:
        try:
            store.promote(run.model, run.version, alias)
        except PromotionRefused as exc:  # a rule refused it: a result of the run, see above
            detail += f"; not promoted to {alias}: {' '.join(str(exc).split())}"
        else:
            detail += f"; promoted to {alias}"
    return ActionResult(run.rows_train + run.rows_test, detail)


def _promote_alias(job: Job) -> str | None:
    from headwater.models.base import DEFAULT_ALIAS

    value = job.options.get("promote")
    if value is None or value is False or value == "":
        return None
    if value is True:
        return DEFAULT_ALIAS
    if isinstance(value, str):
        return value
    raise DefinitionError(f"Job '{job.name}'", "options", f"promote={value!r} is not an alias",
                          "pass options={'promote': 'production'} (or True)")


def _predict(store: FeatureStore, job: Job, scheduled_for: datetime) -> ActionResult:
    me = f"Job '{job.name}'"
    entities = job.options.get("entities")
    if not isinstance(entities, str) or not entities.strip():
        raise DefinitionError(me, "options", "a predict job needs options['entities']",
                              "pass a Parquet path or a SQL query with keys and an event time")
    timestamp_field = str(job.options.get("timestamp_field", DEFAULT_TIMESTAMP_FIELD))
    date, time = scheduled_for.date().isoformat(), scheduled_for.strftime("%Y-%m-%dT%H%M")
    entity_df: object
    if entities.strip().lower().endswith(".parquet"):
        entity_df = _entity_table(store.repo_path / entities.strip(), timestamp_field,
                                  scheduled_for)
    else:
        entity_df = entities.replace("{date}", date).replace("{time}",
                                                             scheduled_for.isoformat())
    output = str(job.options.get("output", "")) or str(
        store.settings.predictions_path / job.name / "{time}.parquet")
    path = store.repo_path / output.replace("{date}", date).replace("{time}", time)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = store.predict(job.target, entity_df, timestamp_field=timestamp_field).to_parquet(path)
    return ActionResult(rows, f"scored {rows:,} rows with {job.target} into {path}")


def _entity_table(path: Path, timestamp_field: str, scheduled_for: datetime) -> object:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if timestamp_field not in table.column_names:
        times = pa.array([scheduled_for] * table.num_rows, pa.timestamp("us", tz="UTC"))
        table = table.append_column(timestamp_field, times)
    return table


def _monitor(store: FeatureStore, job: Job, scheduled_for: datetime) -> ActionResult:
    run = store.run_monitor(job.target, end=scheduled_for)
    failed = sum(1 for f in run.findings if f.failed)
    return ActionResult(len(run.findings), f"monitor {job.target}: {run.status}, "
                        f"{failed} of {len(run.findings)} findings failed, "
                        f"{run.alerts_sent} alerts sent")


_ACTIONS: dict[str, Callable[[FeatureStore, Job, datetime], ActionResult]] = {
    "materialize_incremental": _materialize,
    "train": _train,
    "predict": _predict,
    "monitor": _monitor,
}
