"""Training a registered ModelSpec into a new model version.

:func:`train_model` runs the steps in order, reporting each to ``progress(step, rows)``:

1. ``frame``: the point-in-time training frame (:mod:`~headwater.models.frame`);
2. ``split``: train and test rows (:mod:`~headwater.models.split`);
3. ``fit``: the estimator rebuilt from the registered class path and parameters (so any
   process trains exactly what was registered), fitted on the train rows converted by
   :mod:`~headwater.models.inputs`; ``fit_seconds`` times this call alone;
4. ``evaluate``: predictions on the test rows and the spec's metrics
   (:mod:`~headwater.models.metrics`);
5. ``reference``: statistics of the train rows, their labels and the test predictions
   (:mod:`~headwater.models.reference`);
6. ``artifacts``: the fitted model (in the format :func:`headwater.models.formats.dump`
   picks) and ``reference.json``, stored under a fresh run id;
7. ``register``: the new version with its lineage, numbered by the registry.

Nothing is registered unless every step succeeds; artifacts written by a run that fails
later stay under their run id and are never referenced.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureService, FeatureView, ModelSpec, OnDemandFeatureView
from headwater.definitions.base import to_spec
from headwater.definitions.model import build_estimator
from headwater.errors import DataError
from headwater.models.base import PREDICTION, PROBABILITY, ModelVersion, TrainingRun
from headwater.models.frame import TrainingFrame, build_training_frame, feature_types
from headwater.models.split import split_frame

if TYPE_CHECKING:
    import numpy as np

    from headwater.materialize.job import Progress
    from headwater.store import FeatureStore

REFERENCE_FILE = "reference.json"


def train_model(store: FeatureStore, name: str, *,
                progress: Progress | None = None) -> TrainingRun:
    """Train the registered ModelSpec ``name`` and register the result as its next version
    (see the module docstring). NotFoundError for an unknown model; DataError for data that
    cannot be trained on (null labels, an empty split, inputs the estimator refuses)."""
    from headwater.models import formats
    from headwater.models.inputs import input_kind, model_input
    from headwater.models.metrics import compute_metrics
    from headwater.models.reference import reference_statistics

    started = time.perf_counter()
    report = progress or (lambda step, rows: None)
    spec = store.get_model(name)
    estimator = build_estimator(spec.estimator_class, spec.params())
    formats.preload(estimator)  # its artifact library imports while the frame builds
    frame = build_training_frame(store, spec)
    report("frame", frame.num_rows)
    parts = split_frame(frame.table, frame.timestamp, spec.split, model=name)
    report("split", parts.train.num_rows)

    kind = input_kind(frame.table.schema, frame.features)
    x_train = model_input(parts.train, frame.features, kind)
    y_train = parts.train.column(frame.label).to_numpy()
    fit_started = time.perf_counter()
    _fit(estimator, x_train, y_train, spec)
    fit_seconds = time.perf_counter() - fit_started
    report("fit", parts.train.num_rows)

    x_test = model_input(parts.test, frame.features, kind)
    outputs = _predict(estimator, x_test, spec)
    classes = _classes(estimator) if spec.task == "classification" else ()
    y_test = parts.test.column(frame.label).to_numpy()
    metrics = compute_metrics(spec.task, spec.metrics, y_test, outputs[PREDICTION],
                              outputs.get("proba"), classes=classes, model=name)
    report("evaluate", parts.test.num_rows)

    shown = {k: v for k, v in outputs.items() if k in (PREDICTION, PROBABILITY)}
    reference = reference_statistics(parts.train, frame.features, label=frame.label,
                                     outputs=shown)
    report("reference", parts.train.num_rows)

    run_id = uuid.uuid4().hex
    fmt, data = formats.dump(estimator)
    artifact = store.models.artifacts.put(name, run_id, formats.filename(fmt), data, fmt)
    body = json.dumps(reference, separators=(",", ":"), allow_nan=False).encode()
    reference_ref = store.models.artifacts.put(name, run_id, REFERENCE_FILE, body, "json")
    report("artifacts", 2)

    version = store.models.register(ModelVersion(
        model=name, version=0, run_id=run_id, task=spec.task,
        estimator_class=spec.estimator_class, features=frame.features,
        params=spec.params(), metrics=metrics,
        lineage=lineage(store, spec, frame, parts.train.num_rows, parts.test.num_rows,
                        fit_seconds=round(fit_seconds, 6)),
        artifact=artifact, reference=reference_ref, created_at=datetime.now(UTC),
        classes=classes, input_kind=kind, feature_types=feature_types(frame.table,
                                                                      frame.features)))
    report("register", 1)
    return TrainingRun(run_id=run_id, model=name, version=version.version, metrics=metrics,
                       fingerprint=frame.fingerprint, rows_train=parts.train.num_rows,
                       rows_test=parts.test.num_rows, fit_seconds=fit_seconds,
                       total_seconds=time.perf_counter() - started, model_version=version)


def _fit(estimator: Any, x: Any, y: np.ndarray, spec: ModelSpec) -> None:
    """``estimator.fit``; the errors estimators raise for data they refuse (scikit-learn's
    ValueError for NaN, one class, bad label types) become a DataError naming the model."""
    try:
        estimator.fit(x, y)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"ModelSpec '{spec.name}': {spec.estimator_class} could not be fitted on the "
            f"training frame: {exc}. Fix: check the features and labels (estimators that "
            "cannot take missing values need an imputer in a Pipeline; a ttl shorter than "
            "the label times' distance to the features gives nulls)") from exc


def _predict(estimator: Any, x: Any, spec: ModelSpec) -> dict[str, np.ndarray]:
    """``prediction``, and for classifiers ``proba`` (one column per class) and
    ``probability`` (the positive class for binary, the predicted class otherwise)."""
    import numpy as np

    outputs = {PREDICTION: np.asarray(estimator.predict(x))}
    if spec.task == "classification" and callable(getattr(estimator, "predict_proba", None)):
        proba = np.asarray(estimator.predict_proba(x), dtype=np.float64)
        outputs[PROBABILITY] = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        # float32 probabilities (XGBoost) sum to 1 only within float32 precision
        outputs["proba"] = proba / proba.sum(axis=1, keepdims=True)
    return outputs


def _classes(estimator: Any) -> tuple[Any, ...]:
    """A fitted classifier's classes as JSON scalars, in ``predict_proba`` column order."""
    values = getattr(estimator, "classes_", None)
    if values is None:
        return ()
    return tuple(v.item() if hasattr(v, "item") else v for v in values)


def lineage(store: FeatureStore, spec: ModelSpec, frame: TrainingFrame, rows_train: int,
            rows_test: int, *, fit_seconds: float | None = None) -> dict[str, Any]:
    """Where a version comes from: the registry versions of the spec, its feature service
    and the views it reads, the training frame's fingerprint, the label source, the row
    counts, the split, the estimator's fit time, the repo's git commit and Headwater's
    version."""
    import headwater

    record = store.registry.record
    selection = store.resolve_features(spec.features, caller=f"ModelSpec '{spec.name}'")
    views = {r.view.name: record(FeatureView.kind, r.view.name).version
             for r in selection.requests}
    views.update({r.view.name: record(OnDemandFeatureView.kind, r.view.name).version
                  for r in selection.on_demand})
    return {
        "model_spec_version": record(ModelSpec.kind, spec.name).version,
        "feature_service": spec.features.name,
        "feature_service_version": record(FeatureService.kind, spec.features.name).version,
        "feature_views": dict(sorted(views.items())),
        "training_fingerprint": frame.fingerprint,
        "label_source": to_spec(spec.label.source),
        "label_column": spec.label.column,
        "rows": {"train": rows_train, "test": rows_test},
        "split": to_spec(spec.split),
        "fit_seconds": fit_seconds,
        "code_revision": code_revision(store.repo_path),
        "headwater_version": headwater.__version__,
    }


def code_revision(folder: Path) -> str | None:
    """The git commit checked out in ``folder`` (``git rev-parse HEAD``), or None when it is
    not in a git work tree or git is not installed. Never raises."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None
