"""Compiled HistGradientBoosting trees give scikit-learn's predictions bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from headwater.models.trees import compile_trees


def data(seed: int, classes: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 6))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values go to the side learned
    signal = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1] ** 2)
    y = np.digitize(signal + rng.normal(scale=0.5, size=600),
                    np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    queries = rng.normal(size=(40, 6)) * 2
    queries[rng.random(queries.shape) < 0.2] = np.nan
    queries[0, :] = np.nan
    queries[1, 0] = np.inf
    return x, y, queries


@pytest.mark.parametrize("classes", [2, 3])
def test_classifier_probabilities_are_identical(classes: int) -> None:
    x, y, queries = data(classes, classes)
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    trees = compile_trees(model)
    assert trees is not None
    assert np.array_equal(trees.predict_proba(queries), model.predict_proba(queries))
    for row in queries:  # the /predict case: one row at a time
        one = row[None, :]
        assert np.array_equal(trees.predict_proba(one), model.predict_proba(one))


def test_regressor_values_are_identical() -> None:
    x, _, queries = data(7)
    y = np.nan_to_num(x[:, 0]) * 3 + np.nan_to_num(x[:, 2])
    model = HistGradientBoostingRegressor(max_iter=60, random_state=0).fit(x, y)
    trees = compile_trees(model)
    assert trees is not None
    assert np.array_equal(trees.predict_value(queries), model.predict(queries))
    assert np.array_equal(trees.predict_value(queries[:1]), model.predict(queries[:1]))


def test_categorical_models_keep_scikit_learns_path() -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.integers(0, 5, 400), rng.normal(size=400)]).astype(float)
    y = (x[:, 0] % 2 == 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, categorical_features=[0]).fit(x, y)
    assert compile_trees(model) is None
    assert compile_trees(object()) is None
