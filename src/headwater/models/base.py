"""The records of the model lifecycle, shared by training, the registry and inference.

* :class:`ModelRef` parses what users write to name a model version: ``churn@production``
  (an alias), ``churn:3`` (a version number) or ``churn`` (the ``production`` alias).
* :class:`ArtifactRef` points at stored bytes and carries their SHA-256.
* :class:`ModelVersion` is one registered version with its lineage, parameters, metrics and
  artifacts; :class:`AliasEvent` one line of the promotion history.
* :class:`TrainingRun` is what ``FeatureStore.train`` returns.
* :class:`Predictor` is a loaded, verified model that predicts from an Arrow table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from headwater.errors import NotFoundError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

DEFAULT_ALIAS = "production"
_REF = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<sep>[@:])(?P<rest>[A-Za-z0-9_]+))?\Z")

PREDICTION = "prediction"
"""The output column of every prediction (the label for classifiers, the value for
regressors)."""
PROBABILITY = "probability"
"""Classifiers also give the probability of the positive class (binary) or of the
predicted class (multiclass)."""


@dataclass(frozen=True)
class ModelRef:
    """A model version as users name it: by alias or by number."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``churn@production``, ``churn:3`` or ``churn`` (meaning ``churn@production``)."""
        match = _REF.match(text) if isinstance(text, str) else None
        if match is None:
            raise NotFoundError(
                f"{text!r} is not a model reference. Fix: write 'name@alias' "
                "(churn@production), 'name:version' (churn:3) or 'name'")
        name, sep, rest = match.group("name"), match.group("sep"), match.group("rest")
        if sep is None:
            return cls(name, alias=DEFAULT_ALIAS)
        if sep == ":":
            # ASCII digits only ('²' is a digit to isdigit, not to int) and a number a
            # registry column holds (a 64-bit integer)
            if (not (rest.isascii() and rest.isdigit() and len(rest) <= 19)
                    or not 1 <= int(rest) < 2**63):
                raise NotFoundError(f"{text!r}: a version after ':' is a number from 1. Fix: "
                                    f"write '{name}:1', or '{name}@alias' for an alias")
            return cls(name, version=int(rest))
        return cls(name, alias=rest)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}"


@dataclass(frozen=True)
class ArtifactRef:
    """Stored bytes: ``uri`` (a path relative to the artifact store), their ``sha256``,
    ``size`` in bytes and ``format`` (``skops``, ``xgboost-json``, ``lightgbm-text``,
    ``pickle`` for models; ``json`` for reference statistics)."""

    uri: str
    sha256: str
    size: int
    format: str

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "size": self.size,
                "format": self.format}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(str(data["uri"]), str(data["sha256"]), int(data["size"]),
                   str(data["format"]))


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model.

    ``features`` are the model's input columns in training order (feature names as the
    feature service gives them, then request fields of on-demand views). ``lineage`` holds
    ``model_spec_version``, ``feature_service``, ``feature_service_version``,
    ``feature_views`` (name -> version), ``training_fingerprint`` (SHA-256 of the training
    frame), ``label_source``, ``rows`` (train/test counts), ``split`` and
    ``code_revision`` (git commit of the repo, or null). ``reference`` points at the
    reference statistics of the training frame (JSON) used by monitoring."""

    model: str
    version: int
    run_id: str
    task: str
    estimator_class: str
    features: tuple[str, ...]
    params: dict[str, Any]
    metrics: dict[str, float]
    lineage: dict[str, Any]
    artifact: ArtifactRef
    reference: ArtifactRef | None
    created_at: datetime
    classes: tuple[Any, ...] = ()
    """A classifier's classes in ``predict_proba`` column order (JSON scalars)."""
    input_kind: str = "matrix"
    """How features reach the estimator (:mod:`~headwater.models.inputs`)."""
    feature_types: dict[str, str] = field(default_factory=dict)
    """Arrow type of each input column at training time, by name."""
    aliases: tuple[str, ...] = field(default=())
    """Aliases pointing at this version when it was read."""


@dataclass(frozen=True)
class AliasEvent:
    """One alias move: ``alias`` of ``model`` went from ``from_version`` to ``to_version``
    (None: removed). ``reason`` says why (``promote``, ``promote --force``, ``retrain``);
    ``checks`` the promotion rules evaluated, each ``{metric, candidate, current,
    threshold, passed}``."""

    id: int
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str
    checks: tuple[dict[str, Any], ...]
    at: datetime

    def describe_checks(self) -> str:
        """The rules checked, in words: ``roc_auc 0.8123 vs current 0.8000: passed``, ``;``
        between them (the CLI and the dashboard print this)."""
        def number(value: object) -> str:
            return f"{value:.4f}" if isinstance(value, float) else str(value)

        parts = []
        for check in self.checks:
            verdict = "passed" if check.get("passed") else "failed"
            current = check.get("current")
            against = "no current version" if current is None else f"current {number(current)}"
            parts.append(f"{check.get('metric')} {number(check.get('candidate'))} vs "
                         f"{against}: {verdict}")
        return "; ".join(parts)


@dataclass(frozen=True)
class TrainingRun:
    """The result of ``FeatureStore.train``: the new version and how it was made.

    ``fit_seconds`` is the estimator's ``fit`` alone; ``total_seconds`` the whole call
    (frame, split, fit, evaluate, artifacts, registration)."""

    run_id: str
    model: str
    version: int
    metrics: dict[str, float]
    fingerprint: str
    rows_train: int
    rows_test: int
    fit_seconds: float
    total_seconds: float
    model_version: ModelVersion


class Predictor(Protocol):
    """A loaded model whose artifact hash was verified.

    ``predict`` takes an Arrow table holding (at least) the ``features`` columns and
    returns the output columns: ``prediction`` always, ``probability`` for classifiers;
    nulls in inputs are passed as NaN (estimators that cannot take NaN raise DataError
    naming the column)."""

    version: ModelVersion

    @property
    def features(self) -> tuple[str, ...]: ...

    def predict(self, table: pa.Table) -> dict[str, np.ndarray]: ...
