"""Mergeable column profiles: summaries of a window of data that combine with other windows.

:func:`profile` summarises the numeric and categorical columns of a pandas, polars or Arrow
frame (vectorized with numpy and pyarrow.compute); :meth:`Profile.merge` combines two
profiles into the profile of both windows together, so hourly profiles of serving logs add
up to a day's, and ``to_dict`` / ``from_dict`` store them as JSON.

Per **numeric** column (integers, floats, decimals): ``count`` (rows), ``nulls`` (null and
NaN), ``infinite`` (+-inf, left out of the other statistics, as in the training reference),
``min``, ``max``, ``mean``, ``std`` (population) and a histogram over fixed ``edges``. The
mean and std are kept as ``(n, mean, M2)`` and merged with the parallel formula of Chan et
al., so a merged profile equals the profile of the concatenated data: counts, min and max
exactly, mean and std within floating-point rounding (about 1e-12 relative).

**Edges.** Without ``edges=``, a column's edges are its own deciles (p0, p10, ..., p100,
duplicates removed), the edges of the training reference (which is built on profiles): quantile
edges keep skewed features spread over the bins, where equal-width bins would put almost
every value in one. Profiles merge only when they share edges, so later windows are profiled
with the reference's: ``profile(window, edges=reference.edges())``. Bins are ``[e_i,
e_i+1)``, the last one closed; values outside the edges are counted in ``below`` and
``above``. A constant column has one edge and one bin holding the values equal to it.

**Quantiles** (p01 p05 p25 p50 p75 p95 p99) are estimated from the histogram, linearly
within each bin, with the exact min and max as the outer bounds of the ``below`` and
``above`` bins. They are estimates, also for a single window, and merge exactly because the
histogram does (the training reference keeps exact quantiles of its own data).

Per **categorical** column (strings, booleans, dictionaries): ``count``, ``nulls`` and the
exact count of every value, up to :data:`MAX_CATEGORIES` distinct values; beyond that the
values with the smallest counts (ties: the greatest values) are summed into ``other``. While
no profile reaches the cap, merging is exact; after, the kept counts are exact for what they
saw and ``other`` holds the rest. ``top(k)`` gives the largest counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from headwater.errors import DataError
from headwater.monitoring.columns import family

FORMAT_VERSION = 1
HISTOGRAM_BINS = 10
MAX_CATEGORIES = 1000
QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95,
             "p99": 0.99}
Value = str | bool


@dataclass(frozen=True)
class NumericProfile:
    """One numeric column (module docstring); ``m2`` is the sum of squared deviations from
    the mean, None with ``mean`` when the column has no finite value."""

    count: int
    nulls: int
    infinite: int
    min: float | None
    max: float | None
    mean: float | None
    m2: float | None
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    below: int = 0
    above: int = 0

    @property
    def values(self) -> int:
        """Finite values: those behind min, max, mean, std and the histogram."""
        return self.count - self.nulls - self.infinite

    @property
    def std(self) -> float | None:
        return None if self.m2 is None else float(np.sqrt(max(self.m2, 0.0) / self.values))

    def quantiles(self) -> dict[str, float] | None:
        """Histogram estimates of :data:`QUANTILES` (module docstring); None when empty."""
        if self.min is None or self.max is None:
            return None
        knots = np.clip(np.array([self.min, *self.edges, self.max]), self.min, self.max)
        knots = np.maximum.accumulate(knots)
        cum = np.cumsum([0, self.below, *self.counts, self.above]).astype(np.float64)
        target = np.array(list(QUANTILES.values())) * self.values
        at = np.clip(np.searchsorted(cum, target, side="left"), 1, len(cum) - 1)
        width = cum[at] - cum[at - 1]
        share = np.divide(target - cum[at - 1], width, out=np.zeros_like(target),
                          where=width > 0)
        points = knots[at - 1] + np.clip(share, 0.0, 1.0) * (knots[at] - knots[at - 1])
        return {k: float(v) for k, v in zip(QUANTILES, points, strict=True)}

    def merge(self, other: ColumnProfile, name: str) -> NumericProfile:
        if not isinstance(other, NumericProfile):
            raise _type_change(name, "numeric", other.family)
        edges = self.edges if self.edges else other.edges
        if self.edges and other.edges and self.edges != other.edges:
            raise DataError(
                f"profile: column '{name}' has different histogram edges in the two profiles "
                f"({list(self.edges)} and {list(other.edges)}). Fix: profile every window "
                "with the reference's edges, profile(window, edges=reference.edges())")
        counts = _add(self.counts, other.counts) if self.edges and other.edges else (
            self.counts if self.edges else other.counts)
        moments = _chan(self, other)
        return NumericProfile(
            self.count + other.count, self.nulls + other.nulls,
            self.infinite + other.infinite, _pick(min, self.min, other.min),
            _pick(max, self.max, other.max), *moments, edges, counts,
            self.below + other.below, self.above + other.above)


@dataclass(frozen=True)
class CategoricalProfile:
    """One categorical column: ``values`` are (value, count) by count descending, then
    value ascending; ``family`` is ``string`` or ``bool``."""

    family: str
    count: int
    nulls: int
    values: tuple[tuple[Value, int], ...]
    other: int = 0

    def top(self, k: int = 20) -> list[tuple[Value, int]]:
        return list(self.values[:k])

    def merge(self, other: ColumnProfile, name: str) -> CategoricalProfile:
        if isinstance(other, NumericProfile) or other.family != self.family:
            raise _type_change(name, self.family, _family(other))
        totals = dict(self.values)
        for value, n in other.values:
            totals[value] = totals.get(value, 0) + n
        values, dropped = _capped(totals)
        return CategoricalProfile(self.family, self.count + other.count,
                                  self.nulls + other.nulls, values,
                                  self.other + other.other + dropped)


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Profile:
    """Profiles of the columns of one window of data, by column name."""

    rows: int
    columns: Mapping[str, ColumnProfile]

    def __getitem__(self, name: str) -> ColumnProfile:
        if name not in self.columns:
            raise DataError(f"profile: no column '{name}' in this profile (it has "
                            f"{list(self.columns)}). Fix: name one of those columns")
        return self.columns[name]

    def edges(self) -> dict[str, list[float]]:
        """Histogram edges per numeric column, for ``profile(window, edges=...)``."""
        return {name: list(c.edges) for name, c in self.columns.items()
                if isinstance(c, NumericProfile) and c.edges}

    def merge(self, other: Profile) -> Profile:
        """The profile of both windows together (module docstring)."""
        for name in [*self.columns, *other.columns]:
            if name not in self.columns or name not in other.columns:
                raise DataError(f"profile: column '{name}' is in only one of the profiles "
                                "being merged. Fix: profile every window with the same "
                                "columns=")
        merged: dict[str, ColumnProfile] = {}
        for name, mine in self.columns.items():
            merged[name] = mine.merge(other.columns[name], name)
        return Profile(self.rows + other.rows, merged)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (no NaN or infinity); :meth:`from_dict` reads it back."""
        columns: dict[str, Any] = {}
        for name, c in self.columns.items():
            if isinstance(c, NumericProfile):
                columns[name] = {"kind": "numeric", "count": c.count, "nulls": c.nulls,
                                 "infinite": c.infinite, "min": c.min, "max": c.max,
                                 "mean": c.mean, "m2": c.m2, "std": c.std,
                                 "quantiles": c.quantiles(), "edges": list(c.edges),
                                 "counts": list(c.counts), "below": c.below,
                                 "above": c.above}
            else:
                columns[name] = {"kind": "categorical", "family": c.family,
                                 "count": c.count, "nulls": c.nulls,
                                 "values": [[v, n] for v, n in c.values], "other": c.other}
        return {"version": FORMAT_VERSION, "rows": self.rows, "columns": columns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if data.get("version") != FORMAT_VERSION:
            raise DataError(f"profile: format version {data.get('version')!r} is not "
                            f"{FORMAT_VERSION}. Fix: read it with the Headwater that wrote it")
        columns: dict[str, ColumnProfile] = {}
        for name, c in data["columns"].items():
            if c["kind"] == "numeric":
                columns[name] = NumericProfile(
                    c["count"], c["nulls"], c["infinite"], c["min"], c["max"], c["mean"],
                    c["m2"], tuple(c["edges"]), tuple(c["counts"]), c["below"], c["above"])
            else:
                columns[name] = CategoricalProfile(
                    c["family"], c["count"], c["nulls"],
                    tuple((v, n) for v, n in c["values"]), c["other"])
        return cls(int(data["rows"]), columns)


def profile(table: Any, columns: Sequence[str] | None = None, *,
            edges: Mapping[str, Sequence[float]] | None = None) -> Profile:
    """The :class:`Profile` of ``table`` (pandas, polars or Arrow): of ``columns``, or of
    every numeric and categorical column (others, such as timestamps, are left out);
    ``edges`` fixes the histogram edges of numeric columns by name."""
    from headwater.offline.frames import to_arrow

    data = to_arrow(table, "profile")
    if isinstance(columns, str):
        raise DataError(f"profile: columns={columns!r} is one string. Fix: pass a list, "
                        f"e.g. columns=[{columns!r}]")
    for name in [*(columns or ()), *(edges or {})]:
        if name not in data.column_names:
            raise DataError(f"profile: column '{name}' is not in the data (it has "
                            f"{data.column_names}). Fix: name a column of the data")
    names = list(columns) if columns is not None else [
        n for n in data.column_names if family(data.schema.field(n).type) is not None]
    result: dict[str, ColumnProfile] = {}
    for name in names:
        kind = family(data.schema.field(name).type)
        if kind is None:
            raise DataError(f"profile: column '{name}' has type {data.schema.field(name).type}"
                            ", which profiles do not cover (numbers, strings, booleans and "
                            "categories only). Fix: leave it out of columns=")
        fixed = (edges or {}).get(name)
        if kind != "numeric" and fixed is not None:
            raise DataError(f"profile: edges= names column '{name}', which is not numeric. "
                            "Fix: give edges for numeric columns only")
        column = data.column(name)
        result[name] = (_numeric(column, name, fixed) if kind == "numeric"
                        else _categorical(column, kind))
    return Profile(int(data.num_rows), result)


def reference_profile(reference: Mapping[str, Any], table: Any) -> Profile:
    """The :class:`Profile` of ``table``'s profilable columns, numeric ones binned with the
    histogram edges of the same column in ``reference`` (the statistics stored with a model
    version, :mod:`headwater.models.reference`: ``features``, ``prediction``,
    ``probability``), so profiles of successive windows of a model's log merge. A column
    the reference has no histogram of gets edges of its own."""
    from headwater.offline.frames import to_arrow

    data = to_arrow(table, "reference_profile")
    stats = {**(reference.get("features") or {}),
             **{k: reference.get(k) for k in ("prediction", "probability")}}
    names = [n for n in data.column_names if family(data.schema.field(n).type) is not None]
    edges = {}
    for name in names:
        histogram = (stats.get(name) or {}).get("histogram")
        if family(data.schema.field(name).type) == "numeric" and histogram:
            edges[name] = [float(e) for e in histogram["edges"]]
    return profile(data, names, edges=edges)


def _numeric(column: Any, name: str, fixed: Sequence[float] | None) -> NumericProfile:
    import pyarrow as pa

    values = column.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)
    nan = np.isnan(values)
    finite = values[np.isfinite(values)]
    nulls, infinite = int(nan.sum()), int(len(values) - nan.sum() - len(finite))
    if fixed is not None:
        edges = np.asarray(fixed, dtype=np.float64)
        if len(edges) == 0 or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise DataError(f"profile: edges for column '{name}' must be finite and strictly "
                            "increasing, at least one. Fix: pass reference.edges()")
    elif len(finite):
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)))
    else:
        edges = np.empty(0)
    counts, below, above = _bin(finite, edges)
    if len(finite) == 0:
        return NumericProfile(len(values), nulls, infinite, None, None, None, None,
                              tuple(map(float, edges)), counts, below, above)
    mean = float(finite.mean())
    m2 = float(np.square(finite - mean).sum())
    return NumericProfile(len(values), nulls, infinite, float(finite.min()),
                          float(finite.max()), mean, m2, tuple(map(float, edges)), counts,
                          below, above)


def _bin(finite: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
         ) -> tuple[tuple[int, ...], int, int]:
    """Counts per bin ``[e_i, e_i+1)`` (the last closed), below and above the edges."""
    if len(edges) == 0:
        return (), 0, 0
    below, above = int((finite < edges[0]).sum()), int((finite > edges[-1]).sum())
    if len(edges) == 1:
        return (len(finite) - below - above,), below, above
    at = np.searchsorted(edges, finite, side="right") - 1
    at[finite == edges[-1]] = len(edges) - 2
    inside = (at >= 0) & (at < len(edges) - 1)
    counts = np.bincount(at[inside], minlength=len(edges) - 1)
    return tuple(int(c) for c in counts), below, above


def _categorical(column: Any, kind: str) -> CategoricalProfile:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    counts = pc.value_counts(column.drop_null())
    values, dropped = _capped(dict(zip(counts.field("values").to_pylist(),
                                       counts.field("counts").to_pylist(), strict=True)))
    return CategoricalProfile(kind, len(column), column.null_count, values, dropped)


def _capped(totals: dict[Value, int]) -> tuple[tuple[tuple[Value, int], ...], int]:
    """Counts sorted by count descending then value, cut at MAX_CATEGORIES; and the sum
    cut off. Sorting the distinct values (at most a few thousand) is not a per-row loop."""
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return tuple(ranked[:MAX_CATEGORIES]), sum(n for _, n in ranked[MAX_CATEGORIES:])


def _chan(a: NumericProfile, b: NumericProfile) -> tuple[float | None, float | None]:
    """Mean and M2 of two parts together (Chan, Golub and LeVeque's parallel formula)."""
    if a.mean is None or a.m2 is None:
        return b.mean, b.m2
    if b.mean is None or b.m2 is None:
        return a.mean, a.m2
    na, nb = a.values, b.values
    n = na + nb
    delta = b.mean - a.mean
    mean = a.mean + delta * nb / n
    return mean, a.m2 + b.m2 + delta * delta * na * nb / n


def _pick(choose: Any, x: float | None, y: float | None) -> float | None:
    return y if x is None else x if y is None else float(choose(x, y))


def _add(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(a + b) for a, b in zip(x, y, strict=True))


def _family(column: ColumnProfile) -> str:
    return "numeric" if isinstance(column, NumericProfile) else column.family


def _type_change(name: str, first: str, second: str) -> DataError:
    return DataError(f"profile: column '{name}' is {first} in one profile and {second} in "
                     "the other. Fix: cast the column back to one type before profiling, "
                     "or leave it out with columns=")

