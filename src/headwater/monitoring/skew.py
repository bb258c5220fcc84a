"""Training/serving skew: the features ``/predict`` served, against the offline recompute.

:func:`check_skew` reads the prediction log of a model over ``[start, end)``
(``store.read_predictions``), optionally a uniform sample of its rows, and, per logged model
version, recomputes the features that version was served with the offline point-in-time join
(``store.get_historical_features``) of the feature service it was trained on
(:func:`~headwater.inference.service.training_service`), for each logged entity with its
``logged_at`` as the event time and the logged request fields (on-demand features run
offline on the same request data). :func:`~headwater.monitoring.compare.compare_served`
then compares served and recomputed values feature by feature (rows matched on the join keys
and ``logged_at``; which values count as equal, and the ``missing_online`` and
``missing_offline`` counts, are defined in :mod:`headwater.monitoring.compare`), and every
feature gets one :class:`Finding` ``skew.mismatch_rate`` (subject ``model:<name>``, target
the feature), failed when its mismatch rate is above ``max_mismatch_rate`` (default 0.01).

**What a mismatch means.** ``/predict`` reads the online store at ``t'`` and logs at
``t = logged_at``, a few milliseconds later. Online, the value at ``t'`` is the latest row
delivered so far (materialized, pushed or streamed) with event time ``<= t'`` and, with a
ttl, ``>= t' - ttl`` (else null); aggregations cover events ``< t'``. The recompute is the
point-in-time join at ``t``: the latest offline row with ``ts <= t`` within the ttl,
aggregations over events ``< t`` (ARCHITECTURE.md, "Point-in-time join", "Consistency
law"). So when every row with ``ts <= t`` had been delivered online by ``t``, and nothing
else was, the two agree: a consistent system shows zero mismatches. Everything else is
skew, on purpose: stale online data (a view not materialized since newer rows arrived:
an older value served, or null once it expired), rows known online only
(``push(..., to="online")``, streamed events not written offline), rows backfilled
offline later with earlier event times (the model will train on values it was never
served), a view or on-demand function changed since serving. A row with event time
between ``t'`` and ``t`` would differ too; milliseconds make that rare.

A feature whose served and recomputed types cannot be compared (the feature's type changed
since serving) is reported as a failed finding with value None.

**Loud failures.** An unknown model is a NotFoundError. A window in which the model logged
no prediction gives one failed finding (target ``""``, value None) saying so, not an
error, so a monitor run on a quiet window alerts instead of crashing. A feature whose
served and recomputed values are all null proves nothing: its finding fails with value 0.0
and says so. Bad arguments (``start >= end``, ``sample < 1``, a rate outside [0, 1]) and
a log missing a column the version needs are DataErrors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.errors import DataError, NotFoundError
from headwater.monitoring.compare import (
    DEFAULT_EXAMPLES,
    DEFAULT_TOLERANCE,
    FeatureSkew,
    Tolerance,
    compare_served,
    incomparable,
)
from headwater.monitoring.findings import Finding, HasFindings

if TYPE_CHECKING:
    from headwater.models.base import ModelVersion
    from headwater.store import FeatureStore

CHECK = "skew.mismatch_rate"
TIME = "logged_at"
REQUEST_ID = "request_id"
VERSION = "model_version"
DEFAULT_SAMPLE = 10_000
DEFAULT_MAX_MISMATCH_RATE = 0.01


@dataclass(frozen=True)
class SkewResult(HasFindings):
    """What :func:`check_skew` found: per-feature counts (summed over the logged versions),
    the features whose types could not be compared (feature -> why) and the findings."""

    model: str
    window_start: datetime
    window_end: datetime
    rows_logged: int
    rows_compared: int
    versions: tuple[int, ...]
    features: Mapping[str, FeatureSkew]
    incomparable: Mapping[str, str]
    findings: tuple[Finding, ...]
    max_mismatch_rate: float
    tolerance: Tolerance = field(default=DEFAULT_TOLERANCE)


    def to_dict(self) -> dict[str, Any]:
        """JSON-able: datetimes as ISO 8601, non-finite floats as strings."""
        return {"model": self.model, "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(), "rows_logged": self.rows_logged,
                "rows_compared": self.rows_compared, "versions": list(self.versions),
                "features": {n: s.to_dict() for n, s in self.features.items()},
                "incomparable": dict(self.incomparable),
                "max_mismatch_rate": self.max_mismatch_rate,
                "tolerance": {"relative": self.tolerance.relative,
                              "absolute": self.tolerance.absolute},
                "findings": [f.to_dict() for f in self.findings]}


# -- the store-level check ----------------------------------------------------------------


def check_skew(store: FeatureStore, model: str, *, start: datetime, end: datetime,
               sample: int | None = DEFAULT_SAMPLE, seed: int = 0,
               max_mismatch_rate: float = DEFAULT_MAX_MISMATCH_RATE,
               tolerance: Tolerance = DEFAULT_TOLERANCE,
               examples: int = DEFAULT_EXAMPLES) -> SkewResult:
    """Served against recomputed features of ``model`` over the predictions it logged with
    ``start <= logged_at < end`` (naive times are UTC; see the module docstring).
    ``sample`` rows of the window (read whole) are drawn uniformly without replacement with
    ``seed`` (None: every row). One finding per feature, failed when its mismatch rate is
    above ``max_mismatch_rate``, with up to ``examples`` mismatched rows in its details."""
    from headwater.types import to_utc

    if not (isinstance(start, datetime) and isinstance(end, datetime)):
        raise DataError(f"check_skew: start and end must be datetimes, got {start!r} and "
                        f"{end!r}. Fix: pass datetime(2024, 1, 1, tzinfo=timezone.utc)")
    window = to_utc(start), to_utc(end)
    if window[0] >= window[1]:
        raise DataError(f"check_skew: start {window[0]} is not before end {window[1]}. Fix: "
                        "pass a window [start, end) with start < end")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample < 1):
        raise DataError(f"check_skew: sample must be a positive number of rows or None "
                        f"(every row), got {sample!r}")
    rate = max_mismatch_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise DataError(f"check_skew: max_mismatch_rate must be a fraction in [0, 1], got "
                        f"{rate!r}. Fix: pass e.g. 0.01 for 1%")
    if not isinstance(model, str) or not store.models.versions(model):
        raise NotFoundError(f"check_skew: no model {model!r} is registered in project "
                            f"'{store.project}'; models: {store.models.names() or 'none'}. "
                            "Fix: check the name")
    log = store.read_predictions(model, *window)
    logged = log.num_rows
    if sample is not None and logged > sample:
        picked = np.sort(np.random.default_rng(seed).choice(logged, sample, replace=False))
        log = log.take(pa.array(picked, pa.int64()))
    versions = tuple(int(v) for v in np.unique(log.column(VERSION).to_numpy())) if logged \
        else ()
    features: dict[str, FeatureSkew] = {}
    bad: dict[str, str] = {}
    views: dict[str, str] = {}
    for number in versions:
        rows = log.filter(pc.equal(log.column(VERSION), number))
        version = store.models.get(f"{model}:{number}")
        compared, reasons, owners = _check_version(store, version, rows, tolerance, examples)
        views.update(owners)
        bad.update({name: why for name, why in reasons.items() if name not in bad})
        for name, skew in compared.items():
            earlier = features.get(name)
            features[name] = skew if earlier is None else earlier.merged(skew, examples)
    subject = f"model:{model}"
    findings = tuple(_finding(subject, name, features.get(name), bad.get(name),
                              view=views.get(name, "?"), threshold=float(rate),
                              versions=versions, window=window)
                     for name in dict.fromkeys([*features, *bad]))
    if not logged:
        findings = (Finding(
            CHECK, subject, "", None, float(rate), True,
            f"model '{model}' logged no prediction in [{window[0].isoformat()}, "
            f"{window[1].isoformat()}): nothing to compare. Fix: check that the server logs "
            "predictions (settings.predictions_path) and that the model gets traffic, or "
            "widen the window", window_start=window[0], window_end=window[1]),)
    return SkewResult(model, window[0], window[1], logged, log.num_rows, versions, features,
                      bad, findings, float(rate), tolerance)


def _check_version(store: FeatureStore, version: ModelVersion, rows: pa.Table,
                   tolerance: Tolerance, examples: int
                   ) -> tuple[dict[str, FeatureSkew], dict[str, str], dict[str, str]]:
    """The logged ``rows`` of one version against their recompute: per-feature skew, the
    incomparable features (name -> why) and the view of each feature."""
    from headwater.inference.online import serving_plan

    plan = serving_plan(store, version)
    selection = store.resolve_features(plan.service)
    owners = {name: r.view.name for r in selection.requests for name in r.output_names}
    owners.update({name: r.view.name for r in selection.on_demand for name in r.output_names})
    join_keys = list(dict.fromkeys(k for r in selection.requests for k in r.view.join_keys))
    request, features = list(plan.request_fields), list(plan.fetched)
    label = f"model '{version.model}' version {version.version}"
    clash = [n for n in (*join_keys, *request, *features) if n in (TIME, REQUEST_ID)]
    if clash:
        raise DataError(f"check_skew: {label} has a join key, request field or feature "
                        f"named '{clash[0]}', like a column of the prediction log, which the "
                        "skew check cannot tell apart. Fix: rename it")
    keys, inputs, extra = logged_names([join_keys, version.features,
                                        [f for f in request if f not in version.features]])
    where = {**extra, **inputs, **keys}
    missing = [n for n in (*join_keys, *request, *features) if where[n] not in rows.column_names]
    if missing:
        raise DataError(f"check_skew: the prediction log of {label} has no column "
                        f"'{where[missing[0]]}' (for '{missing[0]}'); it has "
                        f"{rows.column_names}. Fix: check that this version's server wrote "
                        "the log under settings.predictions_path")
    entity_df = pa.table([rows.column(where[n]) for n in (*join_keys, *request)]
                         + [rows.column(TIME)], names=[*join_keys, *request, TIME])
    recomputed = store.get_historical_features(entity_df, plan.service,
                                               timestamp_field=TIME).to_arrow()
    served = pa.table([rows.column(where[n]) for n in (*join_keys, *features)]
                      + [rows.column(TIME), rows.column(REQUEST_ID)],
                      names=[*join_keys, *features, TIME, REQUEST_ID])
    reasons = {name: why for name in features if (why := incomparable(
        served.schema.field(name).type, recomputed.schema.field(name).type)) is not None}
    compared = compare_served(served, recomputed, keys=[*join_keys, TIME],
                              features=[f for f in features if f not in reasons],
                              tolerance=tolerance, examples=examples, context=[REQUEST_ID])
    return compared, reasons, owners


def logged_names(groups: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    """The column each name is stored under in the prediction log, per group (entity keys,
    model inputs, other request fields: the log's order), by the log's own rule
    (:func:`headwater.inference.log.logged_name`)."""
    from headwater.inference.log import logged_name

    taken: set[str] = set()
    out = []
    for group in groups:
        names = {}
        for name in group:
            names[name] = column = logged_name(name, taken)
            taken.add(column)
        out.append(names)
    return out


def _finding(subject: str, name: str, skew: FeatureSkew | None, reason: str | None, *,
             view: str, threshold: float, versions: tuple[int, ...],
             window: tuple[datetime, datetime]) -> Finding:
    details: dict[str, Any] = {"feature_view": view, "versions": list(versions)}
    if skew is not None:
        details.update({k: v for k, v in skew.to_dict().items() if k != "feature"})
    what = f"feature '{name}' (view '{view}')"
    if reason is not None or skew is None or skew.mismatch_rate is None:
        return Finding(CHECK, subject, name, None, threshold, True,
                       f"{what} could not be compared with its offline recompute: {reason}. "
                       "Fix: its type changed since it was served; retrain and redeploy the "
                       "model on the view as it is now", details={**details, "reason": reason},
                       window_start=window[0], window_end=window[1])
    rate = skew.mismatch_rate
    counts = (f"{skew.mismatches} of {skew.compared} served values ({rate:.2%}) differ from "
              f"the offline point-in-time recompute ({skew.missing_online} null online only, "
              f"{skew.missing_offline} null offline only)")
    if skew.both_null == skew.compared:
        message = (f"{what}: every served and recomputed value is null, so the comparison "
                   "proves nothing. Fix: check the view's data, ttl and materialization")
    elif rate > threshold:
        message = (f"{what}: {counts}, above the {threshold:.2%} threshold. Fix: check that "
                   "materialization or streaming keeps the online store up to date, that no "
                   "rows are pushed online only or backfilled offline later, and that the "
                   "view did not change since serving; the details show examples")
    else:
        message = f"{what}: {counts}, within the {threshold:.2%} threshold"
    return Finding(CHECK, subject, name, rate, threshold,
                   rate > threshold or skew.both_null == skew.compared, message,
                   details=details, window_start=window[0], window_end=window[1])
