"""Monitoring: drift between a reference and a current sample of data.

:func:`headwater.detect_drift` (in :mod:`headwater.monitoring.drift`) compares two frames
column by column and returns a :class:`~headwater.monitoring.report.DriftReport`;
:mod:`~headwater.monitoring.statistics` holds the statistics as plain numpy and
:mod:`~headwater.monitoring.columns` decides the kind of each column. These modules import
numpy (and scipy when a p-value is computed); ``import headwater`` does not load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from headwater.monitoring.report import DriftReport


def detect_drift(reference: Any, current: Any, columns: Sequence[str] | None = None, *,
                 thresholds: Mapping[str, float] | None = None,
                 effects: Mapping[str, str] | None = None, fdr: float = 0.01,
                 threads: int = 2) -> DriftReport:
    """Which columns of ``current`` (pandas, polars or Arrow) drifted from ``reference``,
    as a :class:`~headwater.monitoring.report.DriftReport`: see
    :mod:`headwater.monitoring.drift` for the tests, the decision rule and its thresholds.

    ``columns`` (default: every testable column of the reference); ``thresholds`` and
    ``effects`` keyed by column name or kind (``"numeric"``, ``"categorical"``); ``fdr`` the
    false discovery rate across columns; ``threads`` columns worked on at once."""
    from headwater.monitoring.drift import detect_drift as detect

    return detect(reference, current, columns, thresholds=thresholds, effects=effects,
                  fdr=fdr, threads=threads)
