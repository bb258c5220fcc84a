"""Model performance once labels arrive: logged predictions joined to delayed labels, metrics
per time window, and degradation against the model version's training metrics.

**Labels.** Each logged prediction takes the first label of its entity at or after its
``logged_at`` (within ``max_delay``), by :func:`headwater.monitoring.labels.join_labels`
(see :mod:`headwater.monitoring.labels` for the exact rule); a prediction without one is
*unlabelled*: counted, but used by no metric.

**Windows** (:func:`performance_over_time`). ``[start, end)`` is cut into windows of
``window`` from ``start`` (the last one ends at ``end``, so it may be shorter); a prediction
falls in the window of its ``logged_at``, whenever its label came. Each window reports its
prediction, labelled and unlabelled counts and the metrics of its labelled rows, computed by
:func:`headwater.models.metrics.compute_metrics`, the code training evaluates with. A window
with fewer than ``min_labels`` labelled predictions (default 100: the standard error of an
accuracy near 0.8 is 0.04 at 100 rows and grows past the default allowed drop of 0.05 below
that) has no metrics; nor has a ROC/PR AUC on a window whose labels hold one class.

**Degradation** (:func:`degradation`). Each window's metric is held against the training
(test split) value of the model version that made its predictions, minus an allowed drop in
the metric's own direction: ``threshold = training - drop`` for metrics where higher is
better, ``training + drop`` for log_loss, brier, rmse, mae and mape. Default drops
(:data:`DEFAULT_ALLOWED_DROP`): 0.05 for the 0-1 scores (roc_auc, pr_auc, accuracy,
precision, recall, f1, r2), 0.02 for brier, and for the scale-dependent log_loss, rmse, mae
and mape :data:`RELATIVE_ALLOWED_DROP` (20%) of the training value (the log_loss of one
model over windows of about 100 labels varies by some 12% from window to window).
:func:`check_performance` splits each window by the model version of its rows. Findings,
one per window (and version) and metric, ``check`` ``performance.<metric>``:

* ``failed`` (severity warning) when the value is strictly worse than the threshold;
* not failed, severity info, value None when the window has too few labels or the metric is
  undefined there (the message says why), or value set and threshold None when the version
  has no training value of that metric;
* a window **without any prediction** gives one *failed* finding ``performance.predictions``
  (value None): the model did not serve, or its log is not written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.definitions.model import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    TASKS,
)
from headwater.errors import DataError, DefinitionError
from headwater.models.metrics import PROBABILITY_METRICS, RANKING_METRICS, compute_metrics
from headwater.monitoring.findings import Finding, HasFindings
from headwater.monitoring.labels import LABEL, LOGGED_AT, join_labels, label_table, value_family
from headwater.offline.frames import to_arrow

if TYPE_CHECKING:
    from headwater.store import FeatureStore

DEFAULT_MIN_LABELS = 100
DEFAULT_ALLOWED_DROP = {"roc_auc": 0.05, "pr_auc": 0.05, "accuracy": 0.05, "precision": 0.05,
                        "recall": 0.05, "f1": 0.05, "r2": 0.05, "brier": 0.02}
RELATIVE_ALLOWED_DROP = 0.20
"""The allowed drop of log_loss, rmse, mae and mape, as a fraction of the training value."""
MAX_WINDOWS = 10_000


@dataclass(frozen=True)
class WindowMetrics:
    """One window ``[start, end)`` (of one ``model_version``, None when not split by
    version): ``predictions`` logged in it, how many are ``labelled``, the ``metrics`` of
    the labelled ones, and for each requested metric not computed, why (``missing``)."""

    start: datetime
    end: datetime
    predictions: int
    labelled: int
    metrics: dict[str, float]
    missing: dict[str, str]
    names: tuple[str, ...]
    model_version: int | None = None

    @property
    def unlabelled(self) -> int:
        return self.predictions - self.labelled

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(start=self.start.isoformat(), end=self.end.isoformat(),
                   names=list(self.names), unlabelled=self.unlabelled)
        return out


@dataclass(frozen=True)
class PerformanceResult(HasFindings):
    """What :func:`check_performance` found for ``model`` over ``[start, end)``: the
    ``windows`` (in time order, versions ascending within one), their ``findings`` and the
    training metrics of each version served (``training``)."""

    model: str
    start: datetime
    end: datetime
    window: timedelta
    windows: tuple[WindowMetrics, ...]
    findings: tuple[Finding, ...]
    training: Mapping[int, Mapping[str, float]] = field(default_factory=dict)


    @property
    def unlabelled(self) -> int:
        """Predictions in ``[start, end)`` without a label (yet)."""
        return sum(w.unlabelled for w in self.windows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: times as ISO 8601, the window in seconds."""
        return {"model": self.model, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "window_seconds": self.window.total_seconds(),
                "windows": [w.to_dict() for w in self.windows],
                "findings": [f.to_dict() for f in self.findings],
                "training": {str(v): dict(m) for v, m in self.training.items()}}



def _utc(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise DataError(f"{name} must be a datetime, got {type(value).__name__}. Fix: pass "
                        "datetime(2024, 1, 1, tzinfo=UTC)")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window_bounds(start: datetime, end: datetime, window: timedelta
                  ) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into windows of ``window`` (the last may be shorter); naive
    times are UTC. DataError when ``start >= end``, ``window <= 0`` or there would be more
    than :data:`MAX_WINDOWS` windows."""
    start, end = _utc(start, "start"), _utc(end, "end")
    if start >= end:
        raise DataError(f"start {start.isoformat()} is not before end {end.isoformat()}. "
                        "Fix: pass start < end (the window is [start, end))")
    if not isinstance(window, timedelta) or window <= timedelta(0):
        raise DataError(f"window {window!r} is not a positive timedelta. Fix: pass "
                        "window=timedelta(days=1)")
    count = math.ceil((end - start) / window)
    if count > MAX_WINDOWS:
        raise DataError(f"[start, end) holds {count} windows of {window}, more than "
                        f"{MAX_WINDOWS}. Fix: pass a longer window or a shorter period")
    return [(start + i * window, min(start + (i + 1) * window, end)) for i in range(count)]


def _check_metrics(task: str, metrics: Sequence[str]) -> tuple[str, ...]:
    if task not in TASKS:
        raise DefinitionError("performance check", "task", f"{task!r} is not a task",
                              f"pass one of {list(TASKS)}")
    known = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise DefinitionError("performance check", "metrics",
                              f"{unknown or 'no metrics'} are not {task} metrics",
                              f"use some of {list(known)}")
    return names


def performance_over_time(joined: Any, *, task: str, metrics: Sequence[str],
                          window: timedelta, start: datetime, end: datetime,
                          classes: Sequence[Any] = (), min_labels: int = DEFAULT_MIN_LABELS,
                          model: str = "model") -> list[WindowMetrics]:
    """The metrics of every window of ``[start, end)`` (module docstring) over ``joined``
    (as :func:`~headwater.monitoring.labels.join_labels` returns it: ``logged_at``,
    ``prediction``, ``label`` and, for probability metrics, ``probability``), rows outside
    ``[start, end)`` ignored. Every window is returned, an empty one with
    ``predictions == 0``.

    ``classes``: a classifier's classes in ``predict_proba`` order (the positive class of a
    binary model second, as :attr:`ModelVersion.classes`); by default the sorted values of
    labels and predictions. The log keeps only the positive class's probability (binary)
    or the predicted class's (multiclass), so the probability metrics of a multiclass model
    are a DataError. So are label values no class matches, labels and predictions of
    different types, and non-finite predictions or probabilities."""
    names = _check_metrics(task, metrics)
    bounds = window_bounds(start, end, window)
    if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 1:
        raise DataError(f"min_labels {min_labels!r} is not an integer >= 1. Fix: pass "
                        f"min_labels={DEFAULT_MIN_LABELS}")
    table = to_arrow(joined, "joined predictions")
    need = [LOGGED_AT, "prediction", LABEL]
    if task == "classification" and PROBABILITY_METRICS & set(names):
        need.append("probability")
    missing = [c for c in need if c not in table.column_names]
    if missing:
        raise DataError(f"the joined predictions have no column(s) {missing} (metrics "
                        f"{list(names)}); columns: {table.column_names}. Fix: join the log "
                        "with join_labels, or drop the probability metrics")
    if not pa.types.is_timestamp(table.schema.field(LOGGED_AT).type):
        raise DataError(f"'{LOGGED_AT}' is {table.schema.field(LOGGED_AT).type}, not a "
                        "timestamp. Fix: pass the table join_labels returns")
    at = table.column(LOGGED_AT).cast(pa.timestamp("us", "UTC"), safe=False).cast(pa.int64())
    all_us = at.to_numpy(zero_copy_only=False)
    labelled = table.filter(pc.is_valid(table.column(LABEL)))
    done_us = all_us[pc.is_valid(table.column(LABEL)).to_numpy(zero_copy_only=False)]
    y_true = labelled.column(LABEL).to_numpy(zero_copy_only=False)
    y_pred = labelled.column("prediction").to_numpy(zero_copy_only=False)
    proba = labelled.column("probability").to_numpy(zero_copy_only=False) if (
        "probability" in need) else None
    if task == "classification":
        classes = _classes(table, tuple(classes), y_true, names)
    out = []
    for low, high in bounds:
        lo, hi = _us(low), _us(high)
        count = int(np.count_nonzero((all_us >= lo) & (all_us < hi)))
        rows = np.nonzero((done_us >= lo) & (done_us < hi))[0]
        why = {}
        if count == 0:
            why = dict.fromkeys(names, "no predictions in the window")
        elif len(rows) < min_labels:
            why = dict.fromkeys(names, f"only {len(rows)} of {count} predictions have a "
                                f"label yet (min_labels={min_labels})")
        values: dict[str, float] = {}
        if not why:
            why = _undefined(names, y_true[rows])
            todo = [m for m in names if m not in why]
            probability = None if proba is None else np.column_stack(
                [1.0 - proba[rows], proba[rows]])
            values = compute_metrics(task, todo, y_true[rows], y_pred[rows], probability,
                                     classes=classes, model=model) if todo else {}
        out.append(WindowMetrics(low, high, count, len(rows), values, why, names))
    return out


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _classes(table: pa.Table, classes: tuple[Any, ...], y_true: np.ndarray,
             names: Sequence[str]) -> tuple[Any, ...]:
    label, prediction = (table.schema.field(c).type for c in (LABEL, "prediction"))
    if value_family(label) != value_family(prediction) and not pa.types.is_null(label):
        raise DataError(f"the labels are {label} but the predictions {prediction}, so none "
                        "would ever match. Fix: cast the label column to the model's class "
                        "type")
    if not classes:
        seen = set(y_true.tolist()) | set(table.column("prediction").drop_null().to_pylist())
        classes = tuple(sorted(seen))
    unseen = sorted({str(v) for v in y_true.tolist()} - {str(c) for c in classes})
    if unseen:
        raise DataError(f"the labels hold values {unseen} that are not classes of the model "
                        f"{list(classes)}. Fix: check label_column, or map the labels to "
                        "the model's classes")
    if len(classes) > 2 and PROBABILITY_METRICS & set(names):
        raise DataError(f"metrics {sorted(PROBABILITY_METRICS & set(names))} need every "
                        "class's probability; the prediction log of a multiclass model "
                        "keeps only the predicted class's. Fix: use accuracy, precision, "
                        "recall or f1")
    return classes


def _undefined(names: Sequence[str], y_true: np.ndarray) -> dict[str, str]:
    """Why each metric of ``names`` cannot be computed on these labelled rows."""
    why = {}
    present = {str(v) for v in y_true.tolist()}
    for name in names:
        if name in RANKING_METRICS and len(present) < 2:
            why[name] = f"undefined: the window's labels hold one class ({sorted(present)})"
        elif name == "r2" and len(y_true) < 2:
            why[name] = "undefined: r2 needs 2 labelled predictions"
    return why


def allowed_drop_for(metric: str, training: float,
                     allowed_drop: Mapping[str, float] | None = None) -> float:
    """The drop of ``metric`` tolerated below (or, lower-is-better, above) its training
    value: ``allowed_drop[metric]`` when given, else the default of the module docstring."""
    if allowed_drop and metric in allowed_drop:
        return float(allowed_drop[metric])
    if metric in DEFAULT_ALLOWED_DROP:
        return DEFAULT_ALLOWED_DROP[metric]
    return RELATIVE_ALLOWED_DROP * abs(training)


def degradation(windows: Sequence[WindowMetrics],
                training: Mapping[int | None, Mapping[str, float]], *, subject: str,
                allowed_drop: Mapping[str, float] | None = None) -> tuple[Finding, ...]:
    """The findings of ``windows`` (module docstring) against ``training``: the training
    metrics by model version (key None for windows not split by version)."""
    known = set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS)
    for metric, drop in (allowed_drop or {}).items():
        if metric not in known or isinstance(drop, bool) or not isinstance(
                drop, int | float) or not math.isfinite(drop) or drop < 0:
            raise DefinitionError("performance check", f"allowed_drop[{metric!r}]",
                                  f"{drop!r} is not a finite number >= 0 for a known metric",
                                  f"pass e.g. {{'accuracy': 0.05}}; metrics: {sorted(known)}")
    found = []
    for w in windows:
        if w.predictions == 0:
            found.append(Finding(
                "performance.predictions", subject, "", None, None, True,
                f"no predictions were logged in {_span(w)}, so performance cannot be judged. "
                "Fix: check that the model serves and its prediction log is written",
                window_start=w.start, window_end=w.end))
            continue
        base = training.get(w.model_version, {})
        found.extend(_judge(w, metric, base.get(metric), subject, allowed_drop)
                     for metric in w.names)
    return tuple(found)


def _span(w: WindowMetrics) -> str:
    version = "" if w.model_version is None else f" of version {w.model_version}"
    return f"[{w.start.isoformat()}, {w.end.isoformat()}){version}"


def _judge(w: WindowMetrics, metric: str, trained: float | None, subject: str,
           allowed_drop: Mapping[str, float] | None) -> Finding:
    """The finding of one metric of one window (module docstring)."""
    lower = metric in LOWER_IS_BETTER
    drop = None if trained is None else allowed_drop_for(metric, trained, allowed_drop)
    threshold = None if trained is None or drop is None else (
        trained + drop if lower else trained - drop)
    value = w.metrics.get(metric)
    details = {"model_version": w.model_version, "training": trained, "allowed_drop": drop,
               "lower_is_better": lower, "predictions": w.predictions,
               "labelled": w.labelled, "unlabelled": w.unlabelled}
    worse = False
    if value is None:
        message = f"{metric} in {_span(w)} not judged: {w.missing.get(metric)}"
    elif trained is None or threshold is None:
        message = (f"{metric} in {_span(w)} is {value:.4g}; the version has no training "
                   f"{metric} to compare with")
    else:
        worse = value > threshold if lower else value < threshold
        message = (f"{metric} in {_span(w)} is {value:.4g} over {w.labelled} labelled "
                   f"predictions; training {trained:.4g}, allowed {'rise' if lower else 'drop'}"
                   f" {drop:.4g}, threshold {threshold:.4g}") + (
            ": degraded. Fix: look for drift in this window's inputs and labels, and retrain "
            "on recent data" if worse else ": ok")
    return Finding(f"performance.{metric}", subject, metric, value, threshold, worse, message,
                   "warning" if value is not None and threshold is not None else "info",
                   window_start=w.start, window_end=w.end, details=details)


def check_performance(store: FeatureStore, model: str, labels: Any = None, *,
                      start: datetime, end: datetime, window: timedelta = timedelta(days=1),
                      metrics: Sequence[str] | None = None, keys: Sequence[str] | None = None,
                      label_column: str | None = None, label_time: str | None = None,
                      max_delay: timedelta | None = None,
                      min_labels: int = DEFAULT_MIN_LABELS,
                      allowed_drop: Mapping[str, float] | None = None) -> PerformanceResult:
    """The performance of model ``model`` (its name, as the log stores it) on the
    predictions it logged in ``[start, end)``, per ``window``, against each serving
    version's training metrics (module docstring).

    ``labels``: a pandas/polars/Arrow table with ``keys``, ``label_time`` and
    ``label_column`` (both default to the ModelSpec's label source's), a
    :class:`~headwater.LabelSource`, or None for the ModelSpec's label source. ``keys``
    default to the join keys of the ModelSpec's feature service. ``metrics`` default to each
    version's training metrics (without the probability metrics for a multiclass model)."""
    bounds = window_bounds(start, end, window)
    start, end = bounds[0][0], bounds[-1][1]
    logged = store.read_predictions(model, start, end)
    served = sorted(set(logged.column("model_version").to_pylist())) if (
        logged.num_rows) else []
    per_slot: list[list[WindowMetrics]] = [[] for _ in bounds]
    versions = {v: store.get_model_version(f"{model}:{v}") for v in served}
    if served:
        table, how = label_table(store, model, labels, keys=keys, label_column=label_column,
                             label_time=label_time)
        joined = join_labels(logged, table, **how, max_delay=max_delay)
        for number, version in versions.items():
            names = tuple(metrics) if metrics is not None else tuple(
                m for m in version.metrics
                if not (len(version.classes) > 2 and m in PROBABILITY_METRICS))
            rows = joined.filter(pc.equal(joined.column("model_version"), number))
            found = performance_over_time(rows, task=version.task, metrics=names,
                                          window=window, start=start, end=end,
                                          classes=version.classes, min_labels=min_labels,
                                          model=model)
            for slot, metrics_of in enumerate(found):
                if metrics_of.predictions:
                    per_slot[slot].append(replace(metrics_of, model_version=number))
    windows = tuple(m for slot, (low, high) in enumerate(bounds) for m in (
        per_slot[slot] or [WindowMetrics(low, high, 0, 0, {}, {}, ())]))
    training = {v: dict(version.metrics) for v, version in versions.items()}
    findings = degradation(windows, {**training}, subject=f"model:{model}",
                           allowed_drop=allowed_drop)
    return PerformanceResult(model, start, end, window, windows, findings, training)



__all__ = ["DEFAULT_ALLOWED_DROP", "DEFAULT_MIN_LABELS", "RELATIVE_ALLOWED_DROP",
           "PerformanceResult", "WindowMetrics", "allowed_drop_for", "check_performance",
           "degradation", "performance_over_time", "window_bounds"]
