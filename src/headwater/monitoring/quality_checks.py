"""One builder per data quality check: each turns what was measured into a
:class:`~headwater.monitoring.findings.Finding` (see :mod:`headwater.monitoring.quality` for
the checks' semantics and :mod:`headwater.monitoring.quality_rules` for their bounds).

``at`` is the subject and window every finding of one run carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.monitoring.findings import Finding
from headwater.monitoring.profile import NumericProfile, Profile
from headwater.monitoring.quality_rules import QualityRules
from headwater.types import DType, compatible, from_arrow

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA, VOLUME, FRESHNESS = "quality.schema", "quality.volume", "quality.freshness"
NULL_RATE, RANGE = "quality.null_rate", "quality.range"


def dtype_of(arrow_type: pa.DataType) -> DType | None:
    """The dtype of an Arrow type (a dictionary's values), None when there is none."""
    import pyarrow.types as pat

    return from_arrow(arrow_type.value_type if pat.is_dictionary(arrow_type) else arrow_type)


def schema_findings(window: pa.Table, expected: Mapping[str, DType],
                    at: Mapping[str, Any]) -> tuple[list[Finding], list[str]]:
    """A schema finding per expected column; and the numeric columns that passed."""
    findings, typed = [], []
    for name, declared in expected.items():
        if name not in window.column_names:
            findings.append(missing(name, declared, f"the data, which has "
                                    f"{window.column_names}", at))
            continue
        arrow_type = window.schema.field(name).type
        actual = dtype_of(arrow_type)
        findings.append(schema_finding(name, declared, actual, str(arrow_type), at))
        if actual is not None and compatible(declared, actual) and declared.is_numeric:
            typed.append(name)
    return findings, typed


def missing(name: str, declared: DType, where: str, at: Mapping[str, Any]) -> Finding:
    """The failed schema finding of an expected column missing from ``where``."""
    return Finding(SCHEMA, target=name, value=None, threshold=1.0, failed=True,
                   message=f"column '{name}' (declared {declared!r}) is missing from {where}. "
                   "Fix: restore the column in the source, or remove it from the schema",
                   severity="critical", details={"declared": declared.spec(), "actual": None},
                   **at)


def schema_finding(name: str, declared: DType, actual: DType | None, arrow_type: str,
                   at: Mapping[str, Any], *, where: str = "") -> Finding:
    """The schema finding of a column holding ``arrow_type`` (``where``: e.g. in which
    files), failed when that cannot be served as ``declared``."""
    ok = actual is not None and compatible(declared, actual)
    found = f"{actual!r} (Arrow {arrow_type})" if actual is not None else (
        f"Arrow {arrow_type}, which has no Headwater dtype")
    message = (f"column '{name}' holds {found}{where}, servable as declared {declared!r}"
               if ok else
               f"column '{name}' is declared {declared!r} but holds {found}{where}: its type "
               "changed. Fix: convert the source column back, or declare the new type and "
               "re-apply the view")
    return Finding(SCHEMA, target=name, value=1.0 if ok else 0.0, threshold=1.0,
                   failed=not ok, message=message, severity="critical",
                   details={"declared": declared.spec(),
                            "actual": None if actual is None else actual.spec(),
                            "arrow_type": arrow_type}, **at)


def volume(rows: int, rules: QualityRules, ref: Profile | None, *, null_times: int,
           column: str, at: Mapping[str, Any]) -> Finding:
    """The window's row count against ``rules.volume_bounds``; ``null_times`` rows had no
    event time (in no window), which the message mentions."""
    low, high = rules.volume_bounds(None if ref is None else ref.rows)
    over = high is not None and rows > high
    bad = rows < low or over
    where = f"with '{column}' in [{at['window_start'].isoformat()}, " \
            f"{at['window_end'].isoformat()})"
    bounds = f"[{low:g}, {'inf' if high is None else f'{high:g}'}]"
    message = (f"no rows {where}: the window is empty. Fix: check that the pipeline writing "
               "the source ran" if rows == 0 else
               f"{rows} rows {where}, {'outside' if bad else 'within'} {bounds}")
    if null_times:
        message += f"; {null_times} rows have a null '{column}' and are in no window"
    return Finding(VOLUME, target="", value=float(rows), threshold=high if over else low,
                   failed=bad, message=message,
                   details={"min_rows": low, "max_rows": high, "null_timestamps": null_times},
                   **at)


def freshness(latest: datetime | None, rules: QualityRules, column: str,
              at: Mapping[str, Any]) -> Finding:
    """Seconds from ``latest`` to the window's end, against ``rules.freshness``; no latest
    event (only asked for with an SLO) fails with value None."""
    slo = None if rules.freshness is None else rules.freshness.total_seconds()
    end: datetime = at["window_end"]
    if latest is None:
        return Finding(FRESHNESS, target="", value=None, threshold=slo, failed=True,
                       message=f"no event with '{column}' in the last {rules.freshness} "
                       f"before {end.isoformat()}: the view is stale. Fix: check that the "
                       "pipeline writing the source ran", details={"latest_event": None}, **at)
    age = (end - latest).total_seconds()
    bad = slo is not None and age > slo
    message = f"latest '{column}' is {latest.isoformat()}, {age:g} s before the end"
    if slo is not None:
        message += (f", older than the SLO of {rules.freshness}: the view is stale" if bad
                    else f", within the SLO of {rules.freshness}")
    return Finding(FRESHNESS, target="", value=age, threshold=slo, failed=bad,
                   message=message, details={"latest_event": latest.isoformat()}, **at)


def null_rate(values: pa.ChunkedArray, name: str, rules: QualityRules,
              ref: Profile | None, at: Mapping[str, Any]) -> Finding:
    """Nulls and NaN over the window's rows (at least one); all null always fails."""
    import pyarrow.compute as pc

    rows = len(values)
    nulls = int(pc.sum(pc.is_null(values, nan_is_null=True)).as_py() or 0)
    rate = nulls / rows
    known = None if ref is None else ref.columns.get(name)
    ref_rate = known.nulls / known.count if known is not None and known.count else None
    threshold = rules.null_threshold(name, ref_rate)
    everything = nulls == rows
    bad = rate > threshold or everything
    message = (f"column '{name}' is null in all {rows} rows. Fix: check the pipeline "
               "writing it" if everything else
               f"column '{name}' is null in {nulls} of {rows} rows ({rate:.2%}), "
               f"{'above' if bad else 'within'} the bound {threshold:.2%}")
    return Finding(NULL_RATE, target=name, value=rate, threshold=threshold, failed=bad,
                   message=message, details={"nulls": nulls, "rows": rows,
                                             "reference_null_rate": ref_rate}, **at)


def value_range(values: pa.ChunkedArray, name: str, rules: QualityRules,
                ref: Profile | None, at: Mapping[str, Any]) -> Finding | None:
    """The share of non-null values outside the column's bounds; None when it has no
    bounds or no non-null value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    known = None if ref is None else ref.columns.get(name)
    bounds = rules.range_bounds(name, known if isinstance(known, NumericProfile) else None)
    numbers = pc.cast(values, pa.float64()).drop_null()
    numbers = numbers.filter(pc.invert(pc.is_nan(numbers)))
    if bounds is None or len(numbers) == 0:
        return None
    low, high = bounds
    below = 0 if low is None else int(pc.sum(pc.less(numbers, low)).as_py() or 0)
    above = 0 if high is None else int(pc.sum(pc.greater(numbers, high)).as_py() or 0)
    outside = below + above
    share = outside / len(numbers)
    bad = share > rules.max_out_of_range
    extremes = pc.min_max(numbers).as_py()
    span = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
    message = (f"column '{name}': {outside} of {len(numbers)} values ({share:.2%}) are "
               f"outside {span}; seen {extremes['min']:g} to {extremes['max']:g}")
    if bad:
        message += ". Fix: look for unit or encoding changes upstream, or widen the range"
    return Finding(RANGE, target=name, value=share, threshold=rules.max_out_of_range,
                   failed=bad, message=message,
                   details={"low": low, "high": high, "outside": outside,
                            "values": len(numbers)}, **at)


__all__ = ["FRESHNESS", "NULL_RATE", "RANGE", "SCHEMA", "VOLUME", "dtype_of", "freshness",
           "missing", "null_rate", "schema_finding", "schema_findings", "value_range", "volume"]
