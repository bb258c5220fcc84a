"""The predictor: the same predictions as the estimator's own methods, from an Arrow table,
for every format, for one row and for many."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import SVC

from headwater.errors import DataError
from headwater.models import formats
from headwater.models.base import PREDICTION, PROBABILITY
from headwater.models.predictor import SMALL_ROWS, ModelPredictor, load_predictor

from .test_formats import FEATURES, FORMAT, fitted, make_version, training_data


def table_of(x: np.ndarray, *, reverse: bool = False) -> pa.Table:
    names = list(FEATURES)[::-1] if reverse else list(FEATURES)
    return pa.table({name: x[:, FEATURES.index(name)] for name in names})


def predictor_for(model: Any) -> ModelPredictor:
    fmt, data = formats.dump(model)
    return load_predictor(make_version(model, data, fmt), data)


CLASSIFIERS = sorted(k for k in FORMAT if not k.endswith("regressor"))
REGRESSORS = sorted(k for k in FORMAT if k.endswith("regressor"))


@pytest.mark.parametrize("kind", CLASSIFIERS)
@pytest.mark.parametrize("rows", [1, SMALL_ROWS + 1])
def test_binary_classifiers_predict_label_and_positive_probability(kind: str,
                                                                   rows: int) -> None:
    model, _ = fitted(kind)
    x = training_data(rows=rows, seed=3)[0]
    out = predictor_for(model).predict(table_of(x, reverse=True))  # columns found by name
    assert set(out) == {PREDICTION, PROBABILITY}
    assert np.array_equal(out[PREDICTION], model.predict(x))
    assert np.allclose(out[PROBABILITY], model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["hgb", "lightgbm", "xgboost", "logistic"])
def test_multiclass_probability_is_that_of_the_predicted_class(kind: str) -> None:
    model, x = fitted(kind, n_classes=3)
    for rows in (x[:1], x):
        out = predictor_for(model).predict(table_of(rows))
        assert np.array_equal(out[PREDICTION], model.predict(rows))
        assert np.allclose(out[PROBABILITY], model.predict_proba(rows).max(axis=1), rtol=0,
                           atol=1e-12)


@pytest.mark.parametrize("kind", ["hgb", "lightgbm", "logistic"])
def test_string_class_labels_come_back_as_labels(kind: str) -> None:
    model, x = fitted(kind, labels=["stays", "churns"])
    out = predictor_for(model).predict(table_of(x))
    assert set(out[PREDICTION].tolist()) <= {"stays", "churns"}
    assert np.array_equal(out[PREDICTION], model.predict(x))
    # the probability is that of classes[1], the order the estimator recorded
    assert np.allclose(out[PROBABILITY], model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", REGRESSORS)
@pytest.mark.parametrize("rows", [1, SMALL_ROWS + 1])
def test_regressors_predict_values_without_probability(kind: str, rows: int) -> None:
    model, _ = fitted(kind)
    x = training_data(rows=rows, seed=3)[0]
    out = predictor_for(model).predict(table_of(x))
    assert set(out) == {PREDICTION}
    assert np.allclose(out[PREDICTION], model.predict(x), rtol=1e-7, atol=1e-9)


@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated")
def test_svm_labels_come_from_predict_not_from_probabilities() -> None:
    x, y = training_data(rows=120, seed=3)
    model = SVC(probability=True, random_state=0).fit(x, y)
    argmax = model.classes_[model.predict_proba(x).argmax(axis=1)]
    assert (argmax != model.predict(x)).any()  # Platt scaling disagrees with predict here
    out = predictor_for(model).predict(table_of(x))
    assert np.array_equal(out[PREDICTION], model.predict(x))


def test_frame_input_reaches_a_pipeline_with_an_encoder() -> None:
    frame = pd.DataFrame({"plan": ["basic", "pro", "basic", "max"] * 30,
                          "spend": np.arange(120, dtype=float)})
    y = (frame["plan"] != "basic").astype(int).to_numpy()
    model = make_pipeline(ColumnTransformer([("plan", OneHotEncoder(handle_unknown="ignore"),
                                              ["plan"])], remainder="passthrough"),
                          LogisticRegression()).fit(frame, y)
    fmt, data = formats.dump(model)
    assert fmt == "skops"
    version = make_version(model, data, fmt)
    version = type(version)(**{**version.__dict__, "features": ("plan", "spend"),
                               "input_kind": "frame"})
    out = load_predictor(version, data).predict(pa.Table.from_pandas(frame.iloc[:3]))
    assert np.array_equal(out[PREDICTION], model.predict(frame.iloc[:3]))


def test_nulls_reach_models_that_take_them_as_nan() -> None:
    model, x = fitted("hgb")
    table = table_of(x[:2]).set_column(0, "f0", pa.array([None, x[1, 0]], pa.float64()))
    expected = x[:2].copy()
    expected[0, 0] = np.nan
    out = predictor_for(model).predict(table)
    assert np.allclose(out[PROBABILITY], model.predict_proba(expected)[:, 1])


def test_nulls_for_a_model_that_cannot_take_them_name_the_feature() -> None:
    model, x = fitted("logistic")
    table = table_of(x[:2]).set_column(2, "f2", pa.array([None, 1.0], pa.float64()))
    with pytest.raises(DataError, match=r"cannot take nulls, and features \['f2'\]"):
        predictor_for(model).predict(table)


def test_a_missing_feature_column_is_a_data_error() -> None:
    model, x = fitted("lightgbm")
    with pytest.raises(DataError, match=r"\['f3'\] are missing"):
        predictor_for(model).predict(table_of(x).drop_columns(["f3"]))


def test_the_predictor_exposes_its_version_and_features() -> None:
    model, _ = fitted("xgboost")
    predictor = predictor_for(model)
    assert predictor.features == FEATURES
    assert predictor.version.estimator_class == "xgboost.sklearn.XGBClassifier"
