"""Fitted estimators to bytes and back, in the safest format their type allows.

=================  ==============================  ==================================
format             used for                        can loading run code?
=================  ==============================  ==================================
``xgboost-json``   XGBoost scikit-learn wrappers   no: the booster's JSON, read into a
                   (XGBClassifier, XGBRegressor)   fresh wrapper by XGBoost's parser
``lightgbm-text``  LightGBM scikit-learn wrappers  no: the booster's model text, parsed
                   (LGBMClassifier, LGBMRegressor) by LightGBM into a ``Booster``
``skops``          scikit-learn estimators and     no: skops rebuilds only the types it
                   pipelines (any mix of           trusts plus our allow-list of
                   scikit-learn, numpy and scipy   scikit-learn classes, numpy scalar
                   objects)                        and dtype classes, numpy ufuncs and
                                                   scipy.sparse containers; a file naming
                                                   any other type is refused
``pickle``         anything else (custom classes,  YES: unpickling can execute arbitrary
                   a Pipeline ending in LightGBM,  code. Such an artifact is only ever
                   functions outside numpy)        loaded after its SHA-256 matched the
                                                   registry (ArtifactStore.get)
=================  ==============================  ==================================

:func:`dump` picks the format: XGBoost and LightGBM wrappers by type, then skops when the
skops file it would write passes the same allow-list :func:`load` enforces (so a skops
artifact always loads), else pickle. :func:`load` never receives unverified bytes from the
registry: the caller reads them with :meth:`~headwater.models.artifacts.ArtifactStore.get`.

A ``lightgbm-text`` artifact loads as :class:`LightGBMModel`, a thin wrapper of
``lightgbm.Booster`` with ``predict``/``predict_proba`` and the recorded ``classes_``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

from headwater.errors import RegistryError

XGBOOST_JSON = "xgboost-json"
LIGHTGBM_TEXT = "lightgbm-text"
SKOPS = "skops"
PICKLE = "pickle"
FORMATS = (XGBOOST_JSON, LIGHTGBM_TEXT, SKOPS, PICKLE)
EXTENSIONS = {XGBOOST_JSON: "json", LIGHTGBM_TEXT: "txt", SKOPS: "skops", PICKLE: "pkl"}
CODE_FREE = frozenset({XGBOOST_JSON, LIGHTGBM_TEXT, SKOPS})
"""Formats whose loading cannot execute code from the artifact."""

_TRUSTED_ROOTS = ("sklearn", "numpy", "scipy")


def filename(format: str) -> str:
    """The artifact file name for a model in ``format`` (``model.json``, ...)."""
    return f"model.{EXTENSIONS[format]}"


def from_package(estimator: object, package: str) -> bool:
    return any(cls.__module__.split(".")[0] == package for cls in type(estimator).__mro__)


def preload(estimator: Any) -> threading.Thread | None:
    """Import, on a background thread, the library :func:`dump` will need for
    ``estimator`` (skops takes about half a second to import, mostly SciPy and pandas), so
    training builds its frame and fits meanwhile instead of waiting for it at the end.
    Returns the thread (None when nothing needs importing); :func:`dump` works whether or
    not it has finished, since Python imports a module once, under its import lock."""
    if not from_package(estimator, "sklearn") or "skops.io" in sys.modules:
        return None

    def load_skops() -> None:
        try:
            import skops.io  # noqa: F401
        except ImportError:  # dump imports it again and reports the error where it matters
            return

    thread = threading.Thread(target=load_skops, name="headwater-preload-skops", daemon=True)
    thread.start()
    return thread


def dump(estimator: Any) -> tuple[str, bytes]:
    """``(format, bytes)`` of a fitted estimator (see the module docstring for the choice)."""
    if from_package(estimator, "xgboost") and callable(getattr(estimator, "get_booster", None)):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.json")
            estimator.save_model(path)  # the wrapper adds its sklearn attributes
            with open(path, "rb") as handle:
                return XGBOOST_JSON, handle.read()
    if from_package(estimator, "lightgbm") and hasattr(estimator, "booster_"):
        return LIGHTGBM_TEXT, estimator.booster_.model_to_string().encode()
    if from_package(estimator, "sklearn"):
        import skops.io as sio

        data = sio.dumps(estimator)
        if not _refused(sio.get_untrusted_types(data=data)):
            return SKOPS, bytes(data)
    import pickle

    return PICKLE, pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)


def load(format: str, data: bytes, *, classes: Sequence[Any] = ()) -> Any:
    """The estimator stored as ``data`` in ``format``. ``classes`` are the recorded class
    labels (used by ``lightgbm-text``, whose booster does not keep them). A skops file
    holding a type outside the allow-list is refused with a RegistryError."""
    if format == XGBOOST_JSON:
        return _load_xgboost(data)
    if format == LIGHTGBM_TEXT:
        import lightgbm

        text = data.decode()
        return LightGBMModel(lightgbm.Booster(model_str=text), _objective(text), classes)
    if format == SKOPS:
        import skops.io as sio

        untrusted = sio.get_untrusted_types(data=data)
        refused = _refused(untrusted)
        if refused:
            raise RegistryError(
                f"the skops artifact holds types outside the trusted allow-list: {refused}; "
                "it was not loaded, since rebuilding them could run code. Fix: train the "
                "model from scikit-learn, numpy and scipy parts only, or inspect the file "
                "with skops.io.get_untrusted_types and retrain")
        return sio.loads(data, trusted=untrusted)
    if format == PICKLE:
        import pickle

        return pickle.loads(data)  # verified by SHA-256 before (module docstring)
    raise RegistryError(f"unknown artifact format {format!r}; known: {list(FORMATS)}. Fix: "
                        "upgrade headwater, or retrain the model")


def _load_xgboost(data: bytes) -> Any:
    import xgboost

    try:
        attributes = json.loads(data)["learner"]["attributes"]
        kind = json.loads(attributes.get("scikit_learn", "{}")).get("_estimator_type")
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"the xgboost-json artifact is not an XGBoost model file: {exc}. "
                            "Fix: retrain the model") from exc
    model = xgboost.XGBClassifier() if kind == "classifier" else xgboost.XGBRegressor()
    model.load_model(bytearray(data))
    return model


def _refused(untrusted: Sequence[str]) -> list[str]:
    """The names among ``untrusted`` (as skops reports them) outside our allow-list."""
    return [name for name in untrusted if not _allowed(name)]


def _allowed(name: str) -> bool:
    """Classes defined in scikit-learn, numpy scalar and dtype classes, numpy ufuncs and
    scipy.sparse containers. Anything else (functions, other packages) is refused."""
    root = name.split(".", maxsplit=1)[0]
    if root not in _TRUSTED_ROOTS:
        return False
    target = _resolve(name)
    if target is None:
        return False
    if root == "sklearn":
        return isinstance(target, type)
    if root == "numpy":
        import numpy as np

        return isinstance(target, np.ufunc) or (isinstance(target, type) and issubclass(
            target, np.generic | np.dtype))
    return isinstance(target, type) and name.startswith("scipy.sparse.")


def _resolve(name: str) -> object | None:
    """The object a dotted name points at, importing only its (trusted-root) module."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                target = getattr(target, attr)
        except AttributeError:
            return None
        return target
    return None


class LightGBMModel:
    """A ``lightgbm.Booster`` with the scikit-learn prediction methods.

    ``predict_proba`` gives one column per class (binary boosters predict the positive
    class only; the negative column is ``1 - p``); ``predict`` gives the class label of the
    highest probability for classifiers and the booster's value for regressors."""

    def __init__(self, booster: Any, objective: str, classes: Sequence[Any] = ()) -> None:
        import numpy as np

        self.booster = booster
        self.objective = objective
        self.is_classifier = self.objective.startswith(("binary", "multiclass", "multiclassova",
                                                        "cross_entropy"))
        self.classes_ = np.asarray(classes) if len(classes) else np.arange(
            max(2, int(booster.num_model_per_iteration())) if self.is_classifier else 0)

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        out = np.asarray(self.booster.predict(x))
        if out.ndim == 1:
            return np.column_stack((1.0 - out, out))
        return out

    def predict(self, x: Any) -> Any:
        import numpy as np

        if not self.is_classifier:
            return np.asarray(self.booster.predict(x))
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]


def _objective(text: str) -> str:
    """The ``objective=`` line of a model text (``binary sigmoid:1`` -> ``binary``)."""
    for line in text.splitlines():
        if line.startswith("objective="):
            return line.partition("=")[2].split(" ")[0]
    return "regression"
