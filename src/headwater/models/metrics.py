"""Evaluation metrics of a model on its test rows, computed with scikit-learn.

Classification (``classes`` in ``predict_proba`` column order; binary means two classes,
the positive one ``classes[1]``):

* ``roc_auc``: binary ROC AUC of the positive class; multiclass one-vs-rest, macro.
* ``log_loss``: cross-entropy over all classes.
* ``accuracy``.
* ``precision``, ``recall``, ``f1``: of the positive class (binary), macro over the
  classes (multiclass); 0 where undefined (no predicted or no true positives).
* ``pr_auc``: average precision of the positive class; multiclass macro one-vs-rest.
* ``brier``: mean squared error of the positive class probability (binary); multiclass
  the mean over rows of the squared distance between the probability vector and the
  one-hot truth, summed over classes (scikit-learn's multiclass Brier score).

``roc_auc`` and ``pr_auc`` need both a positive and a negative (or, multiclass, every
class) in the test rows: a test set with one class is a DataError naming the metric.
Probability metrics need an estimator with ``predict_proba``.

Regression: ``rmse``, ``mae``, ``r2`` (needs two test rows) and ``mape``
(scikit-learn's: a fraction, not a percentage; a true value of 0 weighs
``|error| / 2.2e-16``, so prefer ``mae`` when the target can be 0).

Every metric is a finite Python float; a non-finite result is a DataError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from headwater.definitions.model import CLASSIFICATION_METRICS, REGRESSION_METRICS
from headwater.errors import DataError, DefinitionError

if TYPE_CHECKING:
    import numpy as np

PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss", "pr_auc", "brier"})
"""Classification metrics computed from ``predict_proba``."""
RANKING_METRICS = frozenset({"roc_auc", "pr_auc"})
"""Metrics undefined on a test set holding a single class."""


def compute_metrics(task: str, names: Sequence[str], y_true: np.ndarray,
                    prediction: np.ndarray, probability: np.ndarray | None = None, *,
                    classes: Sequence[Any] = (), model: str = "model") -> dict[str, float]:
    """The metrics ``names`` of one evaluation: ``y_true`` against ``prediction`` (and, for
    classification, ``probability``: one column per class of ``classes``)."""
    import numpy as np

    me = f"ModelSpec '{model}'"
    y_true, prediction = np.asarray(y_true), np.asarray(prediction)
    if len(y_true) == 0:
        raise DataError(f"{me}: no test rows to evaluate on. Fix: widen the test period")
    for what, values in (("prediction", prediction if task == "regression" else None),
                         ("probability", probability)):
        if values is None:
            continue
        bad = int(np.size(values) - np.isfinite(np.asarray(values, np.float64)).sum())
        if bad:
            raise DataError(f"{me}: the estimator gave {bad} non-finite {what} value(s) on "
                            "the test rows. Fix: check the features (infinite or huge "
                            "values) and the estimator's parameters")
    if task == "classification" and len(classes):
        unseen = sorted({str(v) for v in np.unique(y_true).tolist()}
                        - {str(c) for c in classes})
        if unseen:
            raise DataError(
                f"{me}: the test rows hold label values {unseen} that no training row has "
                f"(the model knows {list(classes)}), so the metrics would misjudge them. "
                "Fix: move the split (TimeSplit test_start) so training sees every class, or "
                "drop those rows from the label source")
    results = {}
    for name in names:
        if task == "classification":
            value = _classification(me, name, y_true, prediction, probability=probability,
                                    classes=list(classes))
        elif task == "regression":
            value = _regression(me, name, y_true.astype(np.float64),
                                prediction.astype(np.float64))
        else:
            raise DefinitionError(me, "task", f"{task!r} is not a task",
                                  "use classification or regression")
        if not math.isfinite(value):
            raise DataError(f"{me}: metric '{name}' is {value} on the test rows (the model "
                            "predicts non-finite values?). Fix: check the features and the "
                            "estimator's output")
        results[name] = value
    return results


def _classification(me: str, name: str, y_true: np.ndarray, prediction: np.ndarray, *,
                    probability: np.ndarray | None, classes: list[Any]) -> float:
    import numpy as np
    from sklearn import metrics

    if name not in CLASSIFICATION_METRICS:
        raise DefinitionError(me, "metrics", f"'{name}' is not a classification metric",
                              f"use some of {list(CLASSIFICATION_METRICS)}")
    binary = len(classes) == 2
    if name == "accuracy":
        return float(metrics.accuracy_score(y_true, prediction))
    if name in ("precision", "recall", "f1"):
        score: Callable[..., Any] = {"precision": metrics.precision_score,
                                     "recall": metrics.recall_score,
                                     "f1": metrics.f1_score}[name]
        if binary:
            return float(score(y_true, prediction, pos_label=classes[1], average="binary",
                               labels=classes, zero_division=0))
        return float(score(y_true, prediction, labels=classes, average="macro",
                           zero_division=0))
    if probability is None:
        raise DefinitionError(me, "metrics", f"'{name}' needs predicted probabilities and "
                              "the estimator has no predict_proba",
                              "use accuracy, precision, recall or f1, or an estimator with "
                              "predict_proba")
    probability = np.asarray(probability, dtype=np.float64)
    if name == "log_loss":
        return float(metrics.log_loss(y_true, probability, labels=classes))
    present = np.unique(y_true)
    if name in RANKING_METRICS and (len(present) < 2 or (
            not binary and len(present) < len(classes))):
        raise DataError(
            f"{me}: metric '{name}' is undefined on a test set holding only the classes "
            f"{present.tolist()} of {classes}. Fix: widen the test period (TimeSplit "
            "test_start earlier or test_end later) or drop the metric")
    if binary:
        positive = (y_true == classes[1]).astype(np.int64)
        scores = probability[:, 1]
        if name == "roc_auc":
            return float(metrics.roc_auc_score(positive, scores))
        if name == "pr_auc":
            return float(metrics.average_precision_score(positive, scores))
        return float(metrics.brier_score_loss(positive, scores))
    if name == "roc_auc":
        return float(metrics.roc_auc_score(y_true, probability, multi_class="ovr",
                                           average="macro", labels=classes))
    onehot = (y_true[:, None] == np.asarray(classes, dtype=object)[None, :]).astype(np.int64)
    if name == "pr_auc":
        return float(metrics.average_precision_score(onehot, probability, average="macro"))
    return float(np.mean(np.sum((probability - onehot) ** 2, axis=1)))


def _regression(me: str, name: str, y_true: np.ndarray, prediction: np.ndarray) -> float:
    import numpy as np
    from sklearn import metrics

    if name not in REGRESSION_METRICS:
        raise DefinitionError(me, "metrics", f"'{name}' is not a regression metric",
                              f"use some of {list(REGRESSION_METRICS)}")
    if name == "rmse":
        return float(np.sqrt(metrics.mean_squared_error(y_true, prediction)))
    if name == "mae":
        return float(metrics.mean_absolute_error(y_true, prediction))
    if name == "mape":
        return float(metrics.mean_absolute_percentage_error(y_true, prediction))
    if len(y_true) < 2:
        raise DataError(f"{me}: metric 'r2' needs at least 2 test rows, there is "
                        f"{len(y_true)}. Fix: widen the test period or drop the metric")
    return float(metrics.r2_score(y_true, prediction))
