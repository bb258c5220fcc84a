"""A loaded model version that predicts from an Arrow table: the one prediction path of
batch inference and ``/predict``.

:func:`load_predictor` turns verified artifact bytes into a :class:`ModelPredictor`. Its
``predict`` converts the feature columns with :func:`~headwater.models.inputs.model_input`
(the conversion training used) and returns ``prediction`` and, for classifiers,
``probability`` (the positive class ``classes[1]`` for binary models, the predicted class
for multiclass ones).

``/predict`` calls this for one row, so the per-call work is kept to the model itself:

* classifiers compute the class probabilities once and derive the label from them
  (``classes[argmax]``; for binary models that is ``p(classes[1]) > 0.5``), which is what
  ``predict`` does for scikit-learn, LightGBM and XGBoost classifiers; SVMs (whose
  ``predict`` ignores their Platt-scaled probabilities) call ``predict`` as well;
* XGBoost models predict with ``Booster.inplace_predict`` (no DMatrix, no wrapper
  checks), LightGBM models with ``Booster.predict`` on the float matrix;
* inputs of at most :data:`SMALL_ROWS` rows are predicted on the calling thread only
  (LightGBM ``num_threads=1``, a one-thread copy of an XGBoost booster, HistGradientBoosting
  through its compiled trees, :mod:`~headwater.models.trees`, or with ``n_threads=1`` when
  it has categorical splits): waking an OpenMP team per tree costs far more than one row's
  work, and on a busy machine a request waited milliseconds for it. Larger inputs (batch
  inference) use every core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError
from headwater.models import formats
from headwater.models.base import PREDICTION, PROBABILITY, ModelVersion
from headwater.models.inputs import model_input

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

SMALL_ROWS = 64
"""Inputs up to this many rows are predicted single-threaded (module docstring)."""
_HIST_GRADIENT_BOOSTING = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
_PROBABILITY_OBJECTIVES = ("binary:logistic", "multi:softprob")
_SEPARATE_PREDICT = ("sklearn.svm.",)
"""Classifiers whose ``predict`` may disagree with the argmax of ``predict_proba``."""


class ModelPredictor:
    """A fitted estimator behind the :class:`~headwater.models.base.Predictor` protocol."""

    def __init__(self, version: ModelVersion, estimator: Any) -> None:
        import numpy as np

        self.version = version
        self.estimator = estimator
        self._features = version.features
        self._kind = version.input_kind
        self._classifier = version.task == "classification"
        self._proba: Callable[[Any], Any] | None = None
        self._value: Callable[[Any], Any] = estimator.predict
        self._label: Callable[[Any], Any] | None = None
        self._small_proba: Callable[[Any], Any] | None = None
        self._small_value: Callable[[Any], Any] | None = None
        if self._classifier and callable(getattr(estimator, "predict_proba", None)):
            self._proba = estimator.predict_proba
            if _final_step_module(estimator).startswith(_SEPARATE_PREDICT):
                self._label = estimator.predict
        self._fast_paths(estimator)
        known = version.classes or tuple(getattr(estimator, "classes_", ()))
        self._classes = np.asarray(known)

    def _fast_paths(self, estimator: Any) -> None:
        if isinstance(estimator, formats.LightGBMModel):
            booster = estimator.booster

            def one_thread(x: Any) -> Any:
                return booster.predict(x, num_threads=1)

            if self._classifier:
                self._proba = _binary_columns(booster.predict)
                self._small_proba = _binary_columns(one_thread)
            else:
                self._value, self._small_value = booster.predict, one_thread
            return
        if type(estimator).__name__ in _HIST_GRADIENT_BOOSTING and formats.from_package(
                estimator, "sklearn") and callable(getattr(estimator, "_raw_predict", None)):
            self._hist_gradient_boosting(estimator)
            return
        get_booster = getattr(estimator, "get_booster", None)
        if not (formats.from_package(estimator, "xgboost") and callable(get_booster)):
            return
        booster = get_booster()
        objective = str(getattr(estimator, "objective", "") or "")
        try:
            rounds = (0, int(estimator.best_iteration) + 1)
        except AttributeError:  # no early stopping: every tree
            rounds = (0, 0)

        single = booster.copy()
        single.set_param({"nthread": 1})

        def raw(x: Any) -> Any:
            return booster.inplace_predict(x, iteration_range=rounds)

        def raw_one_thread(x: Any) -> Any:
            return single.inplace_predict(x, iteration_range=rounds)

        if not self._classifier:
            self._value, self._small_value = raw, raw_one_thread
        elif objective in _PROBABILITY_OBJECTIVES:
            self._proba = _binary_columns(raw)
            self._small_proba = _binary_columns(raw_one_thread)

    def _hist_gradient_boosting(self, estimator: Any) -> None:
        """Small inputs: the compiled trees (:mod:`~headwater.models.trees`, the same
        numbers without scikit-learn's per-call and per-tree overhead) for numeric inputs;
        otherwise HistGradientBoosting's own predict path with ``n_threads=1``
        (``predict_proba`` is ``_loss.predict_proba(_raw_predict(X))``, ``predict`` of the
        regressor ``_loss.link.inverse(_raw_predict(X).ravel())``)."""
        from headwater.models.inputs import MATRIX
        from headwater.models.trees import compile_trees

        compiled = compile_trees(estimator) if self._kind == MATRIX else None
        if compiled is not None:
            if not self._classifier:
                self._small_value = compiled.predict_value
            elif self._proba is not None:
                self._small_proba = compiled.predict_proba
            return
        loss = estimator._loss

        def raw(x: Any) -> Any:
            return estimator._raw_predict(x, n_threads=1)

        if not self._classifier:
            self._small_value = lambda x: loss.link.inverse(raw(x).ravel())
        elif self._proba is not None:
            self._small_proba = lambda x: loss.predict_proba(raw(x))

    @property
    def features(self) -> tuple[str, ...]:
        return self._features

    def predict(self, table: pa.Table) -> dict[str, np.ndarray]:
        """``prediction`` (and ``probability`` for classifiers) for every row of ``table``."""
        x = model_input(table, self._features, self._kind)
        try:
            return self._predict(x)
        except ValueError as exc:
            raise self._data_error(x, exc) from exc

    def _predict(self, x: Any) -> dict[str, np.ndarray]:
        import numpy as np

        small = x.shape[0] <= SMALL_ROWS
        if self._proba is None:
            value = self._small_value if small and self._small_value else self._value
            return {PREDICTION: np.asarray(value(x))}
        proba = np.asarray((self._small_proba if small and self._small_proba
                            else self._proba)(x))
        best = np.argmax(proba, axis=1)
        binary = proba.shape[1] == 2
        probability = proba[:, 1] if binary else proba[np.arange(proba.shape[0]), best]
        if self._label is not None:
            label = np.asarray(self._label(x))
        elif len(self._classes) == proba.shape[1]:
            label = self._classes[best]
        else:
            label = best
        return {PREDICTION: label, PROBABILITY: probability}

    def _data_error(self, x: Any, exc: ValueError) -> Exception:
        import numpy as np

        if isinstance(x, np.ndarray):
            nulls = [self._features[i] for i in np.flatnonzero(np.isnan(x).any(axis=0))]
        else:
            nulls = [str(c) for c in x.columns[x.isna().any(axis=0).to_numpy()]]
        if not nulls:
            return exc
        return DataError(
            f"model {self.version.model}:{self.version.version} "
            f"({self.version.estimator_class}) cannot take nulls, and features {nulls} have "
            f"some: {exc}. Fix: fill them in the feature view, or train an estimator that "
            "handles missing values (HistGradientBoosting, LightGBM, XGBoost)")

    def __repr__(self) -> str:
        return f"ModelPredictor({self.version.model}:{self.version.version})"


def load_predictor(version: ModelVersion, data: bytes) -> ModelPredictor:
    """A predictor for ``version`` from its artifact bytes, which the caller has verified
    against the recorded SHA-256 (:meth:`~headwater.models.artifacts.ArtifactStore.get`)."""
    estimator = formats.load(version.artifact.format, data, classes=version.classes)
    return ModelPredictor(version, estimator)


def _binary_columns(predict: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Class-probability columns from a booster that predicts only the positive class of
    binary models."""
    import numpy as np

    def proba(x: Any) -> Any:
        out = np.asarray(predict(x))
        if out.ndim == 1:
            return np.column_stack((1.0 - out, out))
        return out

    return proba


def _final_step_module(estimator: Any) -> str:
    """The module of a Pipeline's last step (of the estimator itself otherwise)."""
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else estimator
    return f"{type(final).__module__}."
