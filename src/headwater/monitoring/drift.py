"""``detect_drift(reference, current)``: which columns changed distribution, and by how much.

Each column gets a **significance test** and an **effect size**, and is *drifted* only when
both agree:

* numeric columns: the two-sample Kolmogorov-Smirnov test (asymptotic p-value: scipy's
  ``kstwo`` up to an effective sample size of 10,000, the limiting Kolmogorov distribution
  above it, :func:`~headwater.monitoring.statistics.ks_p_value`) and, as the
  effect, the Wasserstein distance divided by the reference standard deviation (in units of
  the reference spread: a mean shift of ``d`` standard deviations scores about ``d``; a
  standard deviation scaled by ``s`` scores about ``0.8 * |s - 1|`` for normal data).
  ``psi`` and ``jensen_shannon`` over ten reference-decile bins are available instead.
* categorical columns: Pearson's chi-squared test of homogeneity (rare categories pooled) and,
  as the effect, the Jensen-Shannon distance (base 2, within [0, 1]); ``psi`` is available.

**Decision rule.** Across all tested columns the p-values are adjusted with
Benjamini-Hochberg; a column is drifted when its adjusted p-value is at most ``fdr``
(default 0.01: on average at most 1 in 100 flagged columns is a false discovery) **and** its
effect size is at least its threshold. The test guards against noise at small samples; the
effect threshold guards against trivially small changes that any large sample makes
significant. So one rule serves every sample size: at a few hundred rows a shift must be
large to pass the test, at a million rows it must be large enough to matter.

**Default thresholds** (:data:`DEFAULT_THRESHOLDS`), chosen against sampling noise at
100,000 rows, where a normalized Wasserstein distance between two samples of the same normal
distribution is about 0.004 and a Jensen-Shannon distance between two samples of one
50-level distribution at most about 0.018:

* ``wasserstein`` 0.05: half of a 0.1 standard deviation mean shift (0.1), below a 10%
  change of the standard deviation (about 0.08), more than ten times the noise.
* ``jensen_shannon`` 0.03: below moving 15% of a Zipf-ranked 10-50 level mix toward the
  reversed ranking (0.10-0.15; 0.046 even for a flatter 1/sqrt(rank) ranking).
* ``psi`` 0.005: the PSI of a 0.1 standard deviation mean shift over reference deciles is
  about 0.010, of the category change above 0.06-0.15 (0.012 for the flatter ranking), so
  the customary 0.1 "moderate" cut would miss most of them; noise at 100,000 rows is about
  0.0002 over deciles and at most 0.002 over 50 levels.
* numeric ``jensen_shannon`` (over deciles) uses 0.03 too: a 0.1 standard deviation mean
  shift scores about 0.042, noise at 100,000 rows about 0.005.

``thresholds`` overrides them by column name or by kind (``"numeric"``, ``"categorical"``),
the column name first; ``effects`` chooses the effect per column or kind the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from headwater.errors import DataError
from headwater.monitoring import statistics as st
from headwater.monitoring.columns import (
    CATEGORICAL,
    KINDS,
    NUMERIC,
    category_counts,
    kind_of,
    numeric_sample,
    select,
)
from headwater.monitoring.report import ColumnDrift, DriftReport

DEFAULT_EFFECTS = {NUMERIC: "wasserstein", CATEGORICAL: "jensen_shannon"}
EFFECTS = {NUMERIC: ("wasserstein", "psi", "jensen_shannon"),
           CATEGORICAL: ("jensen_shannon", "psi")}
DEFAULT_THRESHOLDS = {"wasserstein": 0.05, "jensen_shannon": 0.03, "psi": 0.005}
TESTS = {NUMERIC: "ks", CATEGORICAL: "chi2"}
#: bins (reference quantiles) for PSI and Jensen-Shannon on numeric columns
BINS = 10


def detect_drift(reference: Any, current: Any, columns: Sequence[str] | None = None, *,
                 thresholds: Mapping[str, float] | None = None,
                 effects: Mapping[str, str] | None = None,
                 fdr: float = 0.01, threads: int = 2) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column (module docstring).

    Both are pandas or polars DataFrames or Arrow tables; ``columns`` defaults to every
    testable column of the reference. ``threads`` numeric columns are worked on at once
    (numpy releases the GIL while sorting). Returns a :class:`DriftReport`."""
    from headwater.offline.frames import to_arrow

    ref = to_arrow(reference, "detect_drift reference")
    cur = to_arrow(current, "detect_drift current")
    for table, side in ((ref, "reference"), (cur, "current")):
        if table.num_rows == 0:
            raise DataError(f"detect_drift: the {side} data has no rows. Fix: pass a "
                            f"non-empty {side} window")
    if not 0 < fdr < 1:
        raise DataError(f"detect_drift: fdr={fdr} is not within (0, 1). Fix: pass a false "
                        "discovery rate such as 0.01")
    names, skipped = select(ref, cur, columns)
    kinds = {name: kind_of(ref.schema.field(name).type) for name in names}
    chosen = _per_column(effects, names, kinds, "effects")
    effect = {name: chosen.get(name, DEFAULT_EFFECTS[kinds[name]]) for name in names}
    for name in names:
        if effect[name] not in EFFECTS[kinds[name]]:
            raise DataError(f"detect_drift: effect '{effect[name]}' for {kinds[name]} column "
                            f"'{name}' is not one of {list(EFFECTS[kinds[name]])}. Fix: "
                            "choose one of those")
    limits = _per_column(thresholds, names, kinds, "thresholds")

    def measure(name: str) -> dict[str, Any]:
        if kinds[name] == NUMERIC:
            return _numeric(ref.column(name), cur.column(name), name, effect[name])
        return _categorical(ref.column(name), cur.column(name), name, effect[name])

    with ThreadPoolExecutor(max(1, threads)) as pool:
        measured = list(pool.map(measure, names))
    p_values = np.array([m["p_value"] for m in measured], dtype=np.float64)
    adjusted = st.benjamini_hochberg(p_values)
    results = []
    for name, m, p_adjusted in zip(names, measured, adjusted, strict=True):
        threshold = float(limits.get(name, DEFAULT_THRESHOLDS[effect[name]]))
        results.append(ColumnDrift(
            column=name, kind=kinds[name], test=TESTS[kinds[name]], effect=effect[name],
            statistic=m["effect_size"], threshold=threshold, p_value=m["p_value"],
            p_adjusted=float(p_adjusted),
            drifted=bool(p_adjusted <= fdr and m["effect_size"] >= threshold),
            test_statistic=m["test_statistic"], reference_count=m["reference_count"],
            current_count=m["current_count"], reference_nulls=m["reference_nulls"],
            current_nulls=m["current_nulls"]))
    return DriftReport(tuple(results), fdr=fdr, reference_rows=ref.num_rows,
                       current_rows=cur.num_rows, skipped=tuple(skipped))


def _per_column(options: Mapping[str, Any] | None, names: list[str], kinds: dict[str, str],
                argument: str) -> dict[str, Any]:
    """``options`` keyed by column or kind, resolved to one value per column (column first)."""
    if not options:
        return {}
    unknown = [key for key in options if key not in names and key not in KINDS]
    if unknown:
        raise DataError(f"detect_drift: {argument}= names {unknown}, which are neither tested "
                        f"columns {names} nor kinds {list(KINDS)}. Fix: key {argument} by "
                        "column name or kind")
    resolved = {}
    for name in names:
        if name in options:
            resolved[name] = options[name]
        elif kinds[name] in options:
            resolved[name] = options[kinds[name]]
    return resolved


def _numeric(reference: Any, current: Any, name: str, effect: str) -> dict[str, Any]:
    ref = numeric_sample(reference, name, "reference")
    cur = numeric_sample(current, name, "current")
    order = st.merged_order(ref.values, cur.values)
    ks = st.ks_statistic(order)
    if effect == "wasserstein":
        spread = _std(ref.values.astype(np.float64, copy=False))
        distance = st.wasserstein(order)
        size = distance / spread if spread > 0 else (0.0 if distance == 0 else float("inf"))
    else:
        counts = st.quantile_bin_counts(ref.values, cur.values, BINS)
        size = st.psi(*counts) if effect == "psi" else st.jensen_shannon(*counts)
    return {"p_value": st.ks_p_value(ks, order.n, order.m), "test_statistic": ks,
            "effect_size": size, "reference_count": order.n, "current_count": order.m,
            "reference_nulls": ref.nulls, "current_nulls": cur.nulls}


def _std(values: st.Floats) -> float:
    """The population standard deviation, as ``np.std``, in two passes over the values
    instead of four (one subtraction, one sum of squares)."""
    centred = values - values.mean()
    return float(np.sqrt(st.dot(centred, centred) / len(values)))


def _categorical(reference: Any, current: Any, name: str, effect: str) -> dict[str, Any]:
    counts = category_counts(reference, current, name)
    chi2, p_value = st.chi_squared(counts.reference, counts.current)
    measure = st.psi if effect == "psi" else st.jensen_shannon
    return {"p_value": p_value, "test_statistic": chi2,
            "effect_size": measure(counts.reference, counts.current),
            "reference_count": int(counts.reference.sum()),
            "current_count": int(counts.current.sum()),
            "reference_nulls": counts.reference_nulls, "current_nulls": counts.current_nulls}
