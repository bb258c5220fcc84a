"""Estimator formats: each round-trips to identical predictions; skops refuses untrusted
types; pickle is used only for what no safer format can hold."""

from __future__ import annotations

import operator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from headwater.errors import RegistryError
from headwater.models import formats
from headwater.models.base import ArtifactRef, ModelVersion

FEATURES = ("f0", "f1", "f2", "f3")


class ShiftedLogistic(LogisticRegression):
    """A user's own estimator class: no safe format knows it."""


def training_data(n_classes: int = 2, rows: int = 300,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    score = x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.3, size=rows)
    if n_classes == 0:
        return x, score
    edges = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    return x, np.digitize(score, edges)


def estimator(kind: str) -> Any:
    """An unfitted estimator of ``kind`` (small, quick to fit)."""
    return {
        "logistic": LogisticRegression,
        "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        "hgb": lambda: HistGradientBoostingClassifier(max_iter=20),
        "hgb_regressor": lambda: HistGradientBoostingRegressor(max_iter=20),
        "lightgbm": lambda: LGBMClassifier(n_estimators=20, verbose=-1),
        "lightgbm_regressor": lambda: LGBMRegressor(n_estimators=20, verbose=-1),
        "xgboost": lambda: XGBClassifier(n_estimators=20),
        "xgboost_regressor": lambda: XGBRegressor(n_estimators=20),
        "custom": ShiftedLogistic,
    }[kind]()


FORMAT = {"logistic": "skops", "pipeline": "skops", "hgb": "skops", "hgb_regressor": "skops",
          "lightgbm": "lightgbm-text", "lightgbm_regressor": "lightgbm-text",
          "xgboost": "xgboost-json", "xgboost_regressor": "xgboost-json", "custom": "pickle"}


def fitted(kind: str, n_classes: int = 2, labels: Any = None) -> tuple[Any, np.ndarray]:
    """A fitted estimator of ``kind`` and test inputs (regressors when ``kind`` says so);
    ``labels`` maps class indices to other labels (e.g. strings)."""
    x, y = training_data(0 if kind.endswith("regressor") else n_classes)
    if labels is not None:
        y = np.asarray(labels)[y]
    model = estimator(kind)
    model.fit(x, y)
    return model, training_data(rows=50, seed=1)[0]


def make_version(model: Any, data: bytes, fmt: str, *, name: str = "churn",
                 run_id: str = "run1", metrics: dict[str, float] | None = None,
                 artifact: ArtifactRef | None = None) -> ModelVersion:
    """A ModelVersion as training would record it for ``model``."""
    classifier = hasattr(model, "predict_proba")
    classes = tuple(np.asarray(model.classes_).tolist()) if classifier else ()
    return ModelVersion(
        model=name, version=0, run_id=run_id,
        task="classification" if classifier else "regression",
        estimator_class=f"{type(model).__module__}.{type(model).__qualname__}",
        features=FEATURES, params={}, metrics=metrics or {},
        lineage={"feature_service": "svc"},
        artifact=artifact or ArtifactRef(f"{name}/{run_id}/{formats.filename(fmt)}", "0" * 64,
                                         len(data), fmt),
        reference=None, created_at=datetime.now(UTC), classes=classes)


@pytest.mark.parametrize("kind", sorted(FORMAT))
def test_each_estimator_round_trips_to_identical_predictions(kind: str) -> None:
    model, x = fitted(kind)
    fmt, data = formats.dump(model)
    assert fmt == FORMAT[kind]
    loaded = formats.load(fmt, data, classes=getattr(model, "classes_", ()))
    assert np.array_equal(loaded.predict(x), model.predict(x))
    if hasattr(model, "predict_proba"):
        assert np.allclose(loaded.predict_proba(x), model.predict_proba(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["hgb", "lightgbm", "xgboost", "logistic"])
def test_multiclass_models_round_trip(kind: str) -> None:
    model, x = fitted(kind, n_classes=3)
    fmt, data = formats.dump(model)
    loaded = formats.load(fmt, data, classes=model.classes_)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert np.allclose(loaded.predict_proba(x), model.predict_proba(x), rtol=0, atol=1e-12)


def test_the_code_free_formats_are_the_documented_ones() -> None:
    assert {"xgboost-json", "lightgbm-text", "skops"} == formats.CODE_FREE
    assert "pickle" not in formats.CODE_FREE
    doc = formats.__doc__ or ""
    assert "YES: unpickling can execute arbitrary" in doc
    assert [formats.filename(f) for f in formats.FORMATS] == [
        "model.json", "model.txt", "model.skops", "model.pkl"]


def test_a_skops_file_holding_an_untrusted_type_is_refused() -> None:
    data = sio.dumps(make_pipeline(FunctionTransformer(operator.neg), LogisticRegression()))
    assert "_operator.neg" in sio.get_untrusted_types(data=data)
    with pytest.raises(RegistryError, match=r"outside the trusted allow-list: \['_operator"
                       r"\.neg'\].*not loaded"):
        formats.load("skops", data)


def test_a_skops_file_holding_a_user_class_is_refused() -> None:
    model, _ = fitted("custom")
    data = sio.dumps(model)
    with pytest.raises(RegistryError, match="ShiftedLogistic"):
        formats.load("skops", data)


def test_sklearn_functions_are_not_trusted_only_classes() -> None:
    data = sio.dumps(FunctionTransformer(func=np.linalg.norm))  # a numpy function, not a ufunc
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted
    assert formats._refused(untrusted) == untrusted  # a numpy function is not allowed
    assert formats._allowed("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor")
    assert formats._allowed("numpy.dtype")
    assert formats._allowed("scipy.sparse._csr.csr_matrix")
    assert not formats._allowed("sklearn.utils.validation.check_array")  # a function
    assert not formats._allowed("builtins.eval")
    assert not formats._allowed("numpy.load")


def test_what_skops_cannot_hold_safely_falls_back_to_pickle() -> None:
    pipeline = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression())
    x, y = training_data()
    pipeline.fit(x, y)
    fmt, data = formats.dump(pipeline)
    assert fmt == "pickle"
    assert np.array_equal(formats.load(fmt, data).predict(x), pipeline.predict(x))


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(RegistryError, match="unknown artifact format 'onnx'"):
        formats.load("onnx", b"")


def test_preload_imports_skops_for_scikit_learn_models_only() -> None:
    import subprocess
    import sys

    code = ("import sys\n"
            "from sklearn.linear_model import LogisticRegression\n"
            "from headwater.models import formats\n"
            "assert formats.preload(object()) is None\n"
            "thread = formats.preload(LogisticRegression())\n"
            "assert thread is not None\n"
            "thread.join(120)\n"
            "assert 'skops.io' in sys.modules\n"
            "assert formats.preload(LogisticRegression()) is None  # imported once\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
