"""Model specs: what to train, on which features and labels, and how to judge it.

A :class:`ModelSpec` names a feature service (the inputs), a :class:`LabelSource` (entity
keys, an event time and a label per row), a scikit-learn-compatible estimator, a split
(:class:`TimeSplit` by default, :class:`RandomSplit` as an option) and metrics. It is
registered like any definition; ``FeatureStore.train`` turns it into a model version.

The registry cannot hold a live estimator, so the spec records the estimator's class path
(``estimator_class``) and constructor parameters (``estimator_params``, canonical JSON from
``get_params(deep=False)``, nested estimators included). Training rebuilds the estimator from
those two, so a changed hyper-parameter is a new spec version and ``headwater train`` in
another process fits exactly what was registered.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from headwater.definitions.base import Definition, check_identifier, check_tags, spec_type
from headwater.definitions.feature_service import FeatureService
from headwater.definitions.sources import FileSource, SQLSource
from headwater.errors import DefinitionError

TASKS = ("classification", "regression")

CLASSIFICATION_METRICS = ("roc_auc", "log_loss", "accuracy", "precision", "recall", "f1",
                          "pr_auc", "brier")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
DEFAULT_METRICS = {"classification": ("roc_auc", "log_loss", "accuracy"),
                   "regression": ("rmse", "mae", "r2")}
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae", "mape"})
"""Metrics where a smaller value is a better model (promotion rules use this)."""

_ESTIMATOR_KEY = "$estimator"


@spec_type
@dataclass(frozen=True)
class LabelSource:
    """Labelled rows: the entity join keys, an event time and the label ``column``.

    ``source`` is a FileSource or SQLSource; its ``timestamp_field`` is the time each label
    row is observed at, so every feature is joined as it was known at that time. The join
    keys are those of the feature service's entities and must be columns of the source."""

    source: FileSource | SQLSource
    column: str

    def __post_init__(self) -> None:
        me = "LabelSource"
        if not isinstance(self.source, FileSource | SQLSource):
            raise DefinitionError(me, "source", f"{self.source!r} is not a FileSource or "
                                  "SQLSource", "pass hw.FileSource('data/labels.parquet', "
                                  "timestamp_field='ts')")
        check_identifier(me, "column", self.column)
        if self.column in self.source.time_columns():
            raise DefinitionError(me, "column", f"'{self.column}' is the source's time column",
                                  "name the label column")


def _utc_text(me: str, name: str, value: object) -> str | None:
    """A time given as a datetime or an ISO string, normalized to an ISO UTC string."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise DefinitionError(me, name, f"{value!r} is not an ISO date or time",
                                  "pass '2024-11-01' or a datetime") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise DefinitionError(me, name, f"expected a datetime or ISO string, got "
                              f"{type(value).__name__}", "pass '2024-11-01' or a datetime")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # naive times are UTC, as everywhere
    return moment.astimezone(UTC).isoformat()


@spec_type
@dataclass(frozen=True)
class TimeSplit:
    """Train on label rows before ``test_start``, test on rows at or after it (and before
    ``test_end`` when given). Without ``test_start`` the latest ``test_fraction`` of the
    rows by event time are the test set. ``train_start`` drops older rows."""

    test_start: str | None = None
    test_end: str | None = None
    train_start: str | None = None
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        me = "TimeSplit"
        for name in ("test_start", "test_end", "train_start"):
            object.__setattr__(self, name, _utc_text(me, name, getattr(self, name)))
        _check_fraction(me, self.test_fraction)
        if self.test_start and self.test_end and self.test_end <= self.test_start:
            raise DefinitionError(me, "test_end", "is not after test_start",
                                  "give a test_end later than test_start, or omit it")
        if self.test_start and self.train_start and self.train_start >= self.test_start:
            raise DefinitionError(me, "train_start", "is not before test_start",
                                  "give a train_start earlier than test_start, or omit it")

    def times(self) -> tuple[datetime | None, datetime | None, datetime | None]:
        """``(train_start, test_start, test_end)`` as UTC datetimes (None when not set)."""
        return tuple(None if v is None else datetime.fromisoformat(v)  # type: ignore[return-value]
                     for v in (self.train_start, self.test_start, self.test_end))


@spec_type
@dataclass(frozen=True)
class RandomSplit:
    """A seeded random ``test_fraction`` of the label rows is the test set. Use it only when
    rows are independent of time; a time split is the honest default."""

    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        _check_fraction("RandomSplit", self.test_fraction)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise DefinitionError("RandomSplit", "seed", f"expected an int, got {self.seed!r}",
                                  "pass seed=0")


def _check_fraction(me: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise DefinitionError(me, "test_fraction", f"{value!r} is not between 0 and 1",
                              "pass test_fraction=0.2")


@spec_type
@dataclass(frozen=True)
class PromotionRule:
    """A gate on moving ``alias`` to a new version: the candidate's ``metric`` must be at
    least as good as the version currently behind ``alias`` (by ``min_improvement``, in the
    metric's own direction), and no worse than ``threshold`` when given. With no version
    behind the alias yet, only ``threshold`` applies."""

    metric: str
    alias: str = "production"
    min_improvement: float = 0.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        me = "PromotionRule"
        known = CLASSIFICATION_METRICS + REGRESSION_METRICS
        if self.metric not in known:
            raise DefinitionError(me, "metric", f"unknown metric {self.metric!r}",
                                  f"use one of {sorted(known)}")
        check_identifier(me, "alias", self.alias)
        for name in ("min_improvement", "threshold"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, int | float) or not math.isfinite(value)):
                raise DefinitionError(me, name, f"{value!r} is not a finite number",
                                      f"pass {name}=0.0")

    def better(self, candidate: float, current: float) -> bool:
        """Whether ``candidate`` passes against ``current`` (the metric's direction)."""
        if self.metric in LOWER_IS_BETTER:
            return candidate <= current - self.min_improvement
        return candidate >= current + self.min_improvement

    def meets_threshold(self, candidate: float) -> bool:
        if self.threshold is None:
            return True
        if self.metric in LOWER_IS_BETTER:
            return candidate <= self.threshold
        return candidate >= self.threshold


@spec_type
@dataclass(frozen=True)
class ModelSpec(Definition):
    """A model to train: features from ``features`` (a FeatureService), labels from
    ``label``, fitted by ``estimator`` (any scikit-learn-compatible estimator), split by
    ``split``, judged by ``metrics``.

    >>> from sklearn.linear_model import LogisticRegression            # doctest: +SKIP
    >>> hw.ModelSpec(name="churn", features=churn_service,             # doctest: +SKIP
    ...              label=hw.LabelSource(labels, column="churned"),
    ...              estimator=LogisticRegression(), split=hw.TimeSplit("2024-11-01"))

    ``task`` is inferred from the estimator (``classification`` when it has
    ``predict_proba``). ``metrics`` default to roc_auc, log_loss and accuracy for
    classification, rmse, mae and r2 for regression. ``promotion`` rules gate
    ``FeatureStore.promote``."""

    kind: ClassVar[str] = "model"

    name: str
    features: FeatureService
    label: LabelSource
    estimator: Any = field(default=None, compare=False, hash=False, repr=False,
                           metadata={"spec": False})
    split: TimeSplit | RandomSplit = field(default_factory=TimeSplit)
    metrics: tuple[str, ...] = ()
    task: str = ""
    promotion: tuple[PromotionRule, ...] = ()
    estimator_class: str = ""
    estimator_params: str = ""
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_identifier("ModelSpec", "name", self.name)
        me = f"ModelSpec '{self.name}'"
        if not isinstance(self.features, FeatureService):
            raise DefinitionError(me, "features", f"{self.features!r} is not a FeatureService",
                                  "pass features=my_feature_service")
        if not isinstance(self.label, LabelSource):
            raise DefinitionError(me, "label", f"{self.label!r} is not a LabelSource",
                                  "pass label=hw.LabelSource(source, column='label')")
        if not isinstance(self.split, TimeSplit | RandomSplit):
            raise DefinitionError(me, "split", f"{self.split!r} is not a split",
                                  "pass hw.TimeSplit(test_start='2024-11-01') or "
                                  "hw.RandomSplit(test_fraction=0.2)")
        if self.estimator is not None:
            cls, params = describe_estimator(me, self.estimator)
            object.__setattr__(self, "estimator_class", cls)
            object.__setattr__(self, "estimator_params", params)
            if not self.task:
                object.__setattr__(self, "task", infer_task(self.estimator))
        elif not self.estimator_class:
            raise DefinitionError(me, "estimator", "no estimator given",
                                  "pass estimator=HistGradientBoostingClassifier() or any "
                                  "scikit-learn-compatible estimator")
        if self.task not in TASKS:
            raise DefinitionError(me, "task", f"{self.task!r} is not a task",
                                  f"pass task= one of {list(TASKS)}")
        allowed = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        metrics = tuple(self.metrics) if not isinstance(self.metrics, str) else (self.metrics,)
        unknown = [m for m in metrics if m not in allowed]
        if unknown:
            raise DefinitionError(me, "metrics", f"{unknown} are not {self.task} metrics",
                                  f"use some of {list(allowed)}")
        object.__setattr__(self, "metrics", metrics or DEFAULT_METRICS[self.task])
        rules = self.promotion if isinstance(self.promotion, list | tuple) else (self.promotion,)
        if not all(isinstance(r, PromotionRule) for r in rules):
            raise DefinitionError(me, "promotion", "expected hw.PromotionRule objects",
                                  "pass promotion=[hw.PromotionRule('roc_auc')]")
        bad = [r.metric for r in rules if r.metric not in allowed]
        if bad:
            raise DefinitionError(me, "promotion", f"rules on {bad} do not fit a {self.task} "
                                  "model", f"use some of {list(allowed)}")
        object.__setattr__(self, "promotion", tuple(rules))
        object.__setattr__(self, "tags", check_tags(me, self.tags))

    def params(self) -> dict[str, Any]:
        """The estimator's constructor parameters as recorded (nested estimators appear as
        ``{"$estimator": class path, "params": {...}}``)."""
        loaded: dict[str, Any] = json.loads(self.estimator_params or "{}")
        return loaded


def infer_task(estimator: object) -> str:
    """``classification`` for estimators with ``predict_proba`` (or sklearn's classifier
    tag), else ``regression``."""
    kind = getattr(estimator, "_estimator_type", None)
    if kind in ("classifier", "regressor"):
        return "classification" if kind == "classifier" else "regression"
    return "classification" if hasattr(estimator, "predict_proba") else "regression"


def describe_estimator(me: str, estimator: object) -> tuple[str, str]:
    """``(class path, canonical JSON of its parameters)``; raises DefinitionError naming a
    parameter that cannot be recorded."""
    for method in ("fit", "predict", "get_params"):
        if not callable(getattr(estimator, method, None)):
            raise DefinitionError(me, "estimator", f"{type(estimator).__name__} has no "
                                  f"{method}() method", "pass a scikit-learn-compatible "
                                  "estimator (fit, predict, get_params)")
    encoded = _encode_estimator(me, estimator)
    return encoded[_ESTIMATOR_KEY], json.dumps(encoded["params"], sort_keys=True,
                                               separators=(",", ":"))


def _class_path(value: object) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode_estimator(me: str, estimator: Any) -> dict[str, Any]:
    params = estimator.get_params(deep=False)
    return {_ESTIMATOR_KEY: _class_path(estimator),
            "params": {str(k): _encode_param(me, str(k), v) for k, v in params.items()}}


def _encode_param(me: str, name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return {"$float": repr(value)}
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return _encode_param(me, name, value.item())  # a numpy scalar
    if isinstance(value, list | tuple):
        items = [_encode_param(me, name, v) for v in value]
        return items if isinstance(value, list) else {"$tuple": items}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"$dict": {k: _encode_param(me, name, v) for k, v in value.items()}}
    if callable(getattr(value, "get_params", None)) and callable(getattr(value, "fit", None)):
        return _encode_estimator(me, value)
    raise DefinitionError(me, f"estimator.{name}", f"parameter value {value!r} of type "
                          f"{type(value).__name__} cannot be recorded in the registry",
                          "use numbers, strings, lists, dicts or nested estimators as "
                          "parameters")


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Constructor keyword arguments from recorded parameters: nested estimators are built
    by importing their class (the registry is trusted configuration, like the repo)."""
    return {k: _decode_param(v) for k, v in params.items()}


def _decode_param(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_param(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$float" in value:
        return float(value["$float"])
    if "$tuple" in value:
        return tuple(_decode_param(v) for v in value["$tuple"])
    if "$dict" in value:
        return {k: _decode_param(v) for k, v in value["$dict"].items()}
    if _ESTIMATOR_KEY in value:
        return build_estimator(value[_ESTIMATOR_KEY], value["params"])
    return value


def build_estimator(class_path: str, params: dict[str, Any]) -> Any:
    """A fresh, unfitted estimator of ``class_path`` with recorded ``params``."""
    import importlib

    module_name, _, qualname = class_path.rpartition(".")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise DefinitionError(
            f"estimator '{class_path}'", "estimator_class", f"cannot be imported: {exc}",
            "install the package that defines it (e.g. pip install 'headwater[ml]'), or "
            "define the class in an importable module") from exc
    return target(**decode_params(params))
