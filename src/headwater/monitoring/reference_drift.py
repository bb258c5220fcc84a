"""Drift of a model's served inputs and predictions against its training reference.

Each model version stores statistics of its training rows (:mod:`headwater.models.reference`)
per input feature and of the ``prediction`` and ``probability`` it gave on its test rows: a
histogram over the training deciles (numeric) or the top categories and an ``other`` count
(categorical). :func:`drift_against_reference` compares a table with such a reference, column
by column; :func:`check_model_drift` does it for what a model logged in a time window.

**Buckets** fixed by the reference, over which each column is counted:

* numeric *bins*: the reference histogram's. Current values are binned by its edges with
  :func:`headwater.monitoring.profile.profile`, the code that built the reference; values
  below the first edge count in the first bin, above the last edge in the last, so the bins
  are the training deciles open at both ends (as ``detect_drift``'s PSI bins). Out-of-range
  counts are in the details (``current_below``, ``current_above``); values outside the
  training range are the quality check's finding (``quality.range``).
* numeric *values*: a constant reference (one edge, nothing to bin), and an integer column
  whose only values are ``min`` and ``min + 1`` (binary flags, 0/1 class predictions, which
  the deciles put in one bin; their counts follow exactly from the reference mean), get one
  bucket per reference value and one for any other value.
* *categories*: the reference's top categories and one ``other`` bucket for every other
  value, values never seen in training included (the most frequent are listed in the
  details, ``current_outside_reference``).

Nulls, NaN and infinities stay out of the buckets, as in the reference; their counts and
rates are in the details. A changed null rate is the quality check's finding
(``quality.null_rate``), not drift.

**Test, effect, decision.** The p-value is Pearson's chi-squared test of homogeneity of the
2 x k table of reference and current counts (:func:`headwater.monitoring.statistics.
chi_squared`, rare buckets pooled), not a goodness-of-fit test against the reference
proportions: the reference is a sample too, often smaller than a window of logs, and taking
its proportions as exact flags its noise (4,000 training and 20,000 logged rows of one
normal distribution: p < 0.01 in 94% of samples by goodness of fit, 1% by homogeneity).
The effect is the PSI (numeric columns) or the Jensen-Shannon distance (categorical). As in
:mod:`headwater.monitoring.drift`, the p-values of one comparison are adjusted with
Benjamini-Hochberg and a column drifted when its adjusted p-value is at most ``fdr`` **and**
its effect at least its threshold; default thresholds are ``detect_drift``'s (PSI 0.005,
Jensen-Shannon 0.03), chosen for the same ten decile bins; ``thresholds=`` overrides them
by column name or kind (``numeric``, ``categorical``).

**Findings**, one per column: ``drift.feature`` (target the feature) or ``drift.prediction``
(target ``prediction`` / ``probability``), value the effect; details: the test, p-values,
bucket counts (with ``edges`` or ``buckets``), values compared, nulls and null rates.
**Loud failures**: a column missing from the current data, a changed type, a current column
without values (all null) and a reference without values give failed findings with value
None naming the column and the fix (``time`` and ``other`` columns an ``info`` finding: not
tested); an empty current table, an unknown column or key and a bad ``fdr`` a DataError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.errors import DataError, NotFoundError
from headwater.models.base import PREDICTION, PROBABILITY
from headwater.models.reference import FORMAT_VERSION
from headwater.monitoring import statistics as st
from headwater.monitoring.columns import CATEGORICAL, KINDS, NUMERIC, family
from headwater.monitoring.drift import DEFAULT_THRESHOLDS
from headwater.monitoring.findings import Finding, HasFindings
from headwater.monitoring.profile import Profile, reference_profile

if TYPE_CHECKING:
    from headwater.models.base import ModelVersion
    from headwater.monitoring.profile import NumericProfile
    from headwater.store import FeatureStore

FEATURE_CHECK = "drift.feature"
PREDICTION_CHECK = "drift.prediction"
OUTPUTS = (PREDICTION, PROBABILITY)
EFFECTS = {NUMERIC: "psi", CATEGORICAL: "jensen_shannon"}
MEASURES = {"psi": st.psi, "jensen_shannon": st.jensen_shannon}
OTHER = "<other>"
EXAMPLES = 10  # current values outside the reference's categories listed, at most


@dataclass(frozen=True)
class ModelDriftResult(HasFindings):
    """What :func:`check_model_drift` found for ``model`` in ``[window_start, window_end)``:
    the ``rows`` it logged there, per model version (``versions``), and the findings."""

    model: str
    window_start: datetime
    window_end: datetime
    rows: int
    versions: Mapping[int, int]
    findings: tuple[Finding, ...]
    fdr: float
    profiles: Mapping[int, Profile] = field(default_factory=dict)
    """Per version, the profile of what it logged in the window (inputs and outputs under
    their names), binned with its reference's edges, so windows merge."""


    def to_dict(self) -> dict[str, Any]:
        """JSON-able: times as ISO 8601, version numbers as string keys."""
        return {"model": self.model, "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(), "rows": self.rows,
                "versions": {str(v): n for v, n in self.versions.items()}, "fdr": self.fdr,
                "findings": [f.to_dict() for f in self.findings]}


def drift_against_reference(reference: Mapping[str, Any], current: pa.Table, *, subject: str,
                            columns: Sequence[str] | None = None,
                            thresholds: Mapping[str, float] | None = None, fdr: float = 0.01,
                            window_start: datetime | None = None,
                            window_end: datetime | None = None) -> tuple[Finding, ...]:
    """``current`` (Arrow, pandas or polars: features by name, the model's ``prediction``
    and ``probability``) against ``reference`` (the dict
    :func:`~headwater.models.reference.reference_statistics` wrote), one finding per column
    (module docstring). ``columns`` default: every feature of the reference and the outputs
    it has statistics of. ``thresholds`` are keyed by column name or kind."""
    from headwater.offline.frames import to_arrow

    _check_reference(reference)
    current = to_arrow(current, "drift_against_reference current")
    if current.num_rows == 0:
        raise DataError(f"drift_against_reference ({subject}): the current data has no rows. "
                        "Fix: pass a window with data")
    known = [*reference["features"], *(o for o in OUTPUTS if reference.get(o) is not None)]
    if isinstance(columns, str):
        raise DataError(f"drift_against_reference: columns={columns!r} is one string. Fix: "
                        f"pass a list, e.g. columns=[{columns!r}]")
    unknown = [c for c in columns or () if c not in known]
    if unknown:
        raise DataError(f"drift_against_reference: columns {unknown} have no reference "
                        f"statistics (it has {known}). Fix: name columns of the reference")
    names = list(columns) if columns is not None else known
    _check_options(thresholds, fdr, names)
    return _compare(reference, current, names, subject=subject, thresholds=thresholds or {},
                    fdr=fdr, window=(window_start, window_end))


def check_model_drift(store: FeatureStore, model: str, *, start: datetime, end: datetime,
                      thresholds: Mapping[str, float] | None = None, fdr: float = 0.01,
                      predictions: bool = True) -> ModelDriftResult:
    """Feature (and, with ``predictions``, prediction) drift of what ``model`` logged with
    ``start <= logged_at < end`` (naive times are UTC), per model version against that
    version's reference: logged inputs are read back under their feature names
    (:func:`headwater.inference.log.logged_name`), and Benjamini-Hochberg runs across the
    columns of one version. Findings carry ``model_version`` in their details. A window
    without predictions gives one failed ``drift.feature`` finding (target ``""``), as does
    a version without reference statistics; a reference without prediction statistics gives
    an ``info`` ``drift.prediction`` finding. NotFoundError for an unknown model, or a
    version whose feature service (needed for the log's column names) the registry lost."""
    from headwater.types import to_utc

    if not (isinstance(start, datetime) and isinstance(end, datetime)):
        raise DataError(f"check_model_drift: start and end must be datetimes, got {start!r} "
                        f"and {end!r}. Fix: pass datetime(2024, 1, 1, tzinfo=timezone.utc)")
    window = to_utc(start), to_utc(end)
    if window[0] >= window[1]:
        raise DataError(f"check_model_drift: start {window[0]} is not before end "
                        f"{window[1]}. Fix: pass a window [start, end) with start < end")
    registered = store.models.versions(model) if isinstance(model, str) else []
    if not registered:
        raise NotFoundError(f"check_model_drift: no model {model!r} is registered in project "
                            f"'{store.project}'; models: {store.models.names() or 'none'}. "
                            "Fix: check the name")
    _check_options(thresholds, fdr, [*(f for m in registered for f in m.features), *OUTPUTS])
    subject = f"model:{model}"
    log = store.read_predictions(model, *window)
    numbers = log.column("model_version").to_numpy() if log.num_rows else np.empty(0, int)
    versions = {int(v): int(n) for v, n in zip(*np.unique(numbers, return_counts=True),
                                                strict=True)}
    findings: list[Finding] = []
    profiles: dict[int, Profile] = {}
    if not versions:
        findings.append(Finding(
            FEATURE_CHECK, subject, "", None, None, True,
            f"model '{model}' logged no prediction in [{window[0].isoformat()}, "
            f"{window[1].isoformat()}): no drift can be measured. Fix: check that the "
            "server logs predictions (settings.predictions_path) and that the model gets "
            "traffic, or widen the window", window_start=window[0], window_end=window[1]))
    for number in versions:
        rows = log.filter(pc.equal(log.column("model_version"), number))
        found, profiled = _check_version(
            store, store.models.get(f"{model}:{number}"), rows, subject=subject,
            thresholds=thresholds or {}, fdr=fdr, predictions=predictions, window=window)
        findings += found
        if profiled is not None:
            profiles[number] = profiled
    return ModelDriftResult(model, window[0], window[1], log.num_rows, versions,
                            tuple(findings), fdr, profiles)


def load_reference(store: FeatureStore, version: ModelVersion) -> dict[str, Any] | None:
    """The reference statistics of ``version`` (None when it has none), read from the
    artifact store, which refuses bytes that do not match the recorded SHA-256."""
    if version.reference is None:
        return None
    reference: dict[str, Any] = json.loads(store.models.artifacts.get(version.reference))
    return reference


def _check_version(store: FeatureStore, version: ModelVersion, rows: pa.Table, *,
                   subject: str, thresholds: Mapping[str, float], fdr: float,
                   predictions: bool, window: tuple[datetime, datetime]
                   ) -> tuple[list[Finding], Profile | None]:
    """The findings of one version's logged ``rows`` against its reference, and the rows'
    profile on the reference's edges."""
    from headwater.inference.service import training_service
    from headwater.monitoring.skew import logged_names

    label = f"model '{version.model}' version {version.version}"
    detail = {"model_version": version.version}
    reference = load_reference(store, version)
    if reference is None:
        return [Finding(FEATURE_CHECK, subject, "", None, None, True,
                        f"{label} has no reference statistics, so its drift cannot be "
                        "measured. Fix: retrain it to store them", details=detail,
                        window_start=window[0], window_end=window[1])], None
    selection = store.resolve_features(training_service(store, version))
    keys = list(dict.fromkeys(k for r in selection.requests for k in r.view.join_keys))
    where = logged_names([keys, version.features])[1]
    names = list(version.features)
    columns = {n: rows.column(where[n]) for n in names if where[n] in rows.column_names}
    out: list[Finding] = []
    for output in OUTPUTS if predictions else ():
        if reference.get(output) is not None:
            names.append(output)
            if output in rows.column_names:
                columns[output] = rows.column(output)
        elif output == PREDICTION or output in rows.column_names:
            out.append(Finding(
                PREDICTION_CHECK, subject, output, None, None, False,
                f"{label}: its reference holds no statistics of the {output}, so its drift "
                "is not measured. Fix: retrain the model", severity="info", details=detail,
                window_start=window[0], window_end=window[1]))
    current = pa.table(columns) if columns else pa.table({"_": pa.nulls(rows.num_rows)})
    return [*_compare(reference, current, names, subject=subject, thresholds=thresholds,
                      fdr=fdr, window=window, details=detail), *out], reference_profile(
        reference, pa.table(columns) if columns else pa.table({}))


def _compare(reference: Mapping[str, Any], current: pa.Table, names: Sequence[str], *,
             subject: str, thresholds: Mapping[str, float], fdr: float,
             window: tuple[datetime | None, datetime | None],
             details: Mapping[str, Any] | None = None) -> tuple[Finding, ...]:
    """The findings of ``names`` (features, or ``prediction``/``probability`` when the
    reference has them), Benjamini-Hochberg across the measured ones (module docstring)."""
    _check_reference(reference)
    outputs = [n for n in names if n in OUTPUTS and reference.get(n) is not None]
    if clash := [n for n in outputs if n in reference["features"]]:
        raise DataError(f"reference drift ({subject}): feature '{clash[0]}' is named like a "
                        "model output, so the two cannot be told apart. Fix: rename it")
    measured: list[tuple[str, str, Any]] = []  # (name, kind, measurement or reason)
    for name in names:
        stats = reference[name] if name in outputs else reference["features"].get(name)
        kind = stats.get("kind") if isinstance(stats, Mapping) else None
        column = current.column(name) if name in current.column_names else None
        measured.append((name, str(kind), _measure(name, stats, column)))
    tested = [m for _, _, m in measured if isinstance(m, dict)]
    adjusted = iter(st.benjamini_hochberg(np.array([m["p_value"] for m in tested], float)))
    out = []
    for name, kind, m in measured:
        check = PREDICTION_CHECK if name in outputs else FEATURE_CHECK
        what = f"{'output' if name in outputs else 'feature'} '{name}'"
        base = {**(details or {}), "kind": kind}
        if not isinstance(m, dict):
            limit = None if kind not in KINDS else _limit(name, kind, thresholds)[1]
            out.append(Finding(check, subject, name, None, limit, m[1], f"{what}: {m[0]}",
                               "warning" if m[1] else "info", window[0], window[1], base))
            continue
        effect, limit = _limit(name, kind, thresholds)
        value = float(MEASURES[effect](m["reference_counts"], m["current_counts"]))
        p_adjusted = float(next(adjusted))
        drifted = bool(p_adjusted <= fdr and value >= limit)
        verdict = ("drifted from its training reference. Fix: check the data behind it "
                   "upstream, and retrain the model if the change is real" if drifted else
                   "no drift" + ("" if p_adjusted <= fdr else " (not significant)"))
        out.append(Finding(check, subject, name, value, limit, drifted,
                           f"{what}: {effect} {value:.4g} (threshold {limit:g}), adjusted "
                           f"p-value {p_adjusted:.3g} (fdr {fdr:g}): {verdict}",
                           window_start=window[0], window_end=window[1],
                           details={**base, **_json(m), "effect": effect, "test": "chi2",
                                    "p_adjusted": p_adjusted, "fdr": fdr}))
    return tuple(out)


def _measure(name: str, stats: Any, column: pa.ChunkedArray | None
             ) -> dict[str, Any] | tuple[str, bool]:
    """The bucket counts of one column and its test, or why it cannot be measured and
    whether that fails."""
    if not isinstance(stats, Mapping):
        return ("has no statistics in the training reference. Fix: retrain the model", True)
    if (kind := stats.get("kind")) not in KINDS:
        return (f"not tested for drift: its reference kind is {kind!r} (only numeric and "
                "categorical columns are)", False)
    problem = _problem(name, stats, column)
    if problem is not None or column is None:
        return (problem or "", True)
    measured = _numeric(stats, column) if kind == NUMERIC else _categorical(stats, column)
    if isinstance(measured, str):
        return (measured, True)
    total = len(column)
    ref, cur = measured["reference_counts"], measured["current_counts"]
    if cur.sum() == 0:
        return (f"none of its {total} current values is finite, so no drift can be "
                "measured. Fix: check the data behind it", True)
    statistic, p_value = st.chi_squared(ref, cur)
    nulls = total - int(cur.sum()) - measured.pop("current_infinite", 0)
    return {**measured, "p_value": p_value, "test_statistic": statistic,
            "reference_count": int(ref.sum()), "current_count": int(cur.sum()),
            "reference_nulls": int(stats["nulls"]), "current_nulls": nulls,
            "reference_null_rate": stats["nulls"] / stats["count"] if stats["count"] else 0.0,
            "current_null_rate": nulls / total}


def _problem(name: str, stats: Mapping[str, Any], column: pa.ChunkedArray | None
             ) -> str | None:
    """Why ``column`` cannot be compared with ``stats``: missing, all null, another type."""
    if column is None:
        return (f"missing from the current data. Fix: log or pass a column '{name}' (its "
                "training reference has statistics of it)")
    trained = "numeric" if stats["kind"] == NUMERIC else (
        "bool" if stats["type"] == "bool" else "string")
    if column.null_count == len(column):
        return (f"all {len(column)} current values are null, so no drift can be measured. "
                "Fix: check the data behind it (the quality checks report its null rate)")
    if family(column.type) != trained:
        return (f"changed type from {stats['type']} (training) to {column.type}. Fix: cast "
                "it back to the training type, or retrain the model on the new type")
    return None


def _numeric(stats: Mapping[str, Any], column: pa.ChunkedArray) -> dict[str, Any] | str:
    from headwater.monitoring.profile import profile

    histogram = stats.get("histogram")
    if not histogram or not histogram["edges"]:
        return ("its training reference has no values (all null), so no drift can be "
                "measured. Fix: drop the feature from the model, or retrain on data with values")
    edges, counts = list(histogram["edges"]), np.array(histogram["counts"], np.int64)
    now = cast("NumericProfile", profile(pa.table({"c": column}), edges={"c": edges})["c"])
    infinite = {"current_infinite": now.infinite}
    binary = str(stats["type"]).startswith(("int", "uint")) and stats["max"] - stats["min"] == 1
    if len(edges) > 1 and not binary:
        cur = np.array(now.counts, np.int64)
        cur[0] += now.below
        cur[-1] += now.above
        return {"mode": "bins", "edges": edges, "reference_counts": counts, "current_counts": cur,
                "current_below": now.below, "current_above": now.above, **infinite}
    total = int(counts.sum())
    values = [float(stats["min"]), float(stats["max"])] if binary else [float(edges[0])]
    ones = round((stats["mean"] - stats["min"]) * total) if binary else total
    ref = np.array([total - ones, ones, 0] if binary else [total, 0], np.int64)
    data = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    finite = data[np.isfinite(data)]
    cur = np.array([np.count_nonzero(finite == v) for v in values], np.int64)
    return {"mode": "values", "buckets": [*map(str, values), OTHER], "reference_counts": ref,
            "current_counts": np.append(cur, len(finite) - cur.sum()), **infinite}


def _categorical(stats: Mapping[str, Any], column: pa.ChunkedArray) -> dict[str, Any]:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    top = [t["value"] for t in stats["top"]]
    ref = np.array([t["count"] for t in stats["top"]] + [stats["other"]], np.int64)
    counts = pc.value_counts(column.drop_null())
    values, numbers = counts.field("values"), counts.field("counts").to_numpy()
    at = pc.index_in(values, value_set=pa.array(top, values.type))
    outside = at.is_null().to_numpy(zero_copy_only=False)
    cur = np.bincount(pc.fill_null(at, len(top)).to_numpy(), weights=numbers,
                      minlength=len(top) + 1).astype(np.int64)
    order = np.argsort(-numbers[outside], kind="stable")[:EXAMPLES]
    extra = values.filter(pa.array(outside)).to_pylist()
    return {"mode": "categories", "buckets": [*map(str, top), OTHER], "reference_counts": ref,
            "current_counts": cur, "current_outside_reference": [
                [extra[i], int(numbers[outside][i])] for i in order]}


def _limit(name: str, kind: str, thresholds: Mapping[str, float]) -> tuple[str, float]:
    """The effect of a column and its threshold: by its name, else its kind, else default."""
    effect = EFFECTS[kind]
    return effect, float(thresholds.get(name, thresholds.get(kind, DEFAULT_THRESHOLDS[effect])))


def _check_options(thresholds: Mapping[str, float] | None, fdr: float,
                   names: Sequence[str]) -> None:
    if isinstance(fdr, bool) or not isinstance(fdr, int | float) or not 0 < fdr < 1:
        raise DataError(f"reference drift: fdr={fdr!r} is not within (0, 1). Fix: pass a "
                        "false discovery rate such as 0.01")
    unknown = [k for k in thresholds or {} if k not in names and k not in KINDS]
    if unknown:
        raise DataError(f"reference drift: thresholds= names {unknown}, neither columns "
                        f"{sorted(set(names))} nor kinds {list(KINDS)}. Fix: key thresholds "
                        "by column name or kind")


def _check_reference(reference: Mapping[str, Any]) -> None:
    if not isinstance(reference, Mapping) or reference.get("version") != FORMAT_VERSION:
        raise DataError(f"reference drift: the reference is not statistics of format "
                        f"{FORMAT_VERSION}. Fix: pass the dict reference_statistics wrote")


def _json(measured: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in measured.items()}
