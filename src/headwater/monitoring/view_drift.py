"""Drift of a feature view's new data: one time window against the window before it.

:func:`check_view_drift` reads the rows of a feature view whose event time is in the current
window ``[start, end)`` and in the reference window ``[start - reference, start)`` (by
default as long as the current one) from its batch source, through the offline engine, and
compares them column by column with :func:`headwater.monitoring.drift.detect_drift`: the
same tests, decision rule (Benjamini-Hochberg across the view's columns at ``fdr`` and an
effect size at least its threshold) and defaults as ``hw.detect_drift``. One finding
``drift.feature`` per feature (value: the effect size; details: test, p-values, counts), and
a mergeable profile of the current window's rows (:mod:`headwater.monitoring.profile`),
binned on the ``edges`` given (a monitor passes those of its previous run, so the profiles of
its runs merge), else on the reference window's.

A window without rows cannot be compared: it gives one failed finding with value None that
says which window was empty (a volume problem the quality check reports too). A model's
inputs are better compared with its training set (:mod:`~headwater.monitoring.
reference_drift`); this check watches data that no model may read yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError
from headwater.monitoring.findings import Finding, HasFindings

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.monitoring.profile import Profile
    from headwater.store import FeatureStore

CHECK = "drift.feature"


@dataclass(frozen=True)
class ViewDriftResult(HasFindings):
    """What :func:`check_view_drift` compared: the row counts of both windows, the
    findings, and the profile of the current window (None when a window was empty)."""

    view: str
    reference_start: datetime
    window_start: datetime
    window_end: datetime
    reference_rows: int
    current_rows: int
    findings: tuple[Finding, ...]
    profile: Profile | None = field(default=None, compare=False)


    def to_dict(self) -> dict[str, Any]:
        """JSON-able: times as ISO 8601."""
        return {"view": self.view, "reference_start": self.reference_start.isoformat(),
                "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(),
                "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "findings": [f.to_dict() for f in self.findings]}


def check_view_drift(store: FeatureStore, view_name: str, *, start: datetime, end: datetime,
                     reference: timedelta | None = None,
                     thresholds: Mapping[str, float] | None = None, fdr: float = 0.01,
                     edges: Mapping[str, Sequence[float]] | None = None) -> ViewDriftResult:
    """Drift of feature view ``view_name`` in ``[start, end)`` against the ``reference``
    long window before it (module docstring). ``thresholds`` by column or kind, as for
    ``hw.detect_drift``. NotFoundError for an unknown view; DataError for an empty or
    reversed window."""
    from headwater.monitoring.drift import detect_drift
    from headwater.monitoring.profile import profile
    from headwater.types import to_utc

    start, end = to_utc(start), to_utc(end)
    if start >= end:
        raise DataError(f"check_view_drift: start {start} is not before end {end}. Fix: "
                        "pass a window [start, end) with start < end")
    length = reference if reference is not None else end - start
    if length <= timedelta(0):
        raise DataError(f"check_view_drift: the reference window {length} is not positive. "
                        "Fix: pass reference=timedelta(days=1)")
    view = store.get_feature_view(view_name)
    subject = f"feature_view:{view_name}"
    columns = [f.name for f in view.schema or ()] if view.is_aggregated else list(
        view.feature_names)
    before = _rows(store, view, start - length, start, columns)
    now = _rows(store, view, start, end, columns)
    empty = [(name, rows) for name, rows in (("reference", before), ("current", now))
             if rows.num_rows == 0]
    if empty:
        which = " and ".join(f"the {name} window" for name, _ in empty)
        return ViewDriftResult(view_name, start - length, start, end, before.num_rows,
                               now.num_rows, (Finding(
                                   CHECK, subject, "", None, None, True,
                                   f"{which} of feature view '{view_name}' holds no rows, so "
                                   "its drift cannot be measured. Fix: check that the "
                                   "pipeline writing its source ran, or widen the window",
                                   details={"reference_start": (start - length).isoformat()},
                                   window_start=start, window_end=end),))
    report = detect_drift(before, now, columns, thresholds=thresholds, fdr=fdr)
    findings = tuple(Finding(
        CHECK, subject, c.column, c.statistic, c.threshold, c.drifted,
        (f"'{c.column}' drifted: {c.effect} {c.statistic:.4g} >= {c.threshold:.4g}, "
         f"adjusted p {c.p_adjusted:.3g} <= {fdr}" if c.drifted else
         f"'{c.column}' did not drift: {c.effect} {c.statistic:.4g} (threshold "
         f"{c.threshold:.4g}), adjusted p {c.p_adjusted:.3g}"),
        details={"test": c.test, "effect": c.effect, "p_value": c.p_value,
                 "p_adjusted": c.p_adjusted, "reference_count": c.reference_count,
                 "current_count": c.current_count, "reference_nulls": c.reference_nulls,
                 "current_nulls": c.current_nulls,
                 "reference_start": (start - length).isoformat()},
        window_start=start, window_end=end)
        for c in report.columns)
    kept = [c.column for c in report.columns]
    numeric = {c.column for c in report.columns if c.kind == "numeric"}
    bins = {**profile(before, kept).edges(),
            **{k: list(v) for k, v in (edges or {}).items() if k in numeric}}
    return ViewDriftResult(view_name, start - length, start, end, before.num_rows,
                           now.num_rows, findings, profile(now, kept, edges=bins))


def _rows(store: FeatureStore, view: Any, start: datetime, end: datetime,
          columns: list[str]) -> pa.Table:
    """The view's ``columns`` of its rows with event time in ``[start, end)``."""
    reading = dataclasses.replace(view, aggregations=()) if view.is_aggregated else view
    table = store.offline.read_events(reading, start, end).read_all()
    return table.select(columns)
