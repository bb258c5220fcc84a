"""Retraining a model whose monitor found drift or degradation, promoted only if it is better.

:func:`retrain` trains a *candidate* version of the model from its ModelSpec (registered, not
promoted), then scores the candidate and the version behind ``production`` on the same
*fresh test window*: the rows of the training frame that are in the candidate's test split
(so the candidate never saw them) and whose label time is in the monitor's window
``[start, end)``. The metric is the one of the spec's promotion rule for ``production``
(else the spec's first metric), compared in its own direction with the rule's
``min_improvement`` (strictly: an equal score changes nothing), and no worse than the rule's
``threshold`` when it has one. Only a candidate that beats production there is promoted to
``production`` (recorded as forced: the rule was judged on the fresh window, not on the
training metrics). If the training frame changed between the candidate's training and the
comparison (late labels), the fresh rows cannot be known unseen and nothing is promoted. No
fresh test row, or no production version to beat, is said in the outcome; with no production
version the candidate is promoted when it passes the rule's ``threshold`` (or there is
none). Fresh rows on which the metric is undefined (``roc_auc``
of rows holding one class) judge nothing: the candidate stays unpromoted, and the outcome
says why.

With a ``RandomSplit``, a production version trained on an earlier frame may have seen
some of the candidate's test rows, which favours production: models that retrain should
split by time.

Binary classifiers are scored with their positive-class probability; probability metrics
of a multiclass model are not comparable from the predicted class's probability alone, so
those fall back to ``accuracy`` (said in the outcome).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.definitions.model import LOWER_IS_BETTER
from headwater.errors import DataError, NotFoundError
from headwater.monitoring.findings import Finding

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions.model import ModelSpec
    from headwater.store import FeatureStore

PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss", "pr_auc", "brier"})


@dataclass(frozen=True)
class RetrainOutcome:
    """What :func:`retrain` did: the ``candidate`` version trained, the ``production``
    version it was compared with (None if none), both scores of ``metric`` on ``rows`` fresh
    test rows, and whether the candidate was ``promoted``, with the ``reason``."""

    model: str
    candidate: int
    production: int | None
    metric: str
    candidate_score: float | None
    production_score: float | None
    rows: int
    promoted: bool
    reason: str

    def finding(self, subject: str) -> Finding:
        """The outcome as a ``monitor.retrain`` finding: failed when the candidate was not
        promoted (the model behind production is still the one the checks flagged)."""
        return Finding("monitor.retrain", subject, self.metric, self.candidate_score,
                       self.production_score, not self.promoted, self.reason,
                       severity="warning" if not self.promoted else "info",
                       details={"candidate": self.candidate, "production": self.production,
                                "rows": self.rows, "promoted": self.promoted})


def retrain(store: FeatureStore, model: str, *, start: datetime, end: datetime
            ) -> RetrainOutcome:
    """Train a candidate of ``model`` and promote it only if it beats production on the
    fresh test window ``[start, end)`` (module docstring)."""
    import pyarrow.compute as pc

    from headwater.models.frame import build_training_frame
    from headwater.models.split import split_frame

    spec = store.get_model(model)
    run = store.train(model)
    candidate = run.version
    metric, min_improvement, threshold = _rule(spec)
    try:
        production: int | None = store.get_model_version(f"{model}@production").version
    except NotFoundError:
        production = None
    frame = build_training_frame(store, spec)
    if frame.fingerprint != run.fingerprint:  # labels or features changed since it trained
        return RetrainOutcome(
            model=model, candidate=candidate, production=production, metric=metric, rows=0,
            candidate_score=None, production_score=None, promoted=False, reason=(
                f"candidate {model}:{candidate} trained, not promoted: the data changed while "
                "it trained, so its test rows cannot be known unseen. Fix: run the monitor "
                "again"))
    test = split_frame(frame.table, frame.timestamp, spec.split, model=model).test
    times = test.column(frame.timestamp)
    fresh = test.filter(pc.and_(pc.greater_equal(times, start), pc.less(times, end)))
    if spec.task == "classification" and metric in PROBABILITY_METRICS and _multiclass(
            store, model, candidate):
        metric, min_improvement, threshold = "accuracy", 0.0, None  # the rule's scale is not
        # accuracy's
    outcome = dict(model=model, candidate=candidate, production=production, metric=metric,
                   rows=fresh.num_rows)
    if fresh.num_rows == 0:
        return RetrainOutcome(**outcome, candidate_score=None, production_score=None,
                              promoted=False, reason=(
                                  f"candidate {model}:{candidate} trained, not promoted: no "
                                  f"row of its test split has a label time in [{start}, "
                                  f"{end}). Fix: widen the monitor's window or wait for "
                                  "labels"))
    try:
        ours = _score(store, spec, f"{model}:{candidate}", rows=fresh, label=frame.label,
                      metric=metric)
        theirs = None if production is None else _score(
            store, spec, f"{model}:{production}", rows=fresh, label=frame.label,
            metric=metric)
    except DataError as exc:  # e.g. roc_auc of fresh rows that hold one class
        return RetrainOutcome(**outcome, candidate_score=None, production_score=None,
                              promoted=False, reason=(
                                  f"candidate {model}:{candidate} trained, not promoted: the "
                                  f"{fresh.num_rows} fresh test rows cannot judge it: {exc}"))
    passes = threshold is None or _better(metric, ours, threshold, 0.0, at_least=True)
    if theirs is None:
        promoted, why = passes, "no version was in production"
    else:
        promoted = passes and _better(metric, ours, theirs, min_improvement)
        why = f"production {model}:{production} scores {theirs:.6g}"
    if not passes:
        why += f"; the rule's threshold {threshold:.6g} is not met"
    if promoted:
        store.promote(model, candidate, "production", force=True)
    verdict = "promoted to production" if promoted else "not promoted"
    return RetrainOutcome(**outcome, candidate_score=ours, production_score=theirs,
                          promoted=promoted, reason=(
                              f"candidate {model}:{candidate} scores {metric} {ours:.6g} on "
                              f"{fresh.num_rows} fresh test rows; {why}: {verdict}"))


def _rule(spec: ModelSpec) -> tuple[str, float, float | None]:
    for rule in spec.promotion:
        if rule.alias == "production":
            return rule.metric, rule.min_improvement, rule.threshold
    return spec.metrics[0], 0.0, None


def _multiclass(store: FeatureStore, model: str, version: int) -> bool:
    return len(store.get_model_version(f"{model}:{version}").classes) > 2


def _score(store: FeatureStore, spec: ModelSpec, ref: str, *, rows: pa.Table, label: str,
           metric: str) -> float:
    import numpy as np

    from headwater.models.metrics import compute_metrics

    predictor = store.load_model(ref)
    outputs = predictor.predict(rows)
    classes: tuple[Any, ...] = store.get_model_version(ref).classes
    proba = None
    if spec.task == "classification" and "probability" in outputs and len(classes) == 2:
        p = np.asarray(outputs["probability"], dtype=np.float64)
        proba = np.column_stack([1.0 - p, p])
    scores = compute_metrics(spec.task, [metric], rows.column(label).to_numpy(),
                             outputs["prediction"], proba, classes=classes, model=spec.name)
    return float(scores[metric])


def _better(metric: str, ours: float, theirs: float, by: float, *,
            at_least: bool = False) -> bool:
    """Whether ``ours`` beats ``theirs`` by more than ``by`` (at least, for a threshold) in
    the metric's direction."""
    if metric in LOWER_IS_BETTER:
        return ours <= theirs - by if at_least else ours < theirs - by
    return ours >= theirs + by if at_least else ours > theirs + by
