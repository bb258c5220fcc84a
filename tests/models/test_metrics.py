"""Evaluation metrics against hand computations and scikit-learn on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

import headwater as hw
from headwater.models.metrics import compute_metrics

Y = np.array([0, 0, 1, 1, 1, 0])
P1 = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])
PROBA = np.column_stack([1 - P1, P1])
PRED = (P1 >= 0.5).astype(int)  # [0, 1, 1, 0, 1, 0]


def binary(names: list[str], y: np.ndarray = Y, pred: np.ndarray = PRED,
           proba: np.ndarray | None = PROBA) -> dict[str, float]:
    return compute_metrics("classification", names, y, pred, proba, classes=[0, 1])


def test_binary_metrics_by_hand() -> None:
    got = binary(["roc_auc", "log_loss", "accuracy", "precision", "recall", "f1", "pr_auc",
                  "brier"])
    # positives score 0.8, 0.4, 0.9; negatives 0.1, 0.6, 0.2: 8 of 9 pairs ordered right
    assert got["roc_auc"] == pytest.approx(8 / 9)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4, 0.9, 0.8]))
    assert got["log_loss"] == pytest.approx(expected_loss)
    assert got["accuracy"] == pytest.approx(4 / 6)
    # TP = 2 (rows 2, 4), FP = 1 (row 1), FN = 1 (row 3)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3)
    # ranked 0.9+, 0.8+, 0.6-, 0.4+: AP = (1 + 1 + 3/4) / 3
    assert got["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert got["brier"] == pytest.approx(np.mean((P1 - Y) ** 2))
    assert all(isinstance(v, float) for v in got.values())


def test_string_classes_use_the_second_class_as_positive() -> None:
    y = np.array(["stay", "stay", "churn", "churn", "churn", "stay"], dtype=object)
    classes = ["churn", "stay"]  # predict_proba column order: positive = "stay"
    proba = np.column_stack([P1, 1 - P1])  # P("churn") = P1
    pred = np.where(P1 >= 0.5, "churn", "stay")
    got = compute_metrics("classification", ["roc_auc", "precision", "log_loss"], y, pred,
                          proba, classes=classes)
    assert got["roc_auc"] == pytest.approx(8 / 9)  # stay vs churn is the mirror image
    assert got["precision"] == pytest.approx(2 / 3)  # of "stay": 2 right of 3 predicted
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.4, 0.9, 0.8])))


def test_multiclass_metrics_match_sklearn() -> None:
    y = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3],
                      [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
    pred = proba.argmax(axis=1)
    got = compute_metrics("classification", ["roc_auc", "log_loss", "accuracy", "f1",
                                             "precision", "recall", "pr_auc", "brier"],
                          y, pred, proba, classes=[0, 1, 2])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["accuracy"] == pytest.approx(6 / 8)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    onehot = np.eye(3)[y]
    assert got["pr_auc"] == pytest.approx(np.mean(
        [skm.average_precision_score(onehot[:, k], proba[:, k]) for k in range(3)]))
    assert got["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def test_single_class_test_set_is_a_data_error_for_ranking_metrics() -> None:
    y = np.array([1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    with pytest.raises(hw.DataError, match=r"metric 'roc_auc' is undefined on a test set "
                       r"holding only the classes \[1\] of \[0, 1\].*Fix: widen"):
        binary(["roc_auc"], y, np.array([1, 1, 1]), proba)
    with pytest.raises(hw.DataError, match=r"metric 'pr_auc' is undefined"):
        binary(["pr_auc"], y, np.array([1, 1, 1]), proba)
    # the others are defined on one class
    got = binary(["log_loss", "accuracy", "brier"], y, np.array([1, 1, 1]), proba)
    assert got["accuracy"] == 1.0
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.6, 0.9])))


def test_probability_metrics_need_predict_proba() -> None:
    with pytest.raises(hw.DefinitionError, match=r"'log_loss' needs predicted probabilities"):
        binary(["log_loss"], proba=None)
    assert binary(["accuracy"], proba=None) == {"accuracy": pytest.approx(4 / 6)}


def test_regression_metrics_by_hand() -> None:
    y = np.array([1.0, 2.0, 4.0, 8.0])
    pred = np.array([1.5, 2.0, 3.0, 9.0])
    got = compute_metrics("regression", ["rmse", "mae", "r2", "mape"], y, pred)
    errors = pred - y  # 0.5, 0, -1, 1
    assert got["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert got["mae"] == pytest.approx(2.5 / 4)
    total = np.sum((y - y.mean()) ** 2)
    assert got["r2"] == pytest.approx(1 - np.sum(errors ** 2) / total)
    assert got["mape"] == pytest.approx(np.mean([0.5, 0.0, 0.25, 0.125]))


def test_regression_errors() -> None:
    with pytest.raises(hw.DataError, match=r"'r2' needs at least 2 test rows"):
        compute_metrics("regression", ["r2"], np.array([1.0]), np.array([1.0]))
    with pytest.raises(hw.DataError, match=r"gave 1 non-finite prediction value"):
        compute_metrics("regression", ["rmse"], np.array([1.0, 2.0]), np.array([np.nan, 1]))
    with pytest.raises(hw.DefinitionError, match=r"'roc_auc' is not a regression metric"):
        compute_metrics("regression", ["roc_auc"], np.array([1.0, 2.0]), np.array([1.0, 2]))
    with pytest.raises(hw.DataError, match=r"gave 2 non-finite probability value"):
        binary(["accuracy"], proba=np.where(PROBA == 0.9, np.inf, PROBA))
    with pytest.raises(hw.DataError, match=r"no test rows"):
        compute_metrics("regression", ["rmse"], np.array([]), np.array([]))


def test_a_class_only_the_test_rows_hold_is_refused() -> None:
    import numpy as np

    from headwater.errors import DataError
    from headwater.models.metrics import compute_metrics

    y_true = np.array(["a", "b", "c"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    for name in ("roc_auc", "log_loss", "brier", "accuracy"):
        with pytest.raises(DataError, match=r"label values \['c'\] that no training row"):
            compute_metrics("classification", [name], y_true, np.array(["a", "b", "a"]),
                            proba, classes=["a", "b"], model="churn")
